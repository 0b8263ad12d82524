"""Parser fuzzing: every format reader, fed valid exports (synth's, and the public samples)
mutated with hostile values, bytes and structure, and pure random bytes.

The oracle: a reader returns raw rows or raises the project's own error (``GlucoseStreamError``),
never anything else; the rows it returns have ``RAW_SCHEMA``; a value-only edit keeps the
accounting (every record a raw row or a skipped non-reading); the chunked readers the CLI uses
for large files give the rows the whole-file reader gives; and ingest's checks of the rows
account for each one (received = accepted + duplicates + quarantined) and accept only readings
inside the documented limits; ``glucosestream ingest`` of a mutated file exits 0, or 1 with a
one-line error. Each test counts its inputs in ``VERIFICATION_COUNTS``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from glucosestream.cli import main
from glucosestream.config import EngineSettings, IngestSettings, LakeSettings, Settings
from glucosestream.engines import DuckDBEngine
from glucosestream.errors import GlucoseStreamError
from glucosestream.formats import FORMATS, RAW_SCHEMA, TREND_SCHEMA, ParsedFile, read_raw_rows
from glucosestream.ingest import chunked
from glucosestream.ingest.batch import Part, build_batch, check_parts
from glucosestream.ingest.identity import patient_key
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import DATA, SECRET, VERIFICATION_COUNTS, FixedClock
from .hostile import FUZZ, byte_mutation, cell_mutation, json_mutation, parquet_mutation

# Hypothesis warns when the repr of a drawn file passes 50 kB (in a failure's report); under
# filterwarnings=error that warning would replace the failure itself.
pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.filterwarnings(
        "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
    ),
]

SAMPLES = DATA / "samples"
SPEC = CohortSpec(1, 1, "t1d", 15, 7, dt.date(2026, 3, 28))  # across the EU change to summer time
KEEP = 14  # records of each seed: enough for every layout, small enough to be fast


@dataclass(frozen=True)
class Seed:
    """One valid input: its format, bytes, and how to mutate it."""

    fmt: str
    data: bytes
    kind: str  # delimited | json | jsonlines | parquet
    delimiter: str = ","
    first_record: int = 1  # 0-based line of the first record (delimited)
    min_depth: int = 2  # JSON depth of the values a value-only edit may replace


def _lines(data: bytes, keep: int) -> bytes:
    return b"".join(data.splitlines(keepends=True)[:keep])


def _synth(folder: Path, fmt: str) -> bytes:
    if fmt in ("csv", "jsonl", "parquet"):
        target = folder / f"cohort.{fmt}"
        write_cohort(SPEC, target, fmt)
        return target.read_bytes()
    write_cohort(SPEC, folder / fmt, fmt)
    return next(
        p for p in sorted((folder / fmt).iterdir()) if p.name != "manifest.tsv"
    ).read_bytes()


def _carelink() -> bytes:
    """The CareLink sample's preamble, a few pump records and a few sensor records."""
    lines = (SAMPLES / "medtronic_carelink/cgm_format_guardian_connect_eu_excerpt.csv").read_bytes()
    lines_ = lines.splitlines(keepends=True)
    sensor = next(i for i, line in enumerate(lines_) if b";Sensor;" in line)
    return b"".join(lines_[:10] + lines_[sensor : sensor + 2 + KEEP])


