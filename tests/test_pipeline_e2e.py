"""End to end: synth → ingest → run → metrics, checked against numbers computed here from the
generated file with the standard library only (not through any GlucoseStream code path)."""

from __future__ import annotations

import csv
import datetime as dt
import math
import statistics
import zoneinfo
from collections import defaultdict
from pathlib import Path

import pytest

from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET


def expected_daily(path: Path) -> dict[tuple[str, dt.date], dict[str, float]]:
    """Daily metrics from the synth CSV: local days, sample SD, consensus band edges."""
    groups: dict[tuple[str, dt.date], list[float]] = defaultdict(list)
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            instant = dt.datetime.strptime(row["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            local_day = instant.astimezone(zoneinfo.ZoneInfo(row["tz"])).date()
            groups[(row["patient_id"], local_day)].append(float(row["glucose_mg_dl"]))
    out = {}
    for key, values in groups.items():
        n = len(values)
        mean = statistics.fmean(values)
        sd = statistics.stdev(values) if n > 1 else math.nan
        out[key] = {
            "readings": n,
            "mean_mg_dl": mean,
            "sd_mg_dl": sd,
            "cv_pct": 100 * sd / mean,
            "gmi_pct": 3.31 + 0.02392 * mean,
            "pct_below_54": 100 * sum(v < 54 for v in values) / n,
            "pct_below_70": 100 * sum(v < 70 for v in values) / n,
            "pct_70_180": 100 * sum(70 <= v <= 180 for v in values) / n,
            "pct_above_180": 100 * sum(v > 180 for v in values) / n,
            "pct_above_250": 100 * sum(v > 250 for v in values) / n,
            "pct_active": min(100.0, 100 * n * 5 / 1440),
        }
    return out


@pytest.fixture
def cohort_csv(tmp_path: Path) -> Path:
    spec = CohortSpec(patients=4, days=3, profile="mixed", interval_min=5, seed=7)
    return Path(write_cohort(spec, tmp_path / "cohort.csv", "csv").path)


def test_end_to_end_daily_metrics_match_independent_computation(settings, cohort_csv, clock):
    report = ingest_path(settings, cohort_csv, now=clock)
    assert report.quarantined == 0
    run = run_pipeline(settings, now=clock)
    assert run.status == "published", run

    published = open_metadata(settings.lake).published()
    table = open_lakehouse(settings.lake, TABLES).read_daily(published.of("daily"))
    got = {(r["patient_key"], r["date"]): r for r in table.to_pylist()}
    expected = expected_daily(cohort_csv)
    assert len(got) == len(expected)
    for (patient_id, day), want in expected.items():
        row = got[(patient_key(SECRET.encode(), patient_id), day)]
        for name, value in want.items():
            assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (patient_id, day, name)


def test_second_run_without_new_data_does_nothing(settings, cohort_csv, clock):
    ingest_path(settings, cohort_csv, now=clock)
    first = run_pipeline(settings, now=clock)
    published = open_metadata(settings.lake).published()
    second = run_pipeline(settings, now=clock)
    assert first.status == "published"
    assert second.status == "noop"
    assert "nothing to do" in second.message
    assert open_metadata(settings.lake).published() == published


def test_ingesting_the_same_file_twice_changes_nothing(settings, cohort_csv, clock):
    first = ingest_path(settings, cohort_csv, now=clock)
    run_pipeline(settings, now=clock)
    lake_files = sorted(p for p in Path(settings.lake.root).rglob("*") if p.is_file())
    published = open_metadata(settings.lake).published()

    again = ingest_path(settings, cohort_csv, now=clock)
    assert again.accepted == 0
    assert again.duplicates == again.received == first.received
    assert again.already_ingested_as == first.batch_id
    assert run_pipeline(settings, now=clock).status == "noop"
    assert sorted(
        p for p in Path(settings.lake.root).rglob("*") if p.is_file() if "_state" not in p.parts
    ) == [p for p in lake_files if "_state" not in p.parts]
    assert open_metadata(settings.lake).published() == published


def test_same_readings_in_another_file_are_counted_as_duplicates(settings, tmp_path, clock):
    spec = CohortSpec(patients=2, days=2, seed=3)
    as_csv = Path(write_cohort(spec, tmp_path / "a.csv", "csv").path)
    as_parquet = Path(write_cohort(spec, tmp_path / "a.parquet", "parquet").path)
    ingest_path(settings, as_csv, now=clock)
    first = run_pipeline(settings, now=clock)
    second_ingest = ingest_path(settings, as_parquet, now=clock)
    second = run_pipeline(settings, now=clock)
    assert second.status == "published"
    assert second.readings_new == 0
    assert second.duplicates == second_ingest.accepted == first.readings_new
    assert second.patient_days == 0


def test_late_data_recomputes_only_the_days_it_touches(settings, tmp_path, clock, key_filter):
    head = "patient_id,device_id,time,glucose_mg_dl,tz\n"
    early = [f"A,d1,2026-01-0{d}T{h:02d}:00:00Z,{100 + h},UTC" for d in (1, 2) for h in range(24)]
    (tmp_path / "one.csv").write_text(head + "\n".join(early) + "\n")
    ingest_path(settings, tmp_path / "one.csv", now=clock)
    first = run_pipeline(settings, now=clock)
    assert first.patient_days == 2
    (tmp_path / "late.csv").write_text(head + "A,d1,2026-01-02T00:30:00Z,300,UTC\n")
    ingest_path(settings, tmp_path / "late.csv", now=clock)
    second = run_pipeline(settings, now=clock)
    assert second.patient_days == 1
    published = open_metadata(settings.lake).published()
    rows = open_lakehouse(settings.lake, TABLES).read_daily(published.of("daily")).to_pylist()
    by_day = {r["date"]: r for r in rows}
    assert by_day[dt.date(2026, 1, 1)]["run_id"] == first.run_id
    assert by_day[dt.date(2026, 1, 2)]["run_id"] == second.run_id
    assert by_day[dt.date(2026, 1, 2)]["readings"] == 25
    assert by_day[dt.date(2026, 1, 2)]["mean_mg_dl"] == pytest.approx(
        (sum(100 + h for h in range(24)) + 300) / 25
    )


def test_full_refresh_gives_the_same_results_as_incremental_runs(
    settings, tmp_path, clock, key_filter
):
    spec = CohortSpec(patients=3, days=4, seed=11)
    path = Path(write_cohort(spec, tmp_path / "c.csv", "csv").path)
    lines = path.read_text().splitlines(keepends=True)
    (tmp_path / "part1.csv").write_text("".join(lines[: len(lines) // 2]))
    (tmp_path / "part2.csv").write_text(lines[0] + "".join(lines[len(lines) // 2 :]))
    for part in ("part1.csv", "part2.csv"):
        ingest_path(settings, tmp_path / part, now=clock)
        assert run_pipeline(settings, now=clock).status == "published"
    lake = open_lakehouse(settings.lake, TABLES)
    columns = [c for c in lake.daily.schema().column_names if c not in ("run_id", "computed_at")]
    incremental = lake.read_daily(open_metadata(settings.lake).published().of("daily"))
    refresh = run_pipeline(settings, full_refresh=True, now=clock)
    assert refresh.status == "published"
    full = open_lakehouse(settings.lake, TABLES).read_daily(
        open_metadata(settings.lake).published().of("daily")
    )
    assert full.select(columns).to_pylist() == incremental.select(columns).to_pylist()


def test_patients_without_new_readings_keep_their_days_once(settings, tmp_path, clock, key_filter):
    head = "patient_id,device_id,time,glucose_mg_dl,tz\n"

    def day(patient: str, d: int, value: int) -> str:
        return "\n".join(
            f"{patient},d,2026-01-{d:02d}T{h:02d}:00:00Z,{value},UTC" for h in range(24)
        )

    first = [day("A", 1, 100), day("B", 2, 150), day("C", 2, 170)]
    (tmp_path / "all.csv").write_text(head + "\n".join(first) + "\n")
    ingest_path(settings, tmp_path / "all.csv", now=clock)
    run_pipeline(settings, now=clock)
    # A and B get new days; C's day 2 lies in the days the run replaces, and must stay once.
    (tmp_path / "late.csv").write_text(head + day("A", 2, 120) + "\n" + day("B", 3, 140) + "\n")
    ingest_path(settings, tmp_path / "late.csv", now=clock)
    assert run_pipeline(settings, now=clock).status == "published"
    published = open_metadata(settings.lake).published()
    rows = open_lakehouse(settings.lake, TABLES).read_daily(published.of("daily")).to_pylist()
    keys = [(r["patient_key"], r["date"]) for r in rows]
    assert len(keys) == len(set(keys)) == 5
    assert sorted(r["mean_mg_dl"] for r in rows) == [100.0, 120.0, 140.0, 150.0, 170.0]


def test_a_day_recomputed_for_a_western_patient_leaves_eastern_days_whole(
    settings, tmp_path, clock, key_filter
):
    """New readings from midnight UTC fall on the previous local day in Los Angeles but not
    in Sydney, where that day began 35 hours before them: Sydney's day must not be
    recomputed from the 26 hours of history the run reads."""
    head = "patient_id,device_id,time,glucose_mg_dl,tz\n"

    def hours(patient: str, zone: str, days: range) -> str:
        return "".join(
            f"{patient},d,2026-01-{d:02d}T{h:02d}:{m:02d}:00Z,{80 + 7 * h + m // 5},{zone}\n"
            for d in days
            for h in range(24)
            for m in (0, 20, 40)
        )

    patients = (("W", "America/Los_Angeles"), ("E", "Australia/Sydney"))
    (tmp_path / "history.csv").write_text(
        head + "".join(hours(p, z, range(1, 5)) for p, z in patients)
    )
    (tmp_path / "new.csv").write_text(head + "".join(hours(p, z, range(5, 6)) for p, z in patients))
    (tmp_path / "all.csv").write_text(head + "".join(hours(p, z, range(1, 6)) for p, z in patients))
    for part in ("history.csv", "new.csv"):
        ingest_path(settings, tmp_path / part, now=clock)
        assert run_pipeline(settings, now=clock).status == "published"
    published = open_metadata(settings.lake).published()
    rows = open_lakehouse(settings.lake, TABLES).read_daily(published.of("daily")).to_pylist()
    expected = {
        (patient_key(SECRET.encode(), p), day): v
        for (p, day), v in expected_daily(tmp_path / "all.csv").items()
    }
    assert {(r["patient_key"], r["date"]): r["readings"] for r in rows} == {
        k: v["readings"] for k, v in expected.items()
    }
    for r in rows:
        assert r["mean_mg_dl"] == pytest.approx(
            expected[(r["patient_key"], r["date"])]["mean_mg_dl"]
        )
