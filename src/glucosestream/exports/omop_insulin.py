"""The insulin doses among a patient's published events, as the OMOP export writes them to
DRUG_EXPOSURE. PURE.

A dose is a bolus (normal, extended or automatic) or a long-acting injection (``basal``
``injection``) with its units: one DRUG_EXPOSURE row, ``quantity`` the units, from its time to
its end (an extended bolus: its time plus ``duration_min``; any other dose: its time). Pump
basal segments are not doses: a segment's rate runs until the next record replaces it, so what
it delivered is known only after the day's segments are clipped against each other
(``metrics.basal_delivery``); the daily ``basal_u`` of the tidy export is that figure. Writing
rate x duration per segment would count overlapping segments twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["DOSE_UNIT", "insulin_doses"]

DOSE_UNIT: Final = "U"  # dose_unit_source_value: insulin units (events.py: units are always U)
_DOSES_SCHEMA: Final = pa.schema(
    [
        ("start", pa.timestamp("us")),  # UTC, without its zone (as the OMOP export writes)
        ("end", pa.timestamp("us")),
        ("units", pa.float64()),
        ("source_value", pa.string()),  # "insulin <kind> <subtype>"
    ]
)


def insulin_doses(events: pa.Table) -> pa.Table:
    """The doses among ``events`` (EVENT_SCHEMA, in time order): start, end, units and the
    source value (``insulin bolus normal``, ``insulin basal injection``, ...)."""
    bolus = pc.equal(events["kind"], "bolus")
    injection = pc.and_(pc.equal(events["kind"], "basal"), pc.equal(events["subtype"], "injection"))
    dose = pc.and_(pc.or_(bolus, pc.fill_null(injection, False)), pc.is_valid(events["units"]))
    rows = events.filter(dose).select(["ts", "kind", "subtype", "units", "duration_min"])
    out = []
    for row in rows.to_pylist():
        start = row["ts"].astimezone(dt.UTC).replace(tzinfo=None)
        minutes = row["duration_min"] if row["subtype"] == "extended" else None
        end = start + dt.timedelta(minutes=minutes) if minutes else start
        use = " ".join(part for part in ("insulin", row["kind"], row["subtype"]) if part)
        out.append({"start": start, "end": end, "units": row["units"], "source_value": use})
    return pa.Table.from_pylist(out, schema=_DOSES_SCHEMA)
