"""The vectorised fast path gives exactly what normalize.sql gives, and is taken when it can be.

Each comparison runs the same raw rows through both: ``normalise_fast`` (when it does not step
aside) and the query, which stays the definition of the rules. End-to-end tests ingest the same
file twice, once with the fast path switched off, and compare the raw batches written.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.engines import open_engine
from glucosestream.formats import RAW_SCHEMA, ParsedFile, tabular
from glucosestream.formats.jsontext import field_text
from glucosestream.ingest import accept, fastpath, ingest_path, normalise
from glucosestream.ingest.accept import Part
from glucosestream.lake import RawZone
from glucosestream.readings import ReadingFlag

from .conftest import write

SECRET = "fastpath-test-secret-0123456789abcdef"


def _settings(root: Path) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(root)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )


def _incoming(settings: Settings, rows: pa.Table) -> pa.Table:
    part = Part(ParsedFile(rows), "test", "csv", "0" * 64)
    incoming, _, _ = accept._incoming(settings, [part], SECRET.encode(), accept.utc_now)
    return incoming


def _plain(table: pa.Table) -> list[dict[str, Any]]:
    """Rows with dictionary columns decoded and instants as microseconds, for comparing."""
    columns = {}
    for name in table.column_names:
        column = table[name]
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        columns[name] = column.to_pylist()
    values = zip(*columns.values(), strict=True)
    rows = [dict(zip(columns, row, strict=True)) for row in values]
    for row in rows:  # the raw text is only kept for quarantined rows (the fast path has none)
        if row["reason"] is None:
            row["raw_glucose"] = None
    return rows


# When the rows are received: a reading may be dated up to this + readings.FUTURE_SKEW.
RECEIVED_AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _both(settings: Settings, rows: pa.Table) -> tuple[pa.Table | None, pa.Table]:
    incoming = _incoming(settings, rows)
    fast = fastpath.normalise_fast(incoming, normalise.normalise_params(settings, RECEIVED_AT))
    engine = open_engine(settings.engine)
    try:
        general = normalise.run_normalize_sql(
            engine, settings, incoming, ("%Y-%m-%dT%H:%M:%S",), received_at=RECEIVED_AT
        )
    finally:
        engine.close()
    return fast, general


def _raw(records: list[dict[str, Any]]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in RAW_SCHEMA.names}
    for line, record in enumerate(records, start=2):
        for name in RAW_SCHEMA.names:
            columns[name].append(record.get(name))
        columns["line"][-1] = line
        columns["flags"][-1] = record.get("flags", 0)
    return pa.table(columns, schema=RAW_SCHEMA)


def test_clean_rows_take_the_fast_path_and_match_the_query(tmp_path):
    settings = _settings(tmp_path / "lake")
    start = dt.datetime(2026, 3, 29, 0, 0, tzinfo=dt.UTC)  # a DST day in Europe: no matter
    records = [
        {
            "patient_id": f"P{i % 3}",
            "device_id": None if i % 5 == 0 else f"D{i % 2}",
            "time": (start + dt.timedelta(minutes=5 * (i // 2))).isoformat(),
            "glucose": str(70 + i) if i % 4 else f"{(70 + i) / 18:.3f}",
            "unit": "mg/dL" if i % 4 else " MMOL/l",
            "tz": "Europe/Berlin" if i % 3 else None,
        }
        for i in range(60)
    ]
    records.append(dict(records[3]))  # an exact repeat: a duplicate
    records.append({**records[10], "glucose": "99"})  # same key, other value: a duplicate
    fast, general = _both(settings, _raw(records))
    assert fast is not None
    assert _plain(fast) == _plain(general)
    assert sum(fast["duplicate"].to_pylist()) == 2


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"time": "2026-01-01T10:00:00"}, "a local time needs its zone's rules"),
        ({"time": "2026-01-01T10:00Z"}, "Arrow reads HH:MMZ, DuckDB does not"),
        ({"time": "2026-01-01T10:00:00z"}, "lowercase z"),
        ({"glucose": " 90"}, "spaces around a number"),
        ({"glucose": "nan"}, "not a number"),
        ({"glucose": "5000"}, "implausible"),
        ({"glucose": None}, "missing glucose"),
        ({"unit": "\tmg/dL"}, "a tab the query's trim keeps"),
        ({"unit": "ppm"}, "unknown unit"),
        ({"patient_id": None}, "missing patient"),
        ({"problem": "a record narrower than its header"}, "a parser's problem"),
        ({"flags": int(ReadingFlag.SCAN)}, "a scan"),
        ({"time": "1989-12-31T23:59:59Z"}, "before 1990"),
        ({"time": "2026-06-01T00:10:01Z"}, "after receipt + the skew"),
        ({"tz": "Mars/Olympus_Mons"}, "an unknown zone, even with an offset"),
        ({"tz": "localtime"}, "a zoneinfo key DuckDB does not know"),
    ],
)
def test_anything_unusual_goes_to_the_query(tmp_path, change, why):
    settings = _settings(tmp_path / "lake")
    good = {"patient_id": "A", "time": "2026-01-01T10:00:00Z", "glucose": "100"}
    records = [good, {**good, "time": "2026-01-01T10:05:00Z", **change}]
    fast, _ = _both(settings, _raw(records))
    assert fast is None, why


_TIMES = st.one_of(
    st.builds(
        lambda day, minute, suffix: (
            f"2026-03-{day:02d}T{minute // 60:02d}:{minute % 60:02d}:00" + suffix
        ),
        st.integers(25, 31),
        st.integers(0, 24 * 60 - 1),
        st.sampled_from(["Z", "+01:00", "-0500", "+02", "", ".5Z", " Z"]),
    ),
    st.sampled_from(
        [None, "", "2026-03-29T02:30:00", "yesterday", "2026-03-29T03:00Z", "inf", "-infinity"]
    ),
    st.sampled_from(  # the plausible range's ends (RECEIVED_AT + 10 minutes), either side
        [
            "1990-01-01T00:00:00Z",
            "1989-12-31T23:59:59.999999Z",
            "2026-06-01T00:10:00Z",
            "2026-06-01T00:10:00.000001Z",
            "2026-06-01T02:10:00+02:00",
            "294247-01-10T04:00:54Z",
        ]
    ),
)
_RECORD = st.fixed_dictionaries(
    {
        "patient_id": st.sampled_from(["A", "B", " ", None]),
        "device_id": st.sampled_from(["d1", "d2", "", None]),
        "time": _TIMES,
        "glucose": st.one_of(
            st.integers(5, 1100).map(str),
            st.sampled_from(["5.5", "1e2", " 90", "", None, "abc", "nan", "inf"]),
        ),
        "unit": st.sampled_from([None, "", "mg/dL", "mmol/L", "MG/DL", " mmol / l ", "\tmg/dL"]),
        "tz": st.sampled_from([None, "UTC", "Europe/Berlin", "Nowhere/City", "Factory"]),
        "flags": st.sampled_from([0, 0, 0, int(ReadingFlag.SCAN)]),
    }
)


@hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(_RECORD, min_size=1, max_size=12), clean=st.booleans())
def test_the_fast_path_never_disagrees_with_the_query(tmp_path, records, clean):
    if clean:  # steer towards inputs the fast path takes, so both sides are compared often
        records = [
            {**r, "patient_id": "A", "flags": 0, "glucose": "100", "unit": None}
            | {"time": f"2026-03-29T0{i % 10}:00:00+01:00" if i % 3 else "2026-03-29T01:00:00Z"}
            | {"tz": "Europe/Berlin" if i % 2 else None}
            for i, r in enumerate(records)
        ]
    settings = _settings(tmp_path / "lake")
    fast, general = _both(settings, _raw(records))
    if fast is not None:
        assert _plain(fast) == _plain(general)
    if clean:
        assert fast is not None


def _batch_contents(settings: Settings, report: accept.IngestReport) -> tuple[Any, ...]:
    batch = next(
        b for b in RawZone(Path(settings.lake.root)).list_batches() if b.batch_id == report.batch_id
    )
    readings = batch.readings().drop_columns(["batch_id", "ingested_at"]).to_pylist()
    manifest = batch.manifest()
    counts = {k: manifest[k] for k in ("received", "accepted", "duplicates", "quarantined")}
    return readings, batch.quarantine().to_pylist(), counts


def _ingest_both_ways(tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    taken: list[bool] = []
    real = fastpath.normalise_fast

    def spy(incoming: pa.Table, params: fastpath.FastPathParams) -> pa.Table | None:
        result = real(incoming, params)
        taken.append(result is not None)
        return result

    outcomes = []
    for name, fast in (("fast", spy), ("general", lambda *_: None)):
        monkeypatch.setattr(normalise, "normalise_fast", fast)
        settings = _settings(tmp_path / f"lake-{name}")
        report = ingest_path(settings, path)
        outcomes.append((report.received, report.accepted, report.duplicates, report.quarantined))
        outcomes.append(_batch_contents(settings, report))
    assert taken == [True]
    assert outcomes[0] == outcomes[2]
    assert outcomes[1] == outcomes[3]
    return outcomes


def test_a_csv_file_gives_the_same_batch_either_way(tmp_path, monkeypatch):
    path = write(
        tmp_path / "readings.csv",
        "patient_id,device_id,time,glucose_mg_dl,tz\n"
        + "".join(
            f"P{i % 2},d{i % 3},2026-01-01T{i // 12:02d}:{5 * (i % 12):02d}:00Z,{80 + i},UTC\n"
            for i in range(100)
        )
        + "P0,d0,2026-01-01T00:00:00Z,81,UTC\n",  # a repeat of line 2's key: a duplicate
    )
    outcomes = _ingest_both_ways(tmp_path, path, monkeypatch)
    assert outcomes[0] == (101, 100, 1, 0)


def test_a_parquet_file_with_typed_columns_gives_the_same_batch_either_way(tmp_path, monkeypatch):
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    table = pa.table(
        {
            "patient_id": pa.array([f"P{i % 3}" for i in range(50)]).dictionary_encode(),
            "time": pa.array(
                [start + dt.timedelta(minutes=5 * (i // 3)) for i in range(50)],
                pa.timestamp("ms", tz="UTC"),
            ),
            "glucose_mmol_l": pa.array([4.0 + i / 10 for i in range(50)], pa.float64()),
        }
    )
    path = tmp_path / "readings.parquet"
    pq.write_table(table, path)
    outcomes = _ingest_both_ways(tmp_path, path, monkeypatch)
    assert outcomes[0] == (50, 50, 0, 0)


def _same_rows(a: pa.Table, b: pa.Table) -> bool:
    return all(
        a[name].cast(b[name].type).equals(b[name])
        if a[name].type != b[name].type
        else a[name].equals(b[name])
        for name in b.column_names
    )


def test_arrow_jsonl_reader_gives_the_records_the_careful_reader_gives(tmp_path):
    lines = [
        '{"id": "A", "time": "2026-01-01T00:00:00Z", "gl": 100, "tz": "UTC"}',
        '{"id": "A", "time": "2026-01-01T00:05:00Z", "gl": null, "extra": 2.5}',
        '{"id": null, "ts": "x", "gl": 101, "device": "d\\u00e9v"}',
        '{"time": "2026-01-01 00:10:00", "gl": 102, "unit": "mg/dL"}',
    ]
    path = write(tmp_path / "r.jsonl", "\n".join(lines) + "\n")
    fast = tabular._read_jsonl_fast(path)
    assert fast is not None
    assert fast.rows.num_rows == 4
    assert _same_rows(fast.rows, tabular._read_jsonl_careful(path).rows)


def test_uniform_jsonl_is_read_with_every_field_typed_and_gives_the_same_rows(tmp_path):
    lines = [
        f'{{"id": "P{i % 3}", "time": "2026-01-01T00:{i:02d}:00Z", "gl": {90 + i}, '
        f'"ok": {str(i % 2 == 0).lower()}, "w": {i / 3}}}'
        for i in range(30)
    ]
    path = write(tmp_path / "r.jsonl", "\n".join(lines))  # no newline after the last line
    fast = tabular._read_jsonl_fast(path)
    assert fast is not None
    assert fast.rows["glucose"].type == pa.int64()
    assert _same_rows(fast.rows, tabular._read_jsonl_careful(path).rows)


@pytest.mark.parametrize(
    "text",
    [
        '{"id": "A", "time": "2026-01-01T00:00:00Z", "gl": 100}\n\n',  # a blank line
        '{"id": "A", "time": "2026-01-01T00:00:00Z", "gl": 100.0}\n',  # str writes 100.0
        '{"id": 7, "time": "2026-01-01T00:00:00Z", "gl": 100}\n',  # a number for an id
        '{"id": "A", "id": "B", "time": "2026-01-01T00:00:00Z", "gl": 1}\n',  # a repeated key
        '{"id": "A", "time": "2026-01-01T00:00:00Z", "gl": "1"}\n{"id": "A", "gl": 2}\n',
        "[1, 2]\n",
        '{"id": "A", "time": "2026-01-01T00:00:00Z", "gl": 1}\n{"id": "A", "gl": 1.5}\n',
    ],
)
def test_arrow_jsonl_reader_steps_aside_where_it_would_differ(tmp_path, text):
    assert tabular._read_jsonl_fast(write(tmp_path / "r.jsonl", text)) is None


def test_a_jsonl_file_gives_the_same_batch_either_way(tmp_path, monkeypatch):
    path = write(
        tmp_path / "r.jsonl",
        "".join(
            f'{{"patient_id": "P{i % 2}", "time": "2026-01-01T00:{i:02d}:00+01:00", '
            f'"glucose_mmol_l": "{4 + i / 10:.1f}"}}\n'
            for i in range(40)
        ),
    )
    outcomes = _ingest_both_ways(tmp_path, path, monkeypatch)
    assert outcomes[0] == (40, 40, 0, 0)


_JSON_VALUES = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@hsettings(max_examples=80, deadline=None)
@given(
    records=st.lists(
        st.dictionaries(st.sampled_from(["id", "time", "gl", "tz", "unit"]), _JSON_VALUES),
        min_size=1,
        max_size=8,
    )
)
def test_records_become_the_text_str_would_write(records):
    """Each field becomes the text ``str`` (or JSON, for nested values) makes of it; integer
    glucose may stay integers, whose text Arrow writes as ``str`` does."""
    records = [{"time": "t", "gl": 1, **r} for r in records]
    rows = tabular.raw_rows_from_records(records, source="test")
    for name, field in (("time", "time"), ("tz", "tz"), ("unit", "unit")):
        assert rows[name].to_pylist() == [field_text(r.get(field)) for r in records]
    # a patient id that is not a JSON string is not read: its row is quarantined
    text_id = [r.get("id") is None or isinstance(r.get("id"), str) for r in records]
    assert rows["patient_id"].to_pylist() == [
        r.get("id") if ok else None for r, ok in zip(records, text_id, strict=True)
    ]
    assert rows["problem"].to_pylist() == [
        None if ok else tabular.PATIENT_NOT_TEXT for ok in text_id
    ]
    glucose = rows["glucose"]
    assert glucose.cast(pa.string()).to_pylist() == [field_text(r.get("gl")) for r in records]
