"""How the lake writes a run: one snapshot per table, each replaced data file read once, rows
kept from a rewritten file stored apart from the new rows, and files a key prefix covers whole
dropped unread. These are what make a run on an object store cheap in requests."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.io import load_file_io

from glucosestream.config import LakeSettings
from glucosestream.ingest import ingest_path
from glucosestream.lake import Scope, open_lakehouse, open_metadata
from glucosestream.lake.storage import LakeFileIO, iceberg_properties, open_storage
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.readings import READING_SCHEMA

HEAD = "patient_id,device_id,time,glucose_mg_dl,tz\n"


def _days(patient: str, days: range, value: int) -> str:
    return "".join(
        f"{patient},d,2026-01-{d:02d}T{h:02d}:00:00Z,{value + h},UTC\n"
        for d in days
        for h in range(24)
    )


@pytest.fixture
def lake_with_days(settings, tmp_path, clock):
    """Six patients (keys under several hex digits) with days 1-4, published in one run."""
    text = "".join(_days(p, range(1, 5), 90 + 5 * i) for i, p in enumerate("ABCDEF"))
    (tmp_path / "days.csv").write_text(HEAD + text)
    ingest_path(settings, tmp_path / "days.csv", now=clock)
    assert run_pipeline(settings, now=clock).status == "published"
    return settings


def _daily(settings):
    lake = open_lakehouse(settings.lake, TABLES)
    return lake, lake.read_daily(open_metadata(settings.lake).published().of("daily"))


def _day_keys(rows: pa.Table) -> list[tuple[str, dt.date]]:
    return sorted(zip(rows["patient_key"].to_pylist(), rows["date"].to_pylist(), strict=True))


def _data_files(table) -> set[str]:
    return set(table.inspect.files()["file_path"].to_pylist())


def test_a_replacement_is_one_snapshot_reading_each_file_once(lake_with_days, opened, key_filter):
    lake, before = _daily(lake_with_days)
    keys = tuple(sorted(set(before["patient_key"].to_pylist())))[:4]
    scope = Scope(patient_keys=keys, from_date=dt.date(2026, 1, 3))
    in_scope = before.filter(scope.covers(before))
    assert in_scope.num_rows == 8
    new = in_scope.set_column(
        in_scope.schema.get_field_index("mean_mg_dl"),
        "mean_mg_dl",
        pc.add(in_scope["mean_mg_dl"], 1000.0),
    )
    parent = lake.daily.current_snapshot().snapshot_id
    old_files = _data_files(lake.daily)
    opened.clear()

    snapshot_id = lake.replace_rows("daily", [(new, scope)])

    assert lake.daily.snapshot_by_id(snapshot_id).parent_snapshot_id == parent
    assert opened
    assert set(opened) <= old_files  # only the replaced files were read...
    assert set(opened.values()) == {1}  # ...each once
    after = lake.read_daily(snapshot_id)
    assert after.num_rows == before.num_rows
    changed = after.filter(pc.greater(after["mean_mg_dl"], 500.0))
    assert _day_keys(changed) == _day_keys(in_scope)
    untouched = after.filter(pc.invert(scope.covers(after)))
    assert untouched.to_pylist() == before.filter(pc.invert(scope.covers(before))).to_pylist()


def test_rows_kept_from_a_rewritten_file_are_left_alone_by_the_next_run(
    lake_with_days, tmp_path, clock, key_filter
):
    settings = lake_with_days
    for day in (5, 6):  # every patient gets a new day, twice
        text = "".join(_days(p, range(day, day + 1), 100) for p in "ABCDEF")
        (tmp_path / f"day{day}.csv").write_text(HEAD + text)
        ingest_path(settings, tmp_path / f"day{day}.csv", now=clock)
        if day == 5:
            assert run_pipeline(settings, now=clock).status == "published"
            lake = open_lakehouse(settings.lake, TABLES)
            kept_files = {
                f["file_path"]
                for f in lake.daily.inspect.files().to_pylist()
                if f["readable_metrics"]["date"]["upper_bound"] < dt.date(2026, 1, 5)
            }
            assert kept_files  # days 1-4 were written apart from day 5
    assert run_pipeline(settings, now=clock).status == "published"
    lake, daily = _daily(settings)
    assert kept_files <= _data_files(lake.daily)  # the second run did not rewrite them
    assert daily.num_rows == 6 * 6


def test_a_prefix_replacement_drops_the_files_it_covers_unread(lake_with_days, opened):
    lake, before = _daily(lake_with_days)
    digit = before["patient_key"][0].as_py()[0]
    scope = Scope(prefix=digit)
    rows = before.filter(scope.covers(before))
    opened.clear()
    lake.replace_rows("daily", [(rows, scope)])
    assert not opened
    after = lake.read_daily(lake.daily.current_snapshot().snapshot_id)
    assert after.to_pylist() == before.to_pylist()


def test_appending_many_parts_makes_one_snapshot_and_one_manifest(settings):
    lake = open_lakehouse(settings.lake, TABLES)
    parts = [_readings(f"{digit}{'0' * 31}") for digit in "0123456789abcdef"]
    snapshot_id = lake.append_rows("readings", iter(parts))
    snapshot = lake.readings.snapshot_by_id(snapshot_id)
    assert snapshot.parent_snapshot_id is None
    assert len(snapshot.manifests(lake.readings.io)) == 1
    assert len(_data_files(lake.readings)) == 16
    assert (
        lake.read_readings(snapshot_id, [p["patient_key"][0].as_py() for p in parts]).num_rows == 16
    )


def _readings(patient_key: str) -> pa.Table:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    row = {
        "patient_key": patient_key,
        "device_id": "dev-1",
        "source": "csv",
        "ts": at,
        "glucose_mg_dl": 100.0,
        "original_value": 100.0,
        "original_unit": "mg/dL",
        "flags": 0,
        "tz": "UTC",
        "batch_id": "b",
        "ingested_at": at,
    }
    return pa.Table.from_pylist([row], schema=READING_SCHEMA)


def test_s3_objects_are_written_with_one_request_each():
    """pyarrow writes a small object with one PUT only when opens may be delayed (otherwise a
    multipart upload: three requests); the raw zone and the Iceberg tables both use that."""
    settings = LakeSettings(
        root="s3://bucket/lake",
        state_dir="/nonexistent",
        s3_endpoint_url="http://127.0.0.1:9",
        s3_access_key_id="k",
        s3_secret_access_key="s",
    )
    io = LakeFileIO({"s3.endpoint": "http://127.0.0.1:9", "s3.region": "us-east-1"})
    for fs in (open_storage(settings).fs, io.fs_by_scheme("s3", "bucket")):
        _, (options,) = fs.__reduce__()
        assert options["allow_delayed_open"] is True
        assert options["endpoint_override"] == "127.0.0.1:9"


def test_tables_on_s3_are_read_and_written_through_the_lake_file_io():
    s3 = LakeSettings(root="s3://bucket/lake", state_dir="/nonexistent")
    assert isinstance(load_file_io(iceberg_properties(s3)), LakeFileIO)
    local = LakeSettings(root="/tmp/lake")
    assert not isinstance(load_file_io(iceberg_properties(local)), LakeFileIO)


def test_a_replacement_from_each_patients_own_day_keeps_their_earlier_days(lake_with_days):
    lake, before = _daily(lake_with_days)
    early, late = sorted(set(before["patient_key"].to_pylist()))[:2]
    scope = Scope.days_from({early: dt.date(2026, 1, 2), late: dt.date(2026, 1, 4)})
    new = before.filter(scope.covers(before))
    assert _day_keys(new) == [(early, dt.date(2026, 1, d)) for d in (2, 3, 4)] + [
        (late, dt.date(2026, 1, 4))
    ]
    new = new.set_column(
        new.schema.get_field_index("mean_mg_dl"), "mean_mg_dl", pc.add(new["mean_mg_dl"], 1000.0)
    )
    after = lake.read_daily(lake.replace_rows("daily", [(new, scope)]))
    assert _day_keys(after.filter(pc.greater(after["mean_mg_dl"], 500.0))) == _day_keys(new)
    assert after.num_rows == before.num_rows  # the late patient's days 1-3 stay, once
    kept = after.filter(pc.invert(scope.covers(after)))
    assert kept.to_pylist() == before.filter(pc.invert(scope.covers(before))).to_pylist()
