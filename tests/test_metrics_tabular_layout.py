"""The standalone calculator takes the synth's own files (issue 18: `metrics --input` refused
the CSV the README had just written): CSV, Parquet and JSON lines in the tabular layout, each
time placed on its patient's wall clock by the tz column; a device export is refused, saying
how to get its metrics."""

from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from glucosestream.errors import InvalidInput
from glucosestream.localclock import wall_clock_times
from glucosestream.metrics.calculator import calculate_file
from glucosestream.synth import CohortSpec, write_cohort

SPEC = CohortSpec(patients=3, days=3, profile="mixed", interval_min=5, seed=7)


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """The metrics of the same readings given in the calculator's own columns."""
    path = tmp_path_factory.mktemp("synth") / "c.parquet"
    write_cohort(SPEC, path, "parquet")
    table = pq.read_table(path)
    assert len(set(table["tz"].to_pylist())) > 1  # zones differ: the wall clock matters
    own = pa.table(
        {
            "id": table["patient_id"],
            "time": wall_clock_times(table["time"], table["tz"]),
            "gl": pc.cast(table["glucose_mg_dl"], pa.float64()),
        }
    )
    out = tmp_path_factory.mktemp("own") / "own.csv"
    pq.write_table(own, out.with_suffix(".parquet"))
    calculate_file(out.with_suffix(".parquet"), out)
    return _rows(out)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_the_synth_tabular_files_are_calculated_on_local_days(tmp_path, expected, fmt):
    source = tmp_path / f"cohort.{fmt}"
    write_cohort(SPEC, source, fmt)
    out = tmp_path / "metrics.csv"
    assert calculate_file(source, out) == SPEC.patients
    got = _rows(out)
    assert [r["id"] for r in got] == [f"P0000{i}" for i in range(1, SPEC.patients + 1)]
    assert got == expected


def test_utc_days_would_differ_so_the_zone_is_used(tmp_path, expected):
    """Read as UTC the days (and so the daily metrics) change: the zone column is not ignored."""
    path = tmp_path / "c.parquet"
    write_cohort(SPEC, path, "parquet")
    table = pq.read_table(path)
    as_utc = pa.table(
        {"id": table["patient_id"], "time": table["time"], "gl": table["glucose_mg_dl"]}
    )
    pq.write_table(as_utc, tmp_path / "utc.parquet")
    calculate_file(tmp_path / "utc.parquet", tmp_path / "utc.csv")
    assert _rows(tmp_path / "utc.csv") != expected


def test_a_device_export_is_refused_with_what_to_do(tmp_path):
    write_cohort(CohortSpec(patients=1, days=1, seed=1), tmp_path / "exports", "dexcom")
    clarity = next((tmp_path / "exports").glob("*_clarity.csv"))
    with pytest.raises(
        InvalidInput, match=r"glucosestream ingest. it, .run., then .metrics --patient ID"
    ):
        calculate_file(clarity, tmp_path / "m.csv")
