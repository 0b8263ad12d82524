"""Table layout: partitioning, write order, and schema evolution on a lake that has data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa

from glucosestream.ingest import ingest_path
from glucosestream.lake import TableRegistry, open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline, table_registry
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.synth import CohortSpec, write_cohort


def test_readings_are_partitioned_by_key_prefix_and_day(settings, tmp_path):
    path = Path(
        write_cohort(CohortSpec(patients=4, days=2, seed=2), tmp_path / "c.csv", "csv").path
    )
    ingest_path(settings, path)
    run_pipeline(settings)
    lake = open_lakehouse(settings.lake, TABLES)
    spec = lake.readings.spec()
    assert [f.name for f in spec.fields] == ["patient_key_prefix", "ts_day"]
    files = lake.readings.inspect.files().to_pylist()
    prefixes = {f["partition"]["patient_key_prefix"] for f in files}
    keys = open_metadata(settings.lake).patient_keys()
    assert prefixes == {k[0] for k in keys}


def test_a_new_column_is_added_to_a_lake_that_has_data(settings, tmp_path, monkeypatch):
    path = Path(
        write_cohort(CohortSpec(patients=2, days=1, seed=2), tmp_path / "c.csv", "csv").path
    )
    ingest_path(settings, path)
    assert run_pipeline(settings).status == "published"
    before = open_lakehouse(settings.lake, TABLES)
    published = open_metadata(settings.lake).published()
    old_rows = before.read_daily(published.of("daily")).num_rows

    grown = table_registry.DAILY_METRICS.schema.append(pa.field("pct_70_140", pa.float64()))
    evolved = dataclasses.replace(table_registry.DAILY_METRICS, schema=grown)
    registry = TableRegistry(tuple(evolved if s.short == "daily" else s for s in TABLES))
    monkeypatch.setattr(table_registry, "TABLES", registry)
    lake = open_lakehouse(settings.lake, registry)
    assert "pct_70_140" in lake.daily.schema().column_names
    daily = lake.read_daily(published.of("daily"))
    assert daily.num_rows == old_rows
    assert daily["pct_70_140"].null_count == old_rows  # old rows read as null
    # The table keeps working with the new column.
    full = run_pipeline(settings, full_refresh=True)
    assert full.status == "published"


def test_read_table_reads_a_results_table_at_a_pinned_snapshot(settings, tmp_path):
    path = Path(
        write_cohort(CohortSpec(patients=2, days=15, seed=3), tmp_path / "c.csv", "csv").path
    )
    ingest_path(settings, path)
    assert run_pipeline(settings).status == "published"
    lake = open_lakehouse(settings.lake, TABLES)
    published = open_metadata(settings.lake).published()
    assert lake.read_table("periods", None).num_rows == 0
    periods = lake.read_table("periods", published.of("periods"))
    assert periods.num_rows > 0
    key = periods["patient_key"][0].as_py()
    one = lake.read_table("periods", published.of("periods"), f"patient_key == '{key}'")
    assert set(one["patient_key"].to_pylist()) == {key}
    assert one.schema == lake.read_table("periods", None).schema