def build_seeds(folder: Path) -> dict[str, Seed]:
    dexcom = _lines(_synth(folder, "dexcom"), KEEP + 12)
    libreview = _lines(_synth(folder, "libreview"), KEEP + 2)
    entries = json.loads(_synth(folder, "nightscout"))[:KEEP]
    tidepool = json.loads(_synth(folder, "tidepool"))[:KEEP]
    bundle = json.loads(_synth(folder, "fhir"))
    bundle["entry"] = bundle["entry"][: 2 + KEEP]
    records = [json.loads(line) for line in _synth(folder, "jsonl").splitlines()[:KEEP]]
    table = pq.read_table(pa.BufferReader(_synth(folder, "parquet"))).slice(0, KEEP)
    parquet = pa.BufferOutputStream()
    pq.write_table(table, parquet)
    ns_api = _lines((SAMPLES / "nightscout/cgm_format_nightscout_entries.csv").read_bytes(), KEEP)
    ns_export = _lines(
        (SAMPLES / "nightscout/cgm_format_nightscout-data-with-treatments.csv").read_bytes(),
        KEEP + 2,
    )
    clarity12 = _lines(
        (SAMPLES / "dexcom_clarity/cgmquantify_test_file_g6_12col.csv").read_bytes(), KEEP + 12
    )
    ndjson = "\n".join(json.dumps(e["resource"]) for e in bundle["entry"]) + "\n"
    carelink = _carelink()
    sensor_header = (
        carelink.decode()
        .split("\n")
        .index(next(line for line in carelink.decode().split("\n") if ";Sensor;" in line))
    )
    return {
        "dexcom": Seed("dexcom", dexcom, "delimited"),
        "dexcom_12col": Seed("dexcom", clarity12, "delimited"),
        "libreview": Seed("libreview", libreview, "delimited", first_record=2),
        "carelink": Seed("carelink", carelink, "delimited", ";", sensor_header + 2),
        "nightscout_csv": Seed("nightscout", ns_api, "delimited", first_record=0),
        "nightscout_export": Seed("nightscout", ns_export, "delimited", first_record=2),
        "nightscout_json": Seed("nightscout", json.dumps(entries).encode(), "json"),
        "tidepool": Seed("tidepool", json.dumps(tidepool).encode(), "json"),
        "fhir_bundle": Seed("fhir", json.dumps(bundle).encode(), "json", min_depth=4),
        "fhir_ndjson": Seed("fhir", ndjson.encode(), "jsonlines"),
        "csv": Seed("csv", _lines(_synth(folder, "csv"), KEEP + 1), "delimited"),
        "jsonl": Seed(
            "jsonl", "".join(json.dumps(r) + "\n" for r in records).encode(), "jsonlines"
        ),
        "json": Seed("json", json.dumps(records).encode(), "json"),
        "parquet": Seed("parquet", parquet.getvalue().to_pybytes(), "parquet"),
    }


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Seed]:
    return build_seeds(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_every_reader_has_a_seed(seeds):
    assert {s.fmt for s in seeds.values()} == set(FORMATS)


def test_seeds_are_read_whole(seeds, scratch):
    """Each unmutated seed is detected as its format and read without a problem."""
    for name, seed in seeds.items():
        path = scratch / f"seed_{name}"
        path.write_bytes(seed.data)
        fmt, parsed = read_raw_rows(path)
        assert fmt == seed.fmt, name
        assert parsed.rows.num_rows > 0, name
        assert parsed.rows.filter(pa.compute.is_valid(parsed.rows["problem"])).num_rows == 0, name


# mutation ------------------------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, seed: Seed, *, plain: bool = False) -> bytes:
    """``seed`` edited: structure-aware (cells, JSON values, Parquet columns), then perhaps at
    the byte level. ``plain``: value-only edits that keep every record a record."""
    if seed.kind == "delimited":
        text = seed.data.decode("utf-8-sig").replace("\r\n", "\n")
        data = draw(
            cell_mutation(
                text, delimiter=seed.delimiter, first_record=seed.first_record, plain=plain
            )
        ).encode("utf-8", "surrogatepass")
    elif seed.kind == "json":
        document = json.loads(seed.data)
        data = draw(json_mutation(document, min_depth=seed.min_depth if plain else 0))
    elif seed.kind == "jsonlines":
        lines = seed.data.decode().splitlines()
        index = draw(st.integers(0, len(lines) - 1))
        edited = draw(json_mutation(json.loads(lines[index]), min_depth=1 if plain else 0))
        encoded = [line.encode() for line in lines]
        encoded[index] = edited
        data = b"\n".join(encoded) + b"\n"
    else:
        data = draw(parquet_mutation(pq.read_table(pa.BufferReader(seed.data))))
    if not plain and draw(st.booleans()):
        data = draw(byte_mutation(data))
    return data


def _is_text(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or (
        pa.types.is_dictionary(type_) and pa.types.is_string(type_.value_type)
    )


def assert_raw_rows(rows: pa.Table) -> None:
    """``RAW_SCHEMA``'s columns, in order, of its types (text may be dictionary-encoded, and
    a typed source's glucose numbers, as ``formats.rows`` allows), then, from a source with a
    trend, ``TREND_SCHEMA``'s."""
    assert rows.column_names[: len(RAW_SCHEMA)] == RAW_SCHEMA.names
    assert rows.column_names[len(RAW_SCHEMA) :] in ([], TREND_SCHEMA.names)
    for field in [*RAW_SCHEMA, *TREND_SCHEMA][: rows.num_columns]:
        got = rows.schema.field(field.name).type
        if field.name == "glucose":
            assert _is_text(got) or pa.types.is_integer(got) or pa.types.is_floating(got), got
        elif pa.types.is_string(field.type):
            assert _is_text(got), (field.name, got)
        else:
            assert got == field.type, (field.name, got)


def read_or_refuse(path: Path, fmt: str) -> ParsedFile | None:
    """The oracle: raw rows with ``RAW_SCHEMA``, or the project's own error (None)."""
    try:
        _, parsed = read_raw_rows(path, fmt)
    except GlucoseStreamError:
        return None
    assert_raw_rows(parsed.rows)
    assert parsed.skipped >= 0
    first = pa.compute.min(parsed.rows["line"]).as_py()
    assert first is None or first >= 1
    return parsed


def chunks_or_refuse(path: Path, fmt: str, chunk_readings: int) -> int | None:
    """The rows of the chunked reader the CLI uses for csv, jsonl and parquet (None: refused)."""
    try:
        return sum(p.rows.num_rows for p in chunked.iter_file_chunks(path, fmt, chunk_readings))
    except GlucoseStreamError:
        return None


SEED_NAMES = (
    "dexcom",
    "dexcom_12col",
    "libreview",
    "carelink",
    "nightscout_csv",
    "nightscout_export",
    "nightscout_json",
    "tidepool",
    "fhir_bundle",
    "fhir_ndjson",
    "csv",
    "jsonl",
    "json",
    "parquet",
)
SUFFIXES = ("", ".csv", ".json", ".jsonl", ".parquet", ".txt")


@pytest.mark.parametrize("name", SEED_NAMES)
@settings(FUZZ, max_examples=260)
@given(data=st.data())
def test_mutated_exports_are_read_or_refused(seeds, scratch, name, data):
    seed = seeds[name]
    content = data.draw(mutated(seed), label="content")
    suffix = data.draw(st.sampled_from(SUFFIXES), label="suffix")
    other = data.draw(st.sampled_from(FORMATS), label="read as")
    chunk_readings = data.draw(st.integers(1, 8), label="chunk readings")
    path = scratch / f"mutated_{name}{suffix}"
    path.write_bytes(content)
    VERIFICATION_COUNTS["fuzz inputs formats, mutated exports"] += 1
    read_or_refuse(path, "auto")
    parsed = read_or_refuse(path, seed.fmt)
    read_or_refuse(path, other)
    if seed.fmt in chunked.CHUNKED_FORMATS:
        rows = chunks_or_refuse(path, seed.fmt, chunk_readings)
        if parsed is not None and rows is not None:
            assert rows == parsed.rows.num_rows


@pytest.mark.parametrize("name", [n for n in SEED_NAMES if n != "parquet"])
@settings(FUZZ, max_examples=120)
@given(data=st.data())
def test_value_edits_keep_every_record_accounted_for(seeds, scratch, name, data):
    """A value-only edit leaves the number of records: each gives a raw row or raw event rows
    (perhaps with a problem), or is skipped, as in the unedited file."""
    seed = seeds[name]
    path = scratch / f"plain_{name}"
    path.write_bytes(seed.data)
    whole = read_or_refuse(path, seed.fmt)
    assert whole is not None
    path.write_bytes(data.draw(mutated(seed, plain=True), label="content"))
    VERIFICATION_COUNTS["fuzz inputs formats, value edits"] += 1
    parsed = read_or_refuse(path, seed.fmt)
    if parsed is not None:
        assert records_of(parsed) == records_of(whole)


def records_of(parsed: ParsedFile) -> int:
    """The records a parse accounts for: each line with a reading or an event, and each
    skipped record (a record may give a reading and events, or two events)."""
    lines = set(parsed.rows["line"].to_pylist())
    if parsed.events is not None:
        lines |= set(parsed.events["line"].to_pylist())
    return len(lines) + parsed.skipped


@settings(FUZZ, max_examples=1200)
@given(
    content=st.one_of(
        st.binary(max_size=2048),
        st.text(max_size=512).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.lists(
            st.sampled_from([b"{", b"[", b"]", b"}", b",", b'"', b"\n", b":", b"1", b"a"])
        ).map(b"".join),
    ),
    suffix=st.sampled_from(SUFFIXES),
    fmt=st.sampled_from(("auto", *FORMATS)),
)
def test_random_bytes_are_read_or_refused(scratch, content, suffix, fmt):
    path = scratch / f"random{suffix}"
    path.write_bytes(content)
    VERIFICATION_COUNTS["fuzz inputs formats, random bytes"] += 1
    read_or_refuse(path, fmt)
    if fmt in chunked.CHUNKED_FORMATS:
        chunks_or_refuse(path, fmt, 3)


# ingest's checks of what the readers return ----------------------------------------------------
NOW = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
ZONES = zoneinfo.available_timezones()


@pytest.fixture(scope="module")
def checking(tmp_path_factory):
    settings_ = Settings(
        lake=LakeSettings(root=str(tmp_path_factory.mktemp("lake"))),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    engine = DuckDBEngine(EngineSettings())
    yield settings_, engine
    engine.close()


def check_accounting(settings_: Settings, engine, parsed: ParsedFile, fmt: str) -> None:
    """Ingest's checks of ``parsed`` (nothing written): every row accounted for, and the
    accepted readings inside the limits the issue sets (finite, a real zone, 1990 to now)."""
    part = Part(
        parsed,
        "fuzz",
        fmt,
        hashlib.sha256(repr(parsed).encode()).hexdigest(),
        patient_key=patient_key(SECRET.encode(), "FUZZ"),
    )
    try:
        rows = check_parts(settings_, [part], engine=engine, now=FixedClock(NOW))
        built = build_batch(rows, [part])
    except GlucoseStreamError:
        return
    report = built.results[0].report
    assert report.received == parsed.rows.num_rows
    assert report.received == report.accepted + report.duplicates + report.quarantined
    readings = built.readings.to_pydict()
    for value in readings["glucose_mg_dl"]:
        assert math.isfinite(value)
    for zone in readings["tz"]:
        assert zone in ZONES, zone
    for ts in readings["ts"]:
        assert dt.datetime(1990, 1, 1, tzinfo=dt.UTC) <= ts <= NOW + dt.timedelta(days=1), ts


@pytest.mark.parametrize("name", SEED_NAMES)
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_ingest_checks_account_for_every_mutated_row(seeds, scratch, checking, name, data):
    seed = seeds[name]
    path = scratch / f"checked_{name}"
    path.write_bytes(data.draw(mutated(seed), label="content"))
    VERIFICATION_COUNTS["fuzz inputs formats, through ingest checks"] += 1
    parsed = read_or_refuse(path, seed.fmt)
    if parsed is not None:
        check_accounting(*checking, parsed, seed.fmt)


# the CLI, as a user runs it --------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict[str, str]:
    return {
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE": str(tmp_path_factory.mktemp("cli") / "lake"),
    }


@pytest.mark.parametrize("name", SEED_NAMES)
@settings(FUZZ, max_examples=20)
@given(data=st.data())
def test_cli_ingest_of_a_mutated_export_succeeds_or_says_why_in_a_line(
    seeds, scratch, cli_env, name, data
):
    """``glucosestream ingest`` of a mutated file: exit 0, or exit 1 with one line that says
    what is wrong (``Error: …``), never a traceback (finding 7)."""
    seed = seeds[name]
    path = scratch / f"cli_{name}{data.draw(st.sampled_from(SUFFIXES), label='suffix')}"
    path.write_bytes(data.draw(mutated(seed), label="content"))
    VERIFICATION_COUNTS["fuzz inputs formats, through the CLI"] += 1
    result = CliRunner().invoke(
        main, ["ingest", str(path), "--patient", "FUZZ", "--tz", "UTC"], env=cli_env
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 1:
        lines = result.output.strip().splitlines()
        assert lines, result.output
        assert lines[-1].startswith("Error: "), result.output
        assert "Traceback" not in result.output
