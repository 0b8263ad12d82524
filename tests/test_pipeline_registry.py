"""The table registry is the one list of tables: a new table is one entry (and the step that
computes its rows); the run stages, publishes, records and recovers it with no other change."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from glucosestream.errors import LakeError
from glucosestream.ingest import ingest_path
from glucosestream.lake import TableRegistry, open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline, steps, table_registry
from glucosestream.pipeline.table_registry import DAILY_METRICS, TABLES
from glucosestream.synth import CohortSpec, write_cohort

# A new results table: a copy of the daily metrics, under its own name and key.
DAILY_COPY = dataclasses.replace(
    DAILY_METRICS, identifier=("results", "daily_copy"), short="daily_copy"
)


def _ingest(settings, tmp_path, seed=4):
    spec = CohortSpec(patients=2, days=2, seed=seed)
    ingest_path(settings, Path(write_cohort(spec, tmp_path / f"c{seed}.csv", "csv").path))


def test_a_new_table_is_one_registry_entry(settings, tmp_path, monkeypatch):
    registry = TableRegistry((*TABLES, DAILY_COPY))
    monkeypatch.setattr(table_registry, "TABLES", registry)  # where the run and its tasks read it
    transform = steps._transform

    def with_copy(work, bucket, merged):  # the step computing the new table's rows
        out = transform(work, bucket, merged)
        out.tables["daily_copy"] = out.tables["daily"]
        return out

    monkeypatch.setattr(steps, "_transform", with_copy)
    _ingest(settings, tmp_path)
    assert run_pipeline(settings).status == "published"
    published = open_metadata(settings.lake).published()
    lake = open_lakehouse(settings.lake, registry)
    copy = lake.read_table("daily_copy", published.of("daily_copy"))
    assert copy.num_rows > 0
    assert copy.equals(lake.read_table("daily", published.of("daily")))


def test_a_table_the_run_staged_nothing_for_fails_the_run_and_publishes_nothing(
    settings, tmp_path, monkeypatch
):
    monkeypatch.setattr(table_registry, "TABLES", TableRegistry((*TABLES, DAILY_COPY)))
    _ingest(settings, tmp_path)
    with pytest.raises(LakeError, match=r"results\.daily_copy"):
        run_pipeline(settings)
    assert open_metadata(settings.lake).published() is None
    assert open_metadata(settings.lake).run_history()[0]["status"] == "failed"
    lake = open_lakehouse(settings.lake, TABLES)
    assert all(t.current_snapshot() is None for t in lake.tables.values())  # nothing written


def test_the_registry_refuses_a_key_used_twice():
    with pytest.raises(ValueError, match="short daily used twice"):
        TableRegistry((*TABLES, dataclasses.replace(DAILY_COPY, short="daily")))
    with pytest.raises(KeyError, match="no table 'nope'"):
        TABLES["nope"]
