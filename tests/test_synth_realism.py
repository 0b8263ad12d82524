"""Synthetic cohorts against published CGM figures. Statistics are computed here with numpy on
the generated values, not through the project's metric code.

Healthy adults: Shah VN et al., "Continuous Glucose Monitoring Profiles in Healthy Nondiabetic
Participants: A Multicenter Prospective Study", J Clin Endocrinol Metab 2019;104(10):4356-4364
(153 people aged 7-80, Dexcom G6, about 10 days): mean glucose 98-99 mg/dL, median time in
70-140 mg/dL 96% (IQR 93-98%), within-person CV 17 +/- 3%, median time >140 mg/dL 2.1%, median
time <70 mg/dL 1.1%.

Type 1: real-world CGM cohorts spread widely in time in range (TIR, 70-180 mg/dL; most people
between about 30 and 80%, the consensus target >70% met by a minority: Battelino T et al.,
Diabetes Care 2019;42:1593), with a median CV in the 33-45% band and level-2 lows (<54 mg/dL).
Type 2 sits between healthy and type 1 on every one of these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from glucosestream.synth import CohortSpec, generate_chunks

DAYS = 14


@dataclass(frozen=True)
class PersonStats:
    mean: np.ndarray
    cv_pct: np.ndarray
    pct_70_140: np.ndarray
    pct_above_140: np.ndarray
    pct_below_70: np.ndarray
    pct_below_54: np.ndarray
    tir_pct: np.ndarray


def person_stats(profile: str, patients: int = 100, seed: int = 0) -> PersonStats:
    table = pa.concat_tables(generate_chunks(CohortSpec(patients, DAYS, profile, 5, seed)))
    ids = table["patient_id"].cast(pa.string()).to_numpy(zero_copy_only=False)
    glucose = table["glucose_mg_dl"].to_numpy().astype(float)
    rows = []
    for pid in np.unique(ids):
        g = glucose[ids == pid]
        rows.append(
            (
                g.mean(),
                100 * g.std(ddof=1) / g.mean(),
                100 * np.mean((g >= 70) & (g <= 140)),
                100 * np.mean(g > 140),
                100 * np.mean(g < 70),
                100 * np.mean(g < 54),
                100 * np.mean((g >= 70) & (g <= 180)),
            )
        )
    return PersonStats(*np.array(rows).T)


@pytest.fixture(scope="module")
def healthy() -> PersonStats:
    return person_stats("healthy")


@pytest.fixture(scope="module")
def t1d() -> PersonStats:
    return person_stats("t1d")


@pytest.fixture(scope="module")
def t2d() -> PersonStats:
    return person_stats("t2d")


def test_healthy_mean_glucose_matches_shah_2019(healthy):
    # Shah: 98-99 mg/dL. With a between-person SD of about 7 mg/dL the standard error of a
    # 100-person mean is about 0.7 mg/dL; allow 2 SE beyond each end of the published range.
    assert 96.6 <= healthy.mean.mean() <= 100.4


def test_healthy_time_70_140_matches_shah_2019(healthy):
    # Shah: median 96%, IQR 93-98%. Median within 1.5 points; quartiles within 1.5 points of
    # the published ones (sampling error of a quartile of 100 people is about 1 point here).
    assert np.median(healthy.pct_70_140) == pytest.approx(96.0, abs=1.5)
    assert np.percentile(healthy.pct_70_140, 25) == pytest.approx(93.0, abs=1.5)
    assert np.percentile(healthy.pct_70_140, 75) == pytest.approx(98.0, abs=1.5)


def test_healthy_within_person_cv_matches_shah_2019(healthy):
    # Shah: 17 +/- 3% (mean +/- SD over people). Mean within 2 points, SD between 2 and 4.5.
    assert healthy.cv_pct.mean() == pytest.approx(17.0, abs=2.0)
    assert 2.0 <= healthy.cv_pct.std(ddof=1) <= 4.5


def test_healthy_time_above_140_and_below_70_match_shah_2019(healthy):
    # Shah: medians 2.1% (>140) and 1.1% (<70). Small percentages: within a factor of about
    # 2 of the published medians (absolute tolerance 1.5 and 0.8 points).
    assert np.median(healthy.pct_above_140) == pytest.approx(2.1, abs=1.5)
    assert np.median(healthy.pct_below_70) == pytest.approx(1.1, abs=0.8)
    # Healthy people rarely go below 54 mg/dL; what little there is comes from the sensor.
    assert np.median(healthy.pct_below_54) < 0.5


def test_type1_spreads_across_time_in_range_with_high_variability(t1d):
    tir = t1d.tir_pct
    # Spread: the cohort reaches down to about 30% and up to about 80% time in range, and
    # the middle half of it lies between 45 and 82%.
    assert tir.min() <= 40.0
    assert tir.max() >= 80.0
    assert np.percentile(tir, 25) >= 45.0
    assert np.percentile(tir, 75) <= 82.0
    assert 33.0 <= np.median(t1d.cv_pct) <= 45.0


def test_type1_has_real_level2_lows(t1d):
    # Level 2 (<54 mg/dL): most people have some, a few a lot (>1% of the time).
    assert np.mean(t1d.pct_below_54 > 0) >= 0.8
    assert np.mean(t1d.pct_below_54 > 1.0) >= 0.1
    assert np.median(t1d.pct_below_54) < 4.0


def test_type2_sits_between_healthy_and_type1(healthy, t1d, t2d):
    for name in ("mean", "cv_pct", "pct_above_140"):
        h, two, one = (np.median(getattr(s, name)) for s in (healthy, t2d, t1d))
        assert h < two, name
        if name != "mean":  # type 2 means are as high as type 1 means in real cohorts
            assert two < one, name
    assert np.median(healthy.tir_pct) > np.median(t2d.tir_pct) > np.median(t1d.tir_pct)
    assert np.median(t2d.pct_below_70) < np.median(t1d.pct_below_70)
