"""Issue 13, ingest and formats: a bad reading is quarantined alone, with its reason; its
neighbours and its file are unaffected; every row received is accepted, a duplicate or
quarantined. One test per finding, named after it."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from glucosestream.cli import main
from glucosestream.errors import GlucoseStreamError, InvalidInput
from glucosestream.formats import FORMATS, read_raw_rows
from glucosestream.ingest import ingest_path, ingest_records
from glucosestream.lake import RawZone, open_metadata

from .conftest import DATA, FixedClock, write

START = dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC)
RECEIVED_AT = START + dt.timedelta(seconds=1)  # a FixedClock's first answer: the batch's receipt
HEADER = "patient_id,time,glucose_mg_dl,tz\n"
GOOD = "A,2026-01-01T10:05:00Z,100,UTC\n"  # a neighbour that must stay accepted


@pytest.fixture
def clock():
    return FixedClock(START)


def accounted(report) -> bool:
    return report.received == report.accepted + report.duplicates + report.quarantined


def reasons(settings, report) -> list[str]:
    batch = next(
        b for b in RawZone(Path(settings.lake.root)).list_batches() if b.batch_id == report.batch_id
    )
    return [q["reason"] for q in batch.quarantine().to_pylist()]


def readings(settings, report) -> list[dict]:
    batch = next(
        b for b in RawZone(Path(settings.lake.root)).list_batches() if b.batch_id == report.batch_id
    )
    return batch.readings().to_pylist()


# --- 1: zones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        "localtime",  # zoneinfo loads it; DuckDB does not know it
        "Factory",  # zoneinfo loads it; Arrow cannot
        "posixrules",
        "right/UTC",
        "posix/Europe/London",
        "Europe/../UTC",
        "europe/london",
        " UTC",
    ],
)
def test_finding1_offset_time_with_unknown_zone_is_quarantined(settings, tmp_path, clock, zone):
    path = write(
        tmp_path / "zones.csv",
        HEADER
        + f"A,2026-01-01T10:00:00+01:00,100,{zone}\nA,2026-01-01T10:10:00,100,{zone}\n"
        + GOOD,
    )
    report = ingest_path(settings, path, now=clock)
    assert (report.received, report.accepted, report.quarantined) == (3, 1, 2)
    assert reasons(settings, report) == ["unknown time zone"] * 2
    posted = ingest_records(
        settings,
        [{"patient_id": "B", "time": "2026-01-01T10:00:00Z", "glucose": 99, "tz": zone}],
        now=clock,
    )
    assert (posted.accepted, posted.quarantined) == (0, 1)


@pytest.mark.parametrize("zone", ["UTC", "Etc/GMT+5", "Europe/London", "America/New_York"])
def test_finding1_real_zones_are_accepted_and_work_downstream(settings, tmp_path, clock, zone):
    path = write(tmp_path / "zones.csv", HEADER + f"A,2026-01-01T10:00:00+01:00,100,{zone}\n")
    report = ingest_path(settings, path, now=clock)
    assert report.accepted == 1
    [reading] = readings(settings, report)
    # what metrics/daily.py does with a reading's zone
    ts = pa.array([reading["ts"]], pa.timestamp("us", tz="UTC"))
    assert pc.local_timestamp(ts.cast(pa.timestamp("us", tz=reading["tz"]))) is not None


def test_finding1_every_zone_ingest_accepts_works_in_arrow_and_duckdb():
    from glucosestream.readings import is_known_zone, known_zones

    zones = sorted(known_zones())
    assert {"UTC", "Etc/GMT+5", "Europe/London"} <= set(zones)
    assert not any(is_known_zone(z) for z in ("localtime", "Factory", "posixrules", "right/UTC"))
    instant = pa.array([dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)], pa.timestamp("us", "UTC"))
    for zone in zones:
        pc.local_timestamp(instant.cast(pa.timestamp("us", tz=zone)))  # raises if Arrow cannot
    known = {row[0] for row in duckdb.sql("SELECT name FROM pg_timezone_names()").fetchall()}
    assert set(zones) <= known


# --- 2: infinite and impossible times ------------------------------------------------------------


def test_finding2_infinite_times_quarantine_only_their_row(settings, tmp_path, clock):
    bad = ["inf", "-inf", "infinity", "-infinity", "nan", "Infinity", "294247-01-10T04:00:54"]
    path = write(tmp_path / "inf.csv", HEADER + "".join(f"A,{t},100,UTC\n" for t in bad) + GOOD)
    report = ingest_path(settings, path, now=clock)
    assert (report.received, report.accepted, report.quarantined) == (len(bad) + 1, 1, len(bad))
    assert set(reasons(settings, report)) <= {
        "unparsable time",
        "time outside the plausible range",
    }
    assert reasons(settings, report).count("unparsable time") == len(bad) - 1


def test_finding2_nightscout_infinite_dates_are_quarantined_alone(settings, tmp_path, clock):
    good_ms = int(dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC).timestamp() * 1000)
    text = (
        '[{"type":"sgv","sgv":100,"dateString":"inf"},'
        '{"type":"sgv","sgv":100,"date":Infinity},'
        '{"type":"sgv","sgv":100,"date":-Infinity},'
        '{"type":"sgv","sgv":100,"date":1e300},'
        f'{{"type":"sgv","sgv":100,"date":{good_ms}}}]'
    )
    report = ingest_path(settings, write(tmp_path / "ns.json", text), patient_id="P", now=clock)
    assert (report.format, report.received, report.accepted, report.quarantined) == (
        "nightscout",
        5,
        1,
        4,
    )
    assert set(reasons(settings, report)) == {"unparsable time"}
    posted = ingest_records(
        settings,
        [
            {"patient_id": "A", "time": float("inf"), "glucose": 100},
            {"patient_id": "A", "time": "2026-01-01T10:00:00Z", "glucose": 100},
        ],
        now=clock,
    )
    assert (posted.accepted, posted.quarantined) == (1, 1)


def test_finding2_cli_quarantines_an_inf_row_instead_of_refusing_the_file(cli, tmp_path):
    path = write(tmp_path / "inf.csv", HEADER + "A,inf,100,UTC\n" + GOOD)
    result = cli.invoke(main, ["ingest", str(path), "--lake", str(tmp_path / "lake"), "--json"])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert (report["accepted"], report["quarantined"]) == (1, 1)


# --- 3: the plausible time range -----------------------------------------------------------------


def test_finding3_times_outside_1990_to_receipt_plus_skew_are_quarantined(
    settings, tmp_path, clock
):
    from glucosestream.readings import EARLIEST_READING_AT, FUTURE_SKEW

    assert dt.timedelta(minutes=10) == FUTURE_SKEW  # the gate's no_future_readings uses it too
    assert dt.datetime(1990, 1, 1, tzinfo=dt.UTC) == EARLIEST_READING_AT
    latest = RECEIVED_AT + dt.timedelta(minutes=10)
    second = dt.timedelta(seconds=1)
    times = {
        "1989-12-31T23:59:59Z": False,
        "1990-01-01T00:00:00Z": True,
        latest.isoformat(): True,
        (latest + second).isoformat(): False,
        "2199-12-31T00:00:00Z": False,
        "1961-04-12 00:56:47": False,  # a local time, read in the row's zone
        f"{latest + second:%Y-%m-%d %H:%M:%S}": False,
    }
    path = write(
        tmp_path / "range.csv",
        "patient_id,time,glucose_mg_dl\n" + "".join(f"A,{t},100\n" for t in times),
    )
    report = ingest_path(settings, path, now=clock)
    accepted = sum(times.values())
    assert (report.received, report.accepted) == (len(times), accepted)
    assert reasons(settings, report) == ["time outside the plausible range"] * (
        len(times) - accepted
    )


def test_finding3_the_bound_comes_from_the_batch_receipt(settings, tmp_path):
    path = write(tmp_path / "r.csv", HEADER + "A,2026-06-01T10:00:00Z,100,UTC\n")
    early = ingest_path(settings, path, now=FixedClock(START))
    assert (early.accepted, early.quarantined) == (0, 1)
    later = settings.lake.__class__(root=str(tmp_path / "later"))
    other = settings.__class__(lake=later, ingest=settings.ingest)
    late = ingest_path(other, path, now=FixedClock(dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC)))
    assert (late.accepted, late.quarantined) == (1, 0)


# --- 5: field length -----------------------------------------------------------------------------


def test_finding5_overlong_patient_and_device_ids_are_quarantined(settings, clock):
    from glucosestream.readings import MAX_ID_CHARS

    long_id = "P" * (MAX_ID_CHARS + 1)
    records = [
        {"patient_id": long_id, "time": "2026-01-01T10:00:00Z", "glucose": 100},
        {
            "patient_id": "A",
            "device_id": "d" * 100_000,
            "time": "2026-01-01T10:00:00Z",
            "glucose": 1,
        },
        {"patient_id": "B" * MAX_ID_CHARS, "time": "2026-01-01T10:00:00Z", "glucose": 100},
    ]
    report = ingest_records(settings, records, now=clock)
    assert (report.received, report.accepted, report.quarantined) == (3, 1, 2)
    assert sorted(reasons(settings, report)) == [
        f"device id longer than {MAX_ID_CHARS} characters",
        f"patient id longer than {MAX_ID_CHARS} characters",
    ]
    assert len(open_metadata(settings.lake).patient_keys()) == 2  # not the over-long id


# --- 6: NaN from Nightscout ----------------------------------------------------------------------


def test_finding6_nightscout_nan_glucose_and_time_are_quarantined(settings, tmp_path, clock):
    good_ms = int(dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC).timestamp() * 1000)
    text = (
        f'[{{"type":"sgv","sgv":NaN,"date":{good_ms}}},'
        f'{{"type":"sgv","sgv":Infinity,"date":{good_ms + 1000}}},'
        '{"type":"sgv","sgv":100,"date":NaN},'
        f'{{"type":"sgv","sgv":100,"date":{good_ms + 300_000}}}]'
    )
    report = ingest_path(settings, write(tmp_path / "ns.json", text), patient_id="P", now=clock)
    assert (report.received, report.accepted, report.quarantined) == (4, 1, 3)
    assert sorted(reasons(settings, report)) == [
        "glucose is not a number",
        "glucose outside the plausible range",
        "unparsable time",
    ]
    assert all(r["glucose_mg_dl"] == 100.0 for r in readings(settings, report))


# --- 7: hostile bytes ----------------------------------------------------------------------------


def test_finding7_csv_with_old_mac_line_ends_is_read(settings, tmp_path, clock, cli):
    text = (HEADER + "A,2026-01-01T10:00:00Z,100,UTC\n" + GOOD).replace("\n", "\r")
    path = tmp_path / "mac.csv"
    path.write_bytes(text.encode())
    report = ingest_path(settings, path, now=clock)
    assert (report.received, report.accepted) == (2, 2)
    result = cli.invoke(main, ["ingest", str(path), "--lake", str(tmp_path / "cli-lake")])
    assert result.exit_code == 0, result.output


def test_finding7_device_export_with_old_mac_line_ends_is_read(settings, tmp_path, clock):
    from .test_formats_layouts import CLARITY_MMOL_HEADER

    header = CLARITY_MMOL_HEADER.replace("mmol/L", "mg/dL")
    rows = "".join(
        f"{i},2026-01-01T10:{5 * i:02d}:00,EGV,,,,iPhone G6,{100 + i},,,,,{i},ABCDEF\n"
        for i in range(1, 4)
    )
    path = tmp_path / "clarity.csv"
    path.write_bytes((header + rows).replace("\n", "\r").encode())
    report = ingest_path(settings, path, patient_id="P", tz="UTC", now=clock)
    assert (report.format, report.received, report.accepted) == ("dexcom", 3, 3)


def test_finding7_jsonl_with_invalid_utf8_quarantines_that_row(settings, tmp_path, clock, cli):
    data = (
        b'{"patient_id":"A","time":"2026-01-01T10:00:00Z","glucose":100}\n'
        b'{"patient_id":"A\xff","time":"2026-01-01T10:05:00Z","glucose":100}\n'
        b'{"patient_id":"A","time":"2026-01-01T10:10:00\xc3Z","glucose":100}\n'
    )
    path = tmp_path / "r.jsonl"
    path.write_bytes(data)
    report = ingest_path(settings, path, now=clock)
    assert (report.received, report.accepted, report.quarantined) == (3, 1, 2)
    assert reasons(settings, report) == ["text is not valid UTF-8"] * 2
    assert len(open_metadata(settings.lake).patient_keys()) == 1  # "A\ufffd" is no patient
    result = cli.invoke(main, ["ingest", str(path), "--lake", str(tmp_path / "cli-lake")])
    assert result.exit_code == 0, result.output
    posted = ingest_records(
        settings, [{"patient_id": "\udc80", "time": "2026-01-01T10:00:00Z", "gl": 1}], now=clock
    )
    assert (posted.received, posted.quarantined) == (1, 1)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("deep.json", "auto"),
        ("deep.json", "json"),
        ("deep.jsonl", "jsonl"),
        ("deep.json", "nightscout"),
        ("deep.json", "tidepool"),
        ("deep.json", "fhir"),
    ],
)
def test_finding7_json_nested_1000_deep_is_one_invalid_input(settings, tmp_path, name, fmt, cli):
    nested = "[" * 1000 + "]" * 1000
    text = f'{{"patient_id":"A","time":"2026-01-01T10:00:00Z","glucose":1,"x":{nested}}}'
    path = write(tmp_path / name, text if name.endswith(".jsonl") else f"[{text}]")
    with pytest.raises(InvalidInput, match="nested deeper than 64"):
        ingest_path(settings, path, fmt=fmt, patient_id="P")
    result = cli.invoke(
        main, ["ingest", str(path), "--lake", str(tmp_path / "l"), "--patient", "P"]
    )
    assert result.exit_code == 1
    assert "nested deeper than 64" in result.output
    assert "Traceback" not in result.output


def _hostile_inputs() -> list[tuple[str, bytes]]:
    """Bytes a careless user or an attacker sends: junk, cut files, BOMs, wrong JSON types."""
    samples = sorted((DATA / "samples").glob("*/*.csv")) + sorted(
        (DATA / "samples").glob("*/*.json")
    )
    cases = [
        ("junk.bin", bytes(range(256)) * 4),
        ("bom.csv", b"\xef\xbb\xbf" + HEADER.encode() + b"A,2026-01-01T10:00:00Z,100,UTC\n"),
        ("bom.jsonl", b'\xef\xbb\xbf{"id":"A","time":"2026-01-01T10:00:00Z","gl":1}\n'),
        ("huge.csv", HEADER.encode() + b"A," + b"9" * 3_000_000 + b",1,UTC\n"),
        ("cr.json", b'[{"id":"A","time":"t","gl":1}]\r'),
        ("types.json", b'[{"id":{"a":[1]},"time":[1,2],"gl":{"x":1},"tz":5,"unit":true}]'),
        ("types.jsonl", b'{"id":1.5,"time":null,"gl":"x"}\n{"id":"A","time":3,"gl":[1]}\n'),
        ("ns-types.json", b'[{"type":"sgv","sgv":[1],"date":"x","dateString":{"a":1}}]'),
        ("tp-types.json", b'[{"type":"cbg","value":"x","annotations":5,"deviceTime":1}]'),
        (
            "fhir-types.json",
            b'{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Observation",'
            b'"code":[1],"subject":"x","valueQuantity":[2],"effectiveDateTime":5}},'
            b'{"resource":{"id":"1"}},{"resource":{"resourceType":"Observation","code":'
            b'{"coding":[{"system":"http://loinc.org","code":"99504-3"}]},"subject":{"reference":'
            b'{"a":1}},"valueQuantity":{"value":"x","code":7},"effectiveDateTime":12}}]}',
        ),
        ("nan.csv", b"Index,Timestamp,Event Type\n1,\x00\x01,EGV\n"),
        ("bignum.json", b'[{"id":"A","time":"t","gl":' + b"9" * 5000 + b"}]"),
        ("bignum.jsonl", b'{"id":"A","time":"t","gl":' + b"9" * 5000 + b"}\n"),
        ("badkey.jsonl", b'{"id":"A","ti\xc0me":"t","gl":1}\n{"id":"A","time":"t","gl":1}\n'),
        (
            "surrogate.json",
            b'{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org",'
            b'"code":"99504-3"}]},"subject":{"reference":"Patient/\\udc80"},'
            b'"valueQuantity":{"value":100,"code":"mg/dL"},"effectiveDateTime":"\\ud800"}',
        ),
        ("ns-surrogate.json", b'[{"type":"sgv","sgv":100,"dateString":"\\udfff"}]'),
        ("ns-digits.csv", '"2026-01-01T10:00:00Z",1767261600000,\u00b2,"Flat",x\n'.encode()),
    ]
    for path in samples:
        data = path.read_bytes()
        cases.append((f"cut-{path.name}", data[: len(data) // 2]))
        cases.append((f"cut-early-{path.name}", data[: min(len(data), 700)]))
    return cases


def test_finding7_hostile_bytes_give_rows_or_one_project_error(settings, tmp_path, clock):
    """Every reader, on every hostile input: a report or a GlucoseStreamError, nothing else."""
    rng = random.Random(13)
    inputs = _hostile_inputs()
    for name, data in list(inputs[-6:]):  # a few byte flips of cut samples, seeded
        for i in range(5):
            mutated = bytearray(data)
            for _ in range(8):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            inputs.append((f"flip{i}-{name}", bytes(mutated)))
    for index, (name, data) in enumerate(inputs):
        path = tmp_path / f"{index}-{name}"
        path.write_bytes(data)
        for fmt in ("auto", *FORMATS):
            try:
                read_raw_rows(path, fmt)
            except GlucoseStreamError:
                continue
            try:
                report = ingest_path(settings, path, fmt=fmt, patient_id="P", tz="UTC", now=clock)
            except GlucoseStreamError:
                continue
            assert accounted(report), (name, fmt)


def test_finding7_parquet_with_columns_of_other_types_is_one_invalid_input(settings, tmp_path):
    path = tmp_path / "nested.parquet"
    pq.write_table(
        pa.table({"id": ["A"], "time": ["2026-01-01T10:00:00Z"], "gl": pa.array([[1, 2]])}), path
    )
    with pytest.raises(InvalidInput, match="column 'gl' holds list"):
        ingest_path(settings, path)
    path_ns = tmp_path / "ns.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["A"],
                "time": pa.array([1_767_261_600_000_000_123], pa.timestamp("ns", tz="UTC")),
                "gl": [100],
            }
        ),
        path_ns,
    )
    report = ingest_path(settings, path_ns, now=FixedClock(START))
    assert report.accepted == 1  # nanoseconds are cut to microseconds, not refused


# --- 9: accounting -------------------------------------------------------------------------------


def test_finding9_nightscout_sgv_without_value_is_received_and_quarantined(
    settings, tmp_path, clock
):
    good_ms = int(dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC).timestamp() * 1000)
    entries = [
        {"type": "sgv", "date": good_ms},
        {"type": "sgv", "sgv": None, "date": good_ms + 60_000},
        {"type": "sgv", "sgv": 100, "date": good_ms + 300_000},
        {"type": "mbg", "mbg": 120, "date": good_ms},  # a meter reading: not a sensor reading
    ]
    path = write(tmp_path / "ns.json", json.dumps(entries))
    report = ingest_path(settings, path, patient_id="P", now=clock)
    assert (report.format, report.received, report.accepted, report.quarantined) == (
        "nightscout",
        3,
        1,
        2,
    )
    assert reasons(settings, report) == ["missing glucose"] * 2


@pytest.mark.parametrize("patient_id", [123, 1.5, ["a"], {"id": "a"}, True])
def test_finding9_non_string_patient_id_is_quarantined_not_a_new_patient(
    settings, tmp_path, clock, patient_id
):
    records = [
        {"patient_id": patient_id, "time": "2026-01-01T10:00:00Z", "glucose": 100},
        {"patient_id": "A", "time": "2026-01-01T10:00:00Z", "glucose": 100},
    ]
    report = ingest_records(settings, records, now=clock)
    assert (report.received, report.accepted, report.quarantined) == (2, 1, 1)
    assert reasons(settings, report) == ["patient id must be a string"]
    assert len(open_metadata(settings.lake).patient_keys()) == 1
    path = write(tmp_path / "r.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    from_file = ingest_path(settings, path, now=clock)
    assert (from_file.received, from_file.accepted, from_file.quarantined) == (2, 1, 1)


def test_finding9_conflicting_mg_dl_and_mmol_l_are_quarantined(settings, tmp_path, clock):
    path = write(
        tmp_path / "both.csv",
        "patient_id,time,glucose_mg_dl,glucose_mmol_l\n"
        "A,2026-01-01T10:00:00Z,100,5.6\n"  # agree (5.6 mmol/L = 100.9 mg/dL): one reading
        "A,2026-01-01T10:05:00Z,100,3.0\n"  # disagree
        "A,2026-01-01T10:10:00Z,,6.0\n"  # mmol/L only: read as mmol/L
        "A,2026-01-01T10:15:00Z,99,\n"  # mg/dL only
        "A,2026-01-01T10:20:00Z,abc,5.5\n",  # disagree (not a number)
    )
    report = ingest_path(settings, path, now=clock)
    assert (report.received, report.accepted, report.quarantined) == (5, 3, 2)
    assert reasons(settings, report) == ["conflicting glucose_mg_dl and glucose_mmol_l"] * 2
    got = sorted((r["original_value"], r["original_unit"]) for r in readings(settings, report))
    assert got == [(6.0, "mmol/L"), (99.0, "mg/dL"), (100.0, "mg/dL")]
    posted = ingest_records(
        settings,
        [
            {
                "patient_id": "B",
                "time": "2026-01-01T10:00:00Z",
                "glucose_mg_dl": 100,
                "glucose_mmol_l": 7.0,
            }
        ],
        now=clock,
    )
    assert (posted.accepted, posted.quarantined) == (0, 1)


# --- 11: names in the metadata store -------------------------------------------------------------


def test_finding11_file_names_and_folders_never_reach_the_lake(settings, tmp_path, clock):
    folder = tmp_path / "Casey Hidden"
    folder.mkdir()
    path = write(folder / "CaseyHidden_glucose_6-20-2015.csv", HEADER + GOOD)
    report = ingest_path(settings, path, now=clock)
    assert report.accepted == 1
    record = open_metadata(settings.lake).batch_by_sha256(
        __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    )
    assert record is not None
    assert record.source_name == "csv file"
    lake = Path(settings.lake.root)
    files = [f for f in lake.rglob("*") if f.is_file()]
    assert any(f.name.endswith(".db") for f in files)
    for file in files:
        data = file.read_bytes()
        for name in ("CaseyHidden", "Casey Hidden", "6-20-2015", str(tmp_path)):
            assert name.encode() not in data, (file, name)
    for db in (f for f in files if f.suffix == ".db"):
        with sqlite3.connect(db) as con:
            tables = [
                t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                for row in con.execute(f'SELECT * FROM "{table}"'):
                    assert not any("Casey" in str(v) for v in row), (table, row)


def test_finding2_parquet_instants_at_the_int64_limits_are_quarantined(settings, tmp_path, clock):
    """A typed instant at the end of the timestamp range is DuckDB's infinity: no time."""
    path = tmp_path / "limits.parquet"
    good = int(dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC).timestamp() * 1_000_000)
    limits = [2**63 - 1, -(2**63) + 1, 0, good]
    pq.write_table(
        pa.table(
            {
                "id": ["A"] * 4,
                "time": pa.array(limits, pa.timestamp("us", tz="UTC")),
                "gl": [100] * 4,
            }
        ),
        path,
    )
    report = ingest_path(settings, path, now=clock)
    assert (report.received, report.accepted, report.quarantined) == (4, 1, 3)
    assert sorted(reasons(settings, report)) == [
        "time outside the plausible range",
        "unparsable time",
        "unparsable time",
    ]


