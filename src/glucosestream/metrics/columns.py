"""The metric catalog for a whole cohort at once: named Arrow columns, one row per patient.
PURE.

``cohort_columns(cohort, names, options)`` runs the compiled per-patient pass
(``kernels.patients``) for the groups that hold ``names`` and returns ``{name: column}``. It
computes the same numbers as ``catalog.compute_patient`` patient by patient (the reference
implementation, kept for clarity and tested against this one), without a Python loop per
patient except for PGS's final formula.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.metrics import catalog, consensus, risk
from glucosestream.metrics.catalog import MetricOptions
from glucosestream.metrics.cohort import Cohort, Readings
from glucosestream.metrics.kernels.patients import GROUPS, patient_metrics

__all__ = ["GROUP_NAMES", "STRING_COLUMNS", "cohort_columns", "views"]

FloatArray = npt.NDArray[np.float64]
# The metric names of each kernel group, in the kernel's column order: catalog's groups.
GROUP_NAMES: tuple[tuple[str, ...], ...] = tuple(names for _, names, _ in catalog._GROUP_NAMES)
STRING_COLUMNS = frozenset({"gri_zone", "start_time", "end_time"})


def views(cohort: Cohort, options: MetricOptions) -> tuple[Readings, Readings, Readings]:
    """(rows plain summaries count, one value per instant, what the grid interpolates)."""
    instants = cohort.readings.mean_per_instant()
    if options.compat == "iglu":
        return cohort.readings, instants, cohort.readings.last_per_instant()
    return instants, instants, instants


def _wall_clock_text(seconds: FloatArray) -> pa.Array:
    missing = np.isnan(seconds)
    stamps = pa.array(np.where(missing, 0, seconds).astype(np.int64), pa.timestamp("s"))
    text = pc.cast(stamps, pa.string())  # YYYY-MM-DD HH:MM:SS, twice as fast as strftime
    return pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), text)


def _zones(gri: FloatArray) -> pa.Array:
    """``consensus.gri_zone`` of each value: the first zone whose upper bound is >= the value
    (a sorted search over the bounds), E above them all, null for NaN."""
    labels = pa.array([zone for zone, _ in consensus.GRI_ZONE_UPPER] + ["E"], pa.string())
    uppers = np.array([upper for _, upper in consensus.GRI_ZONE_UPPER])
    found = np.searchsorted(uppers, np.where(np.isnan(gri), 0.0, gri), side="left")
    return pc.take(labels, pa.array(found, mask=np.isnan(gri)))


def _pgs(inputs: FloatArray) -> FloatArray:
    out = np.full(inputs.shape[0], np.nan)
    known = ~np.isnan(inputs).any(axis=1)
    gvp, mean, tir, n54, n70 = (np.ascontiguousarray(inputs[known, k]) for k in range(5))
    out[known] = risk.personal_glycemic_states(
        gvp_pct=gvp, mean_mg_dl=mean, tir_pct=tir, n54_per_week=n54, n70_per_week=n70
    )
    return out


def cohort_columns(
    cohort: Cohort, names: Sequence[str], options: MetricOptions | None = None
) -> dict[str, pa.Array]:
    """``{name: column}`` for ``names`` (all in ``catalog.ALL``), one value per patient."""
    options = options or MetricOptions()
    wanted = set(names)
    bases = np.full(len(GROUPS), -1, dtype=np.int64)
    width = 0
    for k, ((_, columns), group_names) in enumerate(zip(GROUPS, GROUP_NAMES, strict=True)):
        if wanted.intersection(group_names):
            bases[k] = width
            width += columns
    rows, instants, source = views(cohort, options)
    out = patient_metrics(
        rows.as_tuple(),
        instants.as_tuple(),
        source.as_tuple(),
        bases,
        width,
        options.compat == "iglu",
        float(options.inter_gap_min),
    )
    result: dict[str, pa.Array] = {}
    for k, group_names in enumerate(GROUP_NAMES):
        if bases[k] < 0:
            continue
        block = out[:, bases[k] : bases[k] + GROUPS[k][1]]
        for i, name in enumerate(group_names):
            if name in ("start_time", "end_time"):
                result[name] = _wall_clock_text(block[:, i])
            elif name == "gri_zone":
                result[name] = _zones(block[:, 0])
            elif name == "pgs":
                result[name] = pa.array(_pgs(block), pa.float64())
            else:
                result[name] = pa.array(block[:, i], pa.float64())
    return {name: result[name] for name in names}
