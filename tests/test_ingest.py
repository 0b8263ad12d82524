"""Ingest: validation, quarantine with reasons, units, time zones, pseudonyms, accounting."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from glucosestream.errors import ConfigError, InvalidInput
from glucosestream.ingest import ingest_path, ingest_records
from glucosestream.lake import RawZone, open_metadata

from .conftest import FixedClock, write


@pytest.fixture
def clock():
    """Received after every reading of this module: the plausible range ends 10 minutes after
    receipt (readings.FUTURE_SKEW), and these readings are dated up to November 2026."""
    return FixedClock(dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC))


HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"


def _batch(settings, report):
    return next(
        b for b in RawZone(Path(settings.lake.root)).list_batches() if b.batch_id == report.batch_id
    )


def test_bad_rows_are_quarantined_with_reasons_and_every_row_is_accounted_for(
    settings, tmp_path, clock
):
    path = write(
        tmp_path / "mixed.csv",
        HEAD
        + "A,d1,2026-01-01T00:00:00Z,100,UTC\n"  # good
        + "A,d1,2026-01-01T00:00:00Z,100,UTC\n"  # exact duplicate
        + "A,d1,2026-01-01T00:05:00Z,101,UTC\n"  # good
        + ",d1,2026-01-01T00:10:00Z,99,UTC\n"  # no patient
        + "A,d1,not-a-time,99,UTC\n"  # bad time
        + "A,d1,2026-01-01T00:15:00Z,,UTC\n"  # no glucose
        + "A,d1,2026-01-01T00:20:00Z,abc,UTC\n"  # not a number
        + "A,d1,2026-01-01T00:25:00Z,5000,UTC\n"  # implausible
        + "A,d1,2026-01-01 00:30:00,98,Mars/Olympus\n",  # unknown zone
    )
    report = ingest_path(settings, path, now=clock)
    assert (report.received, report.accepted, report.duplicates, report.quarantined) == (9, 2, 1, 6)
    assert report.received == report.accepted + report.duplicates + report.quarantined
    quarantine = _batch(settings, report).quarantine().to_pylist()
    assert {(q["line"], q["reason"]) for q in quarantine} == {
        (5, "missing patient id"),
        (6, "unparsable time"),
        (7, "missing glucose"),
        (8, "glucose is not a number"),
        (9, "glucose outside the plausible range"),
        (10, "unknown time zone"),
    }
    assert dict(report.top_reasons)["unparsable time"] == 1


def test_mmol_per_litre_is_converted_and_the_original_kept(settings, tmp_path, clock):
    path = write(
        tmp_path / "mmol.csv",
        "patient_id,time,glucose_mmol_l\nA,2026-01-01T00:00:00Z,5.5\nA,2026-01-01T00:05:00Z,10\n",
    )
    report = ingest_path(settings, path, now=clock)
    rows = _batch(settings, report).readings().to_pylist()
    assert [r["glucose_mg_dl"] for r in rows] == pytest.approx([5.5 * 18.0156, 10 * 18.0156])
    assert {r["original_unit"] for r in rows} == {"mmol/L"}
    assert [r["original_value"] for r in rows] == [5.5, 10.0]


def test_unit_column_and_unknown_units(settings, tmp_path, clock):
    path = write(
        tmp_path / "units.csv",
        "id,time,gl,unit\nA,2026-01-01T00:00:00Z,6,mmol/L\nA,2026-01-01T00:05:00Z,108,mg/dL\n"
        "A,2026-01-01T00:10:00Z,7,g/L\n",
    )
    report = ingest_path(settings, path, now=clock)
    assert (report.accepted, report.quarantined) == (2, 1)
    assert report.top_reasons[0][0].startswith("unknown unit")


def test_times_without_offset_are_local_to_the_given_zone(settings, tmp_path, clock):
    path = write(
        tmp_path / "local.csv",
        "patient_id,time,glucose_mg_dl\n"
        "A,2026-07-01 08:00:00,100\n"
        "A,2026-07-01T09:00:00+00:00,100\n",
    )
    report = ingest_path(settings, path, tz="Europe/Berlin", now=clock)
    rows = _batch(settings, report).readings().to_pylist()
    assert [r["ts"] for r in rows] == [
        dt.datetime(2026, 7, 1, 6, 0, tzinfo=dt.UTC),  # 08:00 CEST = 06:00 UTC
        dt.datetime(2026, 7, 1, 9, 0, tzinfo=dt.UTC),  # explicit offset wins
    ]
    assert {r["tz"] for r in rows} == {"Europe/Berlin"}


def test_external_ids_and_serials_never_reach_the_lake(settings, tmp_path, clock):
    path = write(
        tmp_path / "ids.csv",
        HEAD + "JaneDoe-1984,SERIAL-XYZ-777,2026-01-01T00:00:00Z,100,UTC\n"
        "JaneDoe-1984,SERIAL-XYZ-777,bad,100,UTC\n",
    )
    ingest_path(settings, path, now=clock)
    lake = Path(settings.lake.root)
    for file in lake.rglob("*"):
        if file.is_file() and "_state" not in file.parts:
            data = file.read_bytes()
            assert b"JaneDoe" not in data, file
            assert b"SERIAL-XYZ" not in data, file
    assert open_metadata(settings.lake).patient_keys()  # the mapping lives in the metadata store


def test_patient_flag_assigns_a_whole_file(settings, tmp_path, clock):
    path = write(tmp_path / "one.csv", "time,glucose_mg_dl\n2026-01-01T00:00:00Z,100\n")
    report = ingest_path(settings, path, patient_id="P1", now=clock)
    assert report.accepted == 1
    # a file whose every row lacks a patient is refused, unwritten (issue 13, finding 12)
    with pytest.raises(ConfigError, match="pass --patient"):
        ingest_path(
            settings, write(tmp_path / "two.csv", "time,gl\n2026-01-01T00:05:00Z,90\n"), now=clock
        )


def test_jsonl_and_parquet_inputs(settings, tmp_path, clock):
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps(
                {"patient_id": "A", "time": f"2026-01-01T00:{m:02d}:00Z", "glucose_mg_dl": 100 + m}
            )
            for m in range(0, 30, 5)
        )
    )
    assert ingest_path(settings, jsonl, now=clock).accepted == 6
    parquet = tmp_path / "r.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["B", "B"],
                "time": pa.array(
                    [
                        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                        dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC),
                    ],
                    pa.timestamp("us", tz="UTC"),
                ),
                "gl": [90, 95],
            }
        ),
        parquet,
    )
    report = ingest_path(settings, parquet, now=clock)
    assert (report.format, report.accepted) == ("parquet", 2)
    rows = _batch(settings, report).readings().to_pylist()
    assert rows[1]["ts"] == dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)


def test_records_posted_as_json_go_through_the_same_checks(settings, clock):
    records = [
        {"patient_id": "A", "time": "2026-01-01T00:00:00Z", "glucose_mg_dl": 100},
        {"patient_id": "A", "time": "yesterday", "glucose_mg_dl": 100},
    ]
    report = ingest_records(settings, records, now=clock)
    assert (report.accepted, report.quarantined) == (1, 1)
    again = ingest_records(settings, records, now=clock)
    assert again.already_ingested_as == report.batch_id


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b"", None, "empty"),
        (b"patient_id,glucose_mg_dl\nA,100\n", 1, "no time column"),
        (b"patient_id,time\nA,2026-01-01T00:00:00Z\n", 1, "no glucose column"),
        (b"patient_id,time,gl,gl\nA,t,1,2\n", 1, "repeats a column"),
        (b"patient_id,time,gl\nA,2026-01-01T00:00:00Z,100\nA,x\n", 3, "expected 3 fields"),
        (b"patient_id,time,gl\n\xff\xfe\x00junk\n", 2, "not UTF-8"),
    ],
)
def test_malformed_csv_gives_one_error_naming_file_line_and_problem(
    settings, tmp_path, content, line, words
):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInput) as caught:
        ingest_path(settings, path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert words in message
    assert caught.value.line == line
    if line is not None:
        assert f"line {line}" in message
    assert not any(RawZone(Path(settings.lake.root)).list_batches())


def test_malformed_jsonl_names_the_line(settings, tmp_path):
    path = write(
        tmp_path / "bad.jsonl", '{"id": "A", "time": "2026-01-01T00:00:00Z", "gl": 1}\n{oops\n'
    )
    with pytest.raises(InvalidInput, match=r"bad.jsonl, line 2: not valid JSON"):
        ingest_path(settings, path)


def test_binary_junk_is_refused_with_a_format_hint(settings, tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(InvalidInput, match="cannot tell the format"):
        ingest_path(settings, path)


def test_the_trend_is_read_the_same_by_the_fast_path_and_the_query(settings, duck):
    """direction/rate (issue 17): the query is the definition; the fast path gives the same, or
    steps aside. A bad trend is dropped, never a quarantine."""
    from glucosestream.formats import ParsedFile
    from glucosestream.formats.rows import RowBuilder
    from glucosestream.ingest import fastpath, normalise
    from glucosestream.ingest.batch import Part, incoming_rows

    received = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    trends = [
        ("Flat", "0.5"), ("SingleUp", "-2"), ("flat", "1e1"), (None, "20"), ("DoubleUp", "-20.5"),
        ("NONE", "nan"), ("RATE OUT OF RANGE", "inf"), ("", None), ("NOT COMPUTABLE", "1.5"),
    ]  # fmt: skip
    expected = [
        ("Flat", 0.5), ("SingleUp", -2.0), (None, 10.0), (None, 20.0), ("DoubleUp", None),
        ("NONE", None), ("RATE OUT OF RANGE", None), (None, None), ("NOT COMPUTABLE", 1.5),
    ]  # fmt: skip
    rows = RowBuilder()
    for i, (direction, rate) in enumerate(trends):
        rows.add(
            i + 1,
            time=f"2026-03-01T08:{i:02d}:00Z",
            glucose="100",
            patient_id="P",
            direction=direction,
            rate=rate,
        )
    part = Part(ParsedFile(rows.table()), "test", "json", "0" * 64)
    incoming, _, _ = incoming_rows(settings, [part], b"k" * 32)
    params = normalise.normalise_params(settings, received)
    fast = fastpath.normalise_fast(incoming, params)
    query = normalise.run_normalize_sql(
        duck, settings, incoming, ("%Y-%m-%dT%H:%M:%S",), received_at=received
    )
    assert fast is not None
    for table in (fast, query):
        got = list(
            zip(table["direction"].to_pylist(), table["rate_mg_dl_min"].to_pylist(), strict=True)
        )
        assert got == expected
        assert table["reason"].null_count == len(trends)
    # text Arrow cannot read as a number: the fast path steps aside, the query drops the rate
    rows.add(10, time="2026-03-01T08:30:00Z", glucose="100", patient_id="P", rate=" 1.5 x")
    part = Part(ParsedFile(rows.table()), "test", "json", "1" * 64)
    incoming, _, _ = incoming_rows(settings, [part], b"k" * 32)
    assert fastpath.normalise_fast(incoming, params) is None
    query = normalise.run_normalize_sql(
        duck, settings, incoming, ("%Y-%m-%dT%H:%M:%S",), received_at=received
    )
    assert query["rate_mg_dl_min"].to_pylist()[-1] is None
    assert query["reason"].null_count == len(trends) + 1