# --- 3: what ingest accepts, the gate publishes ------------------------------------------------


@pytest.mark.parametrize("glucose", ["15", "700"])
def test_finding3_a_reading_the_gate_would_set_aside_is_quarantined_at_ingest(
    settings, clock, tmp_path, glucose
):
    """Ingest's range (10-1000 mg/dL) is wider than the gate's (20-600): a reading between the
    two was answered "accepted" and then set aside by the run. Ingest now applies the narrower."""
    path = write(tmp_path / "r.csv", HEADER + GOOD + f"A,2026-01-01T10:10:00Z,{glucose},UTC\n")
    report = ingest_path(settings, path, now=clock)
    assert (report.accepted, report.quarantined) == (1, 1)
    assert reasons(settings, report) == ["glucose outside the plausible range"]


def test_finding11_a_store_from_before_keeps_no_file_names_once_opened(
    settings, tmp_path, clock, monkeypatch
):
    """A lake made before issue 13 kept each file's path as its batch's source_name: opening
    its store replaces them by the neutral label, and the old text leaves the database file."""
    report = ingest_path(settings, write(tmp_path / "plain.csv", HEADER + GOOD), now=clock)
    db = Path(settings.lake.root) / "_state" / "metadata.db"
    old = "/home/casey/CaseyHidden_glucose_6-20-2015.csv"
    with sqlite3.connect(db) as con:  # as an older release wrote it
        con.execute("UPDATE batches SET source_name = ? WHERE batch_id = ?", (old, report.batch_id))
    assert b"CaseyHidden" in db.read_bytes()
    # a new process (this one already checked the store when it was made)
    monkeypatch.setattr("glucosestream.lake.metadata._NEUTRALISED", set())
    meta = open_metadata(settings.lake)
    assert meta.batch_records([report.batch_id])[report.batch_id].source_name == "csv file"
    assert b"CaseyHidden" not in db.read_bytes()
    assert meta.neutralise_source_names() == 0  # once done, opening changes nothing


