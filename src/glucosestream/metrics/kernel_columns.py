"""The metric catalog for a whole cohort at once: named Arrow columns, one row per patient.
PURE.

``cohort_columns(cohort, names, options)`` runs the compiled per-patient pass
(``kernels.patients``) for the groups that hold ``names`` and returns ``{name: column}``. Each
kernel group declares the columns its writers fill (``kernels.patients.GROUPS``); values are
read back by those names, never by position, and tests/test_metrics_spec.py holds them equal to
``metrics.spec.GROUPS``. The numbers are those of ``reference.patient_metrics.compute_patient``
(the readable reference, tested against this), without a Python loop per patient except for
PGS's final formula.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.metrics.cohort_layout import Cohort, Readings
from glucosestream.metrics.kernels.patients import GROUPS, PGS_INPUT_COLUMNS, patient_metrics
from glucosestream.metrics.metric_options import MetricOptions
from glucosestream.metrics.reference import consensus, risk
from glucosestream.metrics.spec import BY_NAME

__all__ = ["cohort_columns", "views"]

FloatArray = npt.NDArray[np.float64]


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


def _group_of(name: str) -> int:
    group = BY_NAME[name].group
    return next(k for k, (kernel_group, _) in enumerate(GROUPS) if kernel_group == group)


def _named_column(name: str, block: FloatArray, columns: tuple[str, ...]) -> pa.Array:
    """Metric ``name`` from its group's ``block`` of kernel output, found by column name."""
    if name == "pgs":
        inputs = block[:, [columns.index(c) for c in PGS_INPUT_COLUMNS]]
        return pa.array(_pgs(inputs), pa.float64())
    values = block[:, columns.index(name)]
    if name == "gri_zone":
        return _zones(block[:, columns.index("gri")])
    if BY_NAME[name].result == "local_time":
        return _wall_clock_text(values)
    return pa.array(values, pa.float64())


def cohort_columns(
    cohort: Cohort, names: Sequence[str], options: MetricOptions | None = None
) -> dict[str, pa.Array]:
    """``{name: column}`` for ``names`` (all in ``spec.ALL``), one value per patient."""
    options = options or MetricOptions()
    asked = {_group_of(name) for name in names}
    bases = np.full(len(GROUPS), -1, dtype=np.int64)
    width = 0
    for k, (_, columns) in enumerate(GROUPS):
        if k in asked:
            bases[k] = width
            width += len(columns)
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
    for name in names:
        k = _group_of(name)
        columns = GROUPS[k][1]
        block = out[:, bases[k] : bases[k] + len(columns)]
        result[name] = _named_column(name, block, columns)
    return result
