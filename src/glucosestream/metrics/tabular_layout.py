"""The tabular layout of readings ``synth`` writes and ingest reads, in the calculator's columns.

``synth --format csv|parquet|jsonl`` writes ``patient_id, device_id, time, glucose_mg_dl, tz,
flags, profile`` with times as UTC instants; the calculator (``metrics.calculator``) reads
``id, time, gl`` with times on the patient's wall clock. ``as_calculator_columns`` turns one into
the other with ``localclock`` (the lake's own rule for local days), so the synth's output goes
straight into ``metrics --input``. PURE.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.errors import InvalidInput
from glucosestream.localclock import wall_clock_times

__all__ = ["TABULAR_COLUMNS", "TEXT_TYPES", "as_calculator_columns"]

# The tabular layout synth writes (CSV, Parquet, JSON lines) and ingest reads: the calculator
# takes it too, so `synth --format csv` output goes straight into `metrics --input`.
TABULAR_COLUMNS: Final = ("patient_id", "time", "glucose_mg_dl")
TEXT_TYPES: Final = {
    "id": pa.string(),
    "gl": pa.float64(),
    "patient_key": pa.string(),
    "patient_id": pa.string(),
    "glucose_mg_dl": pa.float64(),
    "tz": pa.string(),
}


def as_calculator_columns(batch: pa.RecordBatch, source: str) -> pa.RecordBatch:
    """A batch in one of ``ALIASES``' layouts as it is; one in the tabular layout synth writes
    and ingest reads (``patient_id, time, glucose_mg_dl[, tz]``, times as UTC instants) as
    ``id, time, gl`` with each time on its patient's wall clock (``localclock``, by the ``tz``
    column: the same local days as the lake's); anything else refused, saying what to do."""
    from glucosestream.metrics.cohort_layout import ALIASES  # numba loads on first use

    names = set(batch.schema.names)
    if any(set(layout) <= names for layout in ALIASES):
        return batch
    if not set(TABULAR_COLUMNS) <= names:
        raise InvalidInput(
            f"columns {sorted(names)} have neither id, time, gl (or patient_key, ts, "
            "glucose_mg_dl) nor patient_id, time, glucose_mg_dl[, tz]; rename the columns, or, "
            "for a device export (Dexcom Clarity, LibreView, CareLink, Nightscout, Tidepool, "
            "FHIR), `glucosestream ingest` it, `run`, then `metrics --patient ID`",
            source=source,
        )
    time = batch["time"]
    if not pa.types.is_timestamp(time.type):
        time = pc.cast(time, pa.timestamp("us", tz="UTC"))
    zones = batch["tz"] if "tz" in names else None
    return pa.record_batch(
        {
            "id": pc.cast(batch["patient_id"], pa.string()),
            "time": wall_clock_times(time, zones),
            "gl": pc.cast(batch["glucose_mg_dl"], pa.float64()),
        }
    )