# --- S3 (verification-findings.md): one record with two fields for one column ------------------


def _s3_records(extra: dict) -> list[dict]:
    return [
        {"patient_id": "P1", "time": "2026-01-20T00:00:00Z", "glucose_mg_dl": 100},
        {"patient_id": "P1", "time": "2026-01-20T00:05:00Z", "glucose_mg_dl": 100, **extra},
        {"patient_id": "P1", "time": "2026-01-20T00:10:00Z", "glucose_mg_dl": 101},
    ]


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"Time": "x"}, "two fields name the time"),
        ({" time": "2026-01-20T00:06:00Z"}, "two fields name the time"),
        ({"TIME ": "2026-01-20T00:05:00Z"}, "two fields name the time"),
        ({"Glucose_mg_dl": 250}, "two fields name the glucose"),
        ({"GLUCOSE_MMOL_L": 5.5, "glucose_mmol_l": 5.6}, "two fields name the glucose"),
        ({"Patient_ID": "P2"}, "two fields name the patient_id"),
        ({"TZ": "UTC", "tz": "Europe/Paris"}, "two fields name the tz"),
    ],
)
def test_s3_a_record_with_two_fields_for_one_column_is_quarantined_alone(
    settings, tmp_path, clock, extra, reason
):
    records = _s3_records(extra)
    report = ingest_records(settings, records, now=clock)
    assert (report.received, report.accepted, report.quarantined) == (3, 2, 1)
    assert accounted(report)
    assert reasons(settings, report) == [reason]
    assert len(open_metadata(settings.lake).patient_keys()) == 1  # "P2" named no patient
    for name, text in (
        ("r.jsonl", "".join(json.dumps(r) + "\n" for r in records)),
        ("r.json", json.dumps(records)),
    ):
        from_file = ingest_path(settings, write(tmp_path / name, text), now=clock)
        assert (from_file.received, from_file.accepted, from_file.quarantined) == (3, 2, 1)
        assert reasons(settings, from_file) == [reason]


