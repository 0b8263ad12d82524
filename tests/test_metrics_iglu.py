"""The metric catalog against iglu 4.3.0's own numbers (1e-6 relative), on two data sets:
the synthetic validation cohort (tests/data/validation) and iglu's example data (../shared)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from glucosestream.metrics.calculator import compute_metrics, episode_table
from glucosestream.metrics.metric_options import MetricOptions
from glucosestream.metrics.reference.agp import agp_curves
from glucosestream.metrics.reference.interpolation_grid import build_grid
from glucosestream.metrics.reference.mage import mage_moving_average
from glucosestream.metrics.reference.patient_metrics import compute_patient
from glucosestream.metrics.reference.series import prepare_series
from glucosestream.metrics.spec import IGLU_EPISODE_COLUMNS

from .conftest import DATA, SHARED

REL = 1e-6
COHORT = (
    DATA / "validation" / "cohort.csv",
    SHARED / "validation" / "iglu-4.3.0",
    SHARED / "validation" / "iglu-4.3.0-per-subject",
)
EXAMPLE = (
    SHARED / "samples" / "iglu" / "example_data_5_subject.csv",
    SHARED / "samples" / "iglu" / "iglu-4.3.0",
    SHARED / "samples" / "iglu" / "iglu-4.3.0",  # one sensor interval: no mixing to undo
)
DATASETS = pytest.mark.parametrize("dataset", [COHORT, EXAMPLE], ids=["cohort", "example"])
# Known, documented differences (docs/metrics.md, "Differences from iglu"): iglu's AUC labels
# days wrongly.
KNOWN = {"cohort": {"AUC"}, "example": {"AUC"}}


def _read_readings(path: Path) -> pa.Table:
    if not path.is_file():
        pytest.skip(f"{path} not found (comparison data from ../shared, not shipped)")
    types = {"id": pa.string(), "time": pa.timestamp("s"), "gl": pa.float64()}
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))


def _reference(folder: Path, name: str) -> list[dict[str, str]]:
    path = folder / name
    if not path.is_file():
        pytest.skip(f"iglu reference {path} not found (comparison data, not shipped)")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _number(text: str) -> float:
    return math.nan if text in ("NA", "") else float(text)


def _close(ours: object, theirs: str) -> bool:
    if ours is None:
        return theirs in ("NA", "")
    if not isinstance(ours, (int, float)):
        return str(ours) == theirs
    want = _number(theirs)
    if math.isnan(want) or ours is None or math.isnan(float(ours)):
        return (ours is None or math.isnan(float(ours))) and math.isnan(want)
    return math.isclose(float(ours), want, rel_tol=REL, abs_tol=1e-9)


def _series(table: pa.Table) -> dict[str, object]:
    ids = np.asarray(table["id"].to_pylist())
    t = table["time"].cast(pa.int64()).to_numpy()
    g = table["gl"].to_numpy(zero_copy_only=False)
    return {s: prepare_series(t[ids == s], g[ids == s]) for s in dict.fromkeys(ids.tolist())}


@DATASETS
@pytest.mark.parametrize(
    ("file", "metric_set"),
    [("all_metrics.csv", "all"), ("all_metrics__consensus_only.csv", "consensus")],
)
def test_all_metrics_equal_iglu(dataset, file, metric_set):
    readings, _, per_subject = dataset
    table = _read_readings(readings)
    ours = compute_metrics(table, metric_set, compat="iglu", names="iglu").to_pylist()
    reference = _reference(per_subject, file)
    assert [r["id"] for r in ours] == [r["id"] for r in reference]
    skip = KNOWN["cohort" if dataset is COHORT else "example"]
    bad = [
        (r["id"], col)
        for r, want in zip(ours, reference, strict=True)
        for col in want
        if col not in skip and not _close(r[col], want[col])
    ]
    assert bad == []


@DATASETS
@pytest.mark.parametrize("file", ["episode_calculation.csv"])
def test_episode_table_equals_iglu(dataset, file):
    readings, folder, _ = dataset
    ours = episode_table(_read_readings(readings), compat="iglu").to_pylist()
    reference = _reference(folder, file)
    assert len(ours) == len(reference)
    for r, want in zip(ours, reference, strict=True):
        for col in IGLU_EPISODE_COLUMNS:
            assert _close(r[col], want[col]), (r["id"], r["type"], r["level"], col)


SINGLE = [
    # (file, iglu column, our metric)
    ("mean_glu.csv", "mean", "mean_mg_dl"),
    ("median_glu.csv", "median", "median_mg_dl"),
    ("range_glu.csv", "range", "range_mg_dl"),
    ("quantile_glu__agp.csv", "5", "p05_mg_dl"),
    ("quantile_glu__agp.csv", "95", "p95_mg_dl"),
    ("in_range_percent__consensus.csv", "in_range_54_69", "pct_54_69"),
    ("in_range_percent__consensus.csv", "in_range_181_250", "pct_181_250"),
    ("in_range_percent__consensus.csv", "in_range_70_140", "pct_70_140"),
    ("gri.csv", "GRI", "gri"),
    ("conga__n1.csv", "CONGA", "conga_1h"),
    ("mag.csv", "MAG", "mag_mg_dl_per_h"),
    ("mage.csv", "MAGE", "mage_mg_dl"),
    ("mage__plus.csv", "MAGE", "mage_plus_mg_dl"),
    ("mage__minus.csv", "MAGE", "mage_minus_mg_dl"),
    ("mage__service.csv", "MAGE", "mage_service_mg_dl"),
    ("mage__max.csv", "MAGE", "mage_max_mg_dl"),
    ("mage__naive.csv", "MAGE", "mage_naive_mg_dl"),
    ("calculate_sleep_wake__mean.csv", "mean sleep", "mean_mg_dl_night"),
    ("calculate_sleep_wake__mean.csv", "mean wake", "mean_mg_dl_day"),
    ("calculate_sleep_wake__tir.csv", "in_range_70_180 sleep", "pct_70_180_night"),
    ("calculate_sleep_wake__tir.csv", "in_range_70_180 wake", "pct_70_180_day"),
]


@DATASETS
@pytest.mark.parametrize(("file", "column", "metric"), SINGLE)
def test_single_metric_equals_iglu(dataset, file, column, metric):
    readings, folder, _ = dataset
    reference = {r["id"]: r[column] for r in _reference(folder, file)}
    ours = compute_metrics(_read_readings(readings), [metric], compat="iglu").to_pylist()
    ours = [r for r in ours if r["id"] in reference]
    assert {r["id"]: r[metric] for r in ours} == pytest.approx(
        {k: _number(v) for k, v in reference.items()}, rel=REL, nan_ok=True
    )


@DATASETS
def test_interpolation_grid_equals_cgms2daybyday(dataset):
    readings, folder, _ = dataset
    reference: dict[str, list[float]] = {}
    for r in _reference(folder, "CGMS2DayByDay.csv"):
        reference.setdefault(r["id"], []).append(_number(r["gl"]))
    for subject, series in _series(_read_readings(readings)).items():
        grid = build_grid(series.last_per_instant())
        np.testing.assert_allclose(grid.flat, reference[subject], rtol=REL)


@DATASETS
def test_agp_percentiles_equal_plot_agp(dataset):
    readings, folder, _ = dataset
    reference: dict[str, list[list[float]]] = {}
    for r in _reference(folder, "plot_agp__quantiles_raw.csv"):
        reference.setdefault(r["id"], []).append(
            [_number(r[c]) for c in ("seconds", "p05", "p25", "p50", "p75", "p95")]
        )
    for subject, series in _series(_read_readings(readings)).items():
        curves = agp_curves(build_grid(series.last_per_instant()))
        want = np.asarray(reference[subject])
        np.testing.assert_array_equal(curves.seconds, want[:, 0])
        np.testing.assert_allclose(curves.percentiles_mg_dl.T, want[:, 1:], rtol=REL)


@DATASETS
def test_mage_segments_equal_iglu(dataset):
    """Every segment's MAGE+ and MAGE-, its first and last grid time and the direction of its
    first excursion, in order (iglu also lists the gaps between segments, with no MAGE)."""
    readings, folder, _ = dataset
    reference: dict[str, list[tuple[str, str, float, float, bool]]] = {}
    rows = [r for r in _reference(folder, "mage__segments.csv") if r["mage"] != "NA"]
    for plus, minus in zip(rows[::2], rows[1::2], strict=True):
        assert (plus["plus_or_minus"], minus["plus_or_minus"]) == ("PLUS", "MINUS")
        reference.setdefault(plus["id"], []).append(
            (
                plus["start"],
                plus["end"],
                _number(plus["mage"]),
                _number(minus["mage"]),
                plus["first_excursion"] == "TRUE",
            )
        )
    for subject, series in _series(_read_readings(readings)).items():
        grid = build_grid(series.last_per_instant(), dt0_min=5)
        times = grid.time_s().astype("datetime64[s]").astype(str)
        result = mage_moving_average(grid)
        ours = [
            (
                times[s.start].replace("T", " "),
                times[s.stop - 1].replace("T", " "),
                s.plus_mg_dl,
                s.minus_mg_dl,
                s.first_is_plus,
            )
            for s in result.segments
            if not (math.isnan(s.plus_mg_dl) and math.isnan(s.minus_mg_dl))
        ]
        want = reference[subject]
        assert [(a, b, first) for a, b, _, _, first in ours] == [
            (a, b, first) for a, b, _, _, first in want
        ]
        assert [v for o in ours for v in o[2:4]] == pytest.approx(
            [v for w in want for v in w[2:4]], rel=REL
        )


def test_extended_hyper_follows_the_consensus_not_iglu():
    """iglu ends an extended hyper episode at <= 250; Battelino 2023 only at <= 180 for 15 min.

    A trace above 250 for 2 h, 20 min at 200-250, then 2 h above 250 again is two episodes for
    iglu and one for the consensus.
    """
    minutes = np.arange(0, 8 * 60, 5)
    g = np.full(minutes.size, 120.0)
    g[(minutes >= 60) & (minutes < 180)] = 300.0
    g[(minutes >= 180) & (minutes < 200)] = 220.0
    g[(minutes >= 200) & (minutes < 320)] = 300.0
    series = prepare_series(minutes * 60 + 86_400 * 19_000, g)
    names = ["hyper_extended_episodes"]
    published = compute_patient(series, names)["hyper_extended_episodes"]
    iglu = compute_patient(series, names, MetricOptions(compat="iglu"))["hyper_extended_episodes"]
    assert (published, iglu) == (1.0, 2.0)


def test_mag_published_differs_from_iglu_all_metrics_column():
    """The MAG of iglu's all_metrics divides by samples, not by intervals (README 3.6)."""
    minutes = np.arange(0, 3 * 1440, 5)
    g = 120.0 + 40.0 * np.sin(minutes / 90.0)
    series = prepare_series(minutes * 60, g)
    out = compute_patient(series, ["mag_mg_dl_per_h", "mag_iglu_all_metrics"])
    # Published: mean |change| per hour of the 5-min trace; for A sin(w t) that is 2 A w / pi per
    # minute on average, with A = 40 mg/dL and w = 1/90 per minute.
    assert out["mag_mg_dl_per_h"] == pytest.approx(60 * 2 * 40 / 90 / math.pi, rel=0.01)
    assert out["mag_iglu_all_metrics"] < out["mag_mg_dl_per_h"]


def test_sd_measures_equal_iglu_on_averaged_duplicates():
    """iglu's sd_measures averages readings sharing a timestamp, as the published mode does."""
    readings, _, per_subject = COHORT
    reference = {r["id"]: r for r in _reference(per_subject, "sd_measures.csv")}
    names = ["sd_w", "sd_hhmm", "sd_wsh", "sd_dm", "sd_b", "sd_bdm"]
    columns = ["SDw", "SDhhmm", "SDwsh", "SDdm", "SDb", "SDbdm"]
    for row in compute_metrics(_read_readings(readings), names).to_pylist():
        want = [_number(reference[row["id"]][c]) for c in columns]
        assert [row[n] for n in names] == pytest.approx(want, rel=REL)
