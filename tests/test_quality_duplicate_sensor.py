"""The same sensor arriving twice under another patient id or another zone is flagged by the
duplicate_sensor check (a warning: the run still publishes), not counted twice silently."""

from __future__ import annotations

import csv
import datetime as dt

import pyarrow as pa
import pytest

from glucosestream.config import QualitySettings
from glucosestream.ingest import ingest_path
from glucosestream.pipeline import run_pipeline
from glucosestream.quality import CheckResult, StagedRun, combine, recurring_pairs
from glucosestream.quality.duplicate_sensor import MIN_RECURRING, check_duplicate_sensor
from glucosestream.synth import CohortSpec, write_cohort

T0 = dt.datetime(2026, 1, 5, 6, 0, 7, tzinfo=dt.UTC)


def _rows(patient: str, tz: str, glucose: list[float], shift_h: float = 0.0, device="dev-a"):
    n = len(glucose)
    start = T0 + dt.timedelta(hours=shift_h)
    return pa.table(
        {
            "patient_key": [patient] * n,
            "device_id": [device] * n,
            "ts": pa.array(
                [start + dt.timedelta(minutes=5 * i) for i in range(n)], pa.timestamp("us", "UTC")
            ),
            "glucose_mg_dl": glucose,
            "tz": [tz] * n,
        }
    )


def _staged(*parts: pa.Table) -> StagedRun:
    rows = pa.concat_tables(parts)
    return StagedRun(rows, rows, pa.table({}), pa.table({}))


TRACE = [100.0 + (i * 7) % 90 for i in range(48)]  # four hours of one sensor


def test_one_sensor_under_two_patient_keys_is_flagged_naming_both():
    result = check_duplicate_sensor(
        _staged(_rows("a" * 32, "UTC", TRACE), _rows("b" * 32, "UTC", TRACE, device="dev-b")),
        QualitySettings(),
    )
    assert result.passed  # a warning: the run publishes
    assert result.warning
    assert result.failed_rows == 48
    assert "patient aaaaaaaaaaaa (UTC) and patient bbbbbbbbbbbb (UTC) share 48 readings" in (
        result.detail
    )
    assert "maintain --erase-patient" in result.detail


def test_one_patient_under_two_zones_is_flagged_by_local_time():
    """A zone-less export read with the wrong --tz: every instant moves by the zones'
    difference (Chicago is UTC-6 in January), the wall times stay."""
    chicago = _rows("a" * 32, "America/Chicago", TRACE, shift_h=6)
    london = _rows("a" * 32, "Europe/London", TRACE)
    result = check_duplicate_sensor(_staged(chicago, london), QualitySettings())
    assert result.passed
    assert "(America/Chicago) and patient aaaaaaaaaaaa (Europe/London) share 48" in result.detail


def test_chance_equal_readings_and_distinct_data_are_ok():
    """Two people on the same second of the grid share an equal value now and then (here 12
    of 48, a quarter): under the share, nothing is flagged; nor are different traces or a
    traveller's two zones of distinct readings."""
    other = [v + 1 if i % 4 else v for i, v in enumerate(TRACE)]
    travel = _rows("c" * 32, "Europe/Paris", [v + 3 for v in TRACE], shift_h=4)
    parts = (_rows("a" * 32, "UTC", TRACE), _rows("b" * 32, "UTC", other), travel)
    result = check_duplicate_sensor(_staged(*parts), QualitySettings())
    assert result == CheckResult("duplicate_sensor", True, 0, "ok")
    short = _rows("d" * 32, "UTC", TRACE[: MIN_RECURRING - 1])
    assert recurring_pairs(pa.concat_tables([short, _rows("e" * 32, "UTC", TRACE)])).num_rows == 0


def test_a_warning_keeps_its_detail_when_buckets_combine():
    warned = CheckResult("duplicate_sensor", True, 48, "WARNING: x")
    combined = combine([[CheckResult("duplicate_sensor", True, 0, "ok")], [warned]])
    assert combined == [CheckResult("duplicate_sensor", True, 48, "WARNING: x")]
    assert combined[0].warning
    assert not CheckResult("unique_readings", True, 0, "ok").warning


@pytest.mark.parametrize("second", ["other id", "other zone"])
def test_synth_data_exported_twice_is_flagged_by_the_run(settings, tmp_path, second):
    """The README's doubling: the cohort file, then one patient's Clarity export again, under
    another patient id or under another zone. The run publishes and the check says so."""
    spec = CohortSpec(patients=2, days=2, profile="mixed", interval_min=5, seed=3)
    write_cohort(spec, tmp_path / "cohort.csv", "csv")
    write_cohort(spec, tmp_path / "exports", "dexcom")
    with (tmp_path / "exports" / "manifest.tsv").open(newline="") as f:
        first = next(csv.DictReader(f, delimiter="\t"))
    ingest_path(settings, tmp_path / "cohort.csv")
    patient, tz = first["patient_id"], first["tz"]
    if second == "other id":
        patient += "-clarity"
    else:
        tz = "Europe/London" if tz != "Europe/London" else "Asia/Tokyo"
    ingest_path(settings, tmp_path / "exports" / first["file"], patient_id=patient, tz=tz)
    report = run_pipeline(settings)
    assert report.status == "published"
    check = next(c for c in report.checks if c.name == "duplicate_sensor")
    assert check.passed
    assert check.failed_rows == int(first["readings"])
    assert f"share {first['readings']} readings" in check.detail
    assert f"({first['tz']})" in check.detail
    assert f"({tz})" in check.detail
