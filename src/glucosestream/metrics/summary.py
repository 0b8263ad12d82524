"""Per-patient summaries over daily metric rows. PURE.

Each patient-day row carries reading counts, so period figures are weighted by readings: the
period mean is the mean of all readings, and a period band percentage is the share of all
readings in that band (not an average of daily percentages).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from glucosestream.metrics.glycemic import gmi_pct

__all__ = ["PatientSummary", "summarise_patients"]


@dataclass(frozen=True, slots=True)
class PatientSummary:
    patient_key: str
    days: int
    readings: int
    mean_mg_dl: float
    gmi_pct: float
    pct_below_70: float
    pct_70_180: float
    pct_above_180: float
    pct_active: float


def summarise_patients(daily: pa.Table) -> list[PatientSummary]:
    """One summary per patient over all the daily rows given, sorted by patient_key."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in daily.to_pylist():
        rows[row["patient_key"]].append(row)
    out = []
    for key in sorted(rows):
        days = rows[key]
        n = sum(d["readings"] for d in days)

        def weighted(name: str, days: list[dict[str, Any]] = days, n: int = n) -> float:
            return float(sum(d[name] * d["readings"] for d in days)) / n

        mean = weighted("mean_mg_dl")
        out.append(
            PatientSummary(
                patient_key=key,
                days=len(days),
                readings=n,
                mean_mg_dl=mean,
                gmi_pct=gmi_pct(mean),
                pct_below_70=weighted("pct_below_70"),
                pct_70_180=weighted("pct_70_180"),
                pct_above_180=weighted("pct_above_180"),
                pct_active=sum(d["pct_active"] for d in days) / len(days),
            )
        )
    return out