def test_s3_records_spelling_a_column_differently_are_each_read(settings, tmp_path, clock):
    records = [
        {"patient_id": "P1", "time": "2026-01-20T00:00:00Z", "glucose_mg_dl": 100},
        {"Patient_ID": "P1", " Time": "2026-01-20T00:05:00Z", "GLUCOSE_MG_DL": 110},
        # fields no column reads may repeat a name: nothing is ambiguous
        {
            "patient_id": "P1",
            "time": "2026-01-20T00:10:00Z",
            "glucose_mg_dl": 120,
            "note": 1,
            "Note": 2,
        },
    ]
    report = ingest_records(settings, records, now=clock)
    assert (report.received, report.accepted, report.quarantined) == (3, 3, 0)
    got = sorted((r["original_value"], r["ts"].minute) for r in readings(settings, report))
    assert got == [(100.0, 0), (110.0, 5), (120.0, 10)]
    path = write(tmp_path / "r.jsonl", "".join(json.dumps(r) + "\n" for r in records[::-1]))
    assert ingest_path(settings, path, now=clock).quarantined == 0


def test_s3_a_csv_header_that_repeats_a_column_still_refuses_the_file(settings, tmp_path):
    path = write(tmp_path / "dup.csv", "patient_id,time,Time,glucose_mg_dl\nA,t,t,1\n")
    with pytest.raises(InvalidInput, match="the header repeats a column name"):
        ingest_path(settings, path)


