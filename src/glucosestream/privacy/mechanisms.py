"""OpenDP measurements for cohort statistics, each calibrated to the epsilon asked for.

The privacy unit is one patient (one value per patient; adding or removing a patient changes the
input by a symmetric distance of 1). A mean is released as OpenDP's clamp → resize → mean →
Laplace chain: values are clamped to public bounds (``privacy.bounds``), the data resized to a
public size (the already-released noisy count), and the Laplace scale found by OpenDP's
``binary_search_param`` so that the measurement's privacy map gives exactly the epsilon asked
for; for a mean that scale is (upper - lower) / (size * epsilon). The count is OpenDP's count
with Laplace noise (scale 1 / epsilon). Noise comes from OpenDP's samplers only. Each noisy
value is then clamped to its bounds (a mean to [lower, upper], a count to at least 0):
post-processing, which spends no privacy, so no release shows a value no cohort could have
(a mean of -297 mg/dL, a count of -3).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import opendp.prelude as dp

__all__ = [
    "PrivateValue",
    "laplace_scale_for_mean",
    "private_count",
    "private_mean",
]


@dataclass(frozen=True, slots=True)
class PrivateValue:
    value: float  # within the statistic's bounds (a count: at least 0)
    epsilon: float
    scale: float  # the Laplace scale OpenDP used
    mechanism: str
    at_bound: bool = False  # the noise carried the value past a bound; it shows the bound


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
    """An epsilon-DP mean of ``values`` (one per patient; NaN values dropped) clamped to
    [lower, upper] before the mechanism, and the noisy mean clamped to it after."""
    _enabled()
    scale = laplace_scale_for_mean(lower, upper, size, epsilon)
    measurement = _mean_chain(lower, upper, size) >> dp.m.then_laplace(scale)
    noisy = float(measurement([float(v) for v in values if not math.isnan(v)]))
    value = min(upper, max(lower, noisy)) if math.isfinite(noisy) else (lower + upper) / 2.0
    return PrivateValue(
        value,
        float(measurement.map(1)),
        scale,
        "clamp-resize-mean-laplace",
        at_bound=value != noisy,
    )


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
    noisy = float(measurement([0.0] * len(values)))  # a count reads only the length
    value = max(0.0, noisy)
    return PrivateValue(
        value, float(measurement.map(1)), scale, "count-laplace", at_bound=value != noisy
    )
