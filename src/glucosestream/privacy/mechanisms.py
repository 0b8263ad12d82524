"""OpenDP measurements for cohort statistics, each calibrated to the epsilon asked for.

The privacy unit is one patient (one value per patient; adding or removing a patient changes the
input by a symmetric distance of 1). A mean is released as OpenDP's clamp → resize → mean →
Laplace chain: values are clamped to public bounds, the data resized to a public size (the
already-released noisy count), and the Laplace scale found by OpenDP's ``binary_search_param``
so that the measurement's privacy map gives exactly the epsilon asked for; for a mean that scale
is (upper - lower) / (size * epsilon). The count is OpenDP's count with Laplace noise (scale
1 / epsilon). Noise comes from OpenDP's samplers only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import opendp.prelude as dp

__all__ = [
    "COHORT_STATISTICS",
    "CohortStatistic",
    "PrivateValue",
    "laplace_scale_for_mean",
    "private_count",
    "private_mean",
]


@dataclass(frozen=True, slots=True)
class CohortStatistic:
    """A per-patient value whose mean can be released, with its public clamping bounds."""

    name: str
    column: str  # column of the triage aggregate (one value per patient)
    label: str
    lower: float
    upper: float


# Bounds: glucose 40-400 mg/dL is the reporting range of common sensors (DESIGN.md); GMI =
# 3.31 + 0.02392 x mean (Bergenstal 2018) over that range; percentages are 0-100.
COHORT_STATISTICS: Final = (
    CohortStatistic(
        "mean_glucose", "mean_mg_dl", "Mean of patients' mean glucose (mg/dL)", 40.0, 400.0
    ),
    CohortStatistic(
        "time_in_range", "pct_70_180", "Mean time in range 70-180 mg/dL (%)", 0.0, 100.0
    ),
    CohortStatistic("time_below_70", "pct_below_70", "Mean time below 70 mg/dL (%)", 0.0, 100.0),
    CohortStatistic("gmi", "gmi_pct", "Mean GMI (%)", 3.31 + 0.02392 * 40, 3.31 + 0.02392 * 400),
)


@dataclass(frozen=True, slots=True)
class PrivateValue:
    value: float
    epsilon: float
    scale: float  # the Laplace scale OpenDP used
    mechanism: str


@functools.cache
def _enabled() -> None:
    dp.enable_features("contrib")


def _vectors() -> tuple[dp.Domain, dp.Metric]:
    return dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()


def _mean_chain(lower: float, upper: float, size: int) -> dp.Transformation:
    domain, metric = _vectors()
    chain: dp.Transformation = (
        dp.t.make_clamp(domain, metric, (lower, upper))
        >> dp.t.then_resize(size=size, constant=(lower + upper) / 2.0)
        >> dp.t.then_mean()  # type: ignore[no-untyped-call]
    )
    return chain


@functools.lru_cache(maxsize=256)
def laplace_scale_for_mean(lower: float, upper: float, size: int, epsilon: float) -> float:
    """The Laplace scale OpenDP calibrates for a clamped, resized mean at this epsilon."""
    _enabled()
    chain = _mean_chain(lower, upper, size)
    scale = dp.binary_search_param(lambda s: chain >> dp.m.then_laplace(s), d_in=1, d_out=epsilon)
    return float(scale)


def private_mean(
    values: Sequence[float], lower: float, upper: float, *, size: int, epsilon: float
) -> PrivateValue:
    """An epsilon-DP mean of ``values`` (one per patient) clamped to [lower, upper]."""
    _enabled()
    scale = laplace_scale_for_mean(lower, upper, size, epsilon)
    measurement = _mean_chain(lower, upper, size) >> dp.m.then_laplace(scale)
    value = float(measurement([float(v) for v in values]))
    return PrivateValue(value, float(measurement.map(1)), scale, "clamp-resize-mean-laplace")


@functools.lru_cache(maxsize=64)
def _count_scale(epsilon: float) -> float:
    domain, metric = _vectors()
    count = dp.t.make_count(domain, metric)
    return float(
        dp.binary_search_param(lambda s: count >> dp.m.then_laplace(s), d_in=1, d_out=epsilon)
    )


def private_count(values: Sequence[float], *, epsilon: float) -> PrivateValue:
    """An epsilon-DP count of the values (patients), with OpenDP's (discrete) Laplace noise."""
    _enabled()
    domain, metric = _vectors()
    count = dp.t.make_count(domain, metric)
    scale = _count_scale(epsilon)
    measurement = count >> dp.m.then_laplace(scale)
    value = float(measurement([float(v) for v in values]))
    return PrivateValue(value, float(measurement.map(1)), scale, "count-laplace")