def test_s3_http_quarantines_the_ambiguous_reading_alone(settings):
    from fastapi.testclient import TestClient

    from glucosestream.access import create_token
    from glucosestream.app import create_app

    token = create_token(settings.lake, "admin", label="a", now=START)
    body = {
        "readings": [
            {"patient_id": "P1", "time": "2026-01-20T00:00:00Z", "glucose_mg_dl": 100},
            {"patient_id": "P1", "time": "2026-01-20T00:05:00Z", "Time": "x", "glucose_mg_dl": 100},
        ]
    }
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/readings", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["received"], answer["accepted"], answer["quarantined"]) == (2, 1, 1)
    assert answer["row_errors"] == [{"index": 1, "reason": "two fields name the time"}]


def test_v8_an_mmol_value_near_the_float_limit_is_quarantined_without_a_warning(
    settings, clock, tmp_path
):
    """1e308 mmol/L overflowed to inf in the fast path's conversion with a RuntimeWarning (an
    error under -W error, as pytest runs here); the row is simply out of range."""
    path = write(
        tmp_path / "big.csv",
        "patient_id,time,glucose_mmol_l\nA,2026-01-01T10:05:00Z,5.5\nA,2026-01-01T10:10:00Z,1e308\n",
    )
    report = ingest_path(settings, path, now=clock)
    assert (report.accepted, report.quarantined) == (1, 1)
    assert reasons(settings, report) == ["glucose outside the plausible range"]
