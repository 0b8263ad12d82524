"""Loess smoothing of the AGP percentile curves, as iglu's ``plot_agp(smooth = TRUE)``. PURE.

Used by ``calculator.agp_table(smooth=True)`` and the reference's ``agp.smooth_curves``; how it
differs from R's default surface: docs/metrics.md ("AGP loess smoothing").
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["AGP_LOESS_SPAN", "LOESS_DEGREE", "loess"]

AGP_LOESS_SPAN: Final = 0.3  # iglu plot_agp(smooth = TRUE) default span
LOESS_DEGREE: Final = 2  # R's loess default (local quadratic)


def loess(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    *,
    span: float = AGP_LOESS_SPAN,
    degree: int = LOESS_DEGREE,
) -> npt.NDArray[np.float64]:
    """Local polynomial regression evaluated exactly at every ``x`` (Cleveland W.S., "Robust
    locally weighted regression and smoothing scatterplots", J Am Stat Assoc 1979;74:829-836;
    Cleveland & Devlin 1988): at each x0 a weighted least-squares polynomial of ``degree`` over
    the ``floor(span * n)`` nearest points, tricube weights (1 - (d / d_max)^3)^3 with d_max the
    distance to the farthest of them. NaN values of ``y`` are left out of the fits. This is R's
    ``loess`` with ``surface = "direct"``; R's default ``"interpolate"`` differs (docs/metrics.md).
    """
    present = ~np.isnan(y)
    xs, ys = x[present].astype(np.float64), y[present]
    out = np.full(x.size, np.nan)
    q = int(np.floor(xs.size * span))
    if q <= degree:
        return out
    for i, x0 in enumerate(x.astype(np.float64)):
        d = np.abs(xs - x0)
        reach = np.partition(d, q - 1)[q - 1]
        w = np.clip(1.0 - (d / reach) ** 3, 0.0, None) ** 3 if reach > 0 else (d == 0) * 1.0
        root = np.sqrt(w)
        design = np.vander(xs - x0, degree + 1, increasing=True) * root[:, None]
        out[i] = np.linalg.lstsq(design, ys * root, rcond=None)[0][0]
    return out
