"""Per-patient summaries: over daily metric rows, and the catalog of any window of days. PURE.

``summarise_patients``: each patient-day row carries reading counts, so period figures are
weighted by readings (a day with events and no readings weighs nothing): the period mean is
the mean of all readings, and a period band percentage is the share of all readings in that
band (not an average of daily percentages).

``window_metrics``: the whole catalog (``spec.ALL``, or the names asked for) of one patient's
canonical readings whose local date lies in a window of days, computed as one series
(published definitions): CV, MAGE or GRI of a window cannot be assembled from its days.
``json_value`` makes one metric's value JSON-ready by its spec result type. ``TARGETS`` are the
consensus targets a summary is read against (Battelino 2019), one definition for every reader.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.localclock import wall_clock_times
from glucosestream.metrics.calculator import compute_metrics
from glucosestream.metrics.glycemic import gmi_pct
from glucosestream.metrics.spec import ALL, BY_NAME
from glucosestream.metrics.thresholds import MIN_ACTIVE_PCT, TIR_TARGET_PCT

__all__ = [
    "TARGETS",
    "PatientSummary",
    "Target",
    "json_value",
    "summarise_patients",
    "window_metrics",
]


@dataclass(frozen=True, slots=True)
class Target:
    """A consensus target: ``metric`` at least (``min``) or at most (``max``) ``value``."""

    metric: str
    bound: Literal["min", "max"]
    value: float

    def met(self, observed: float | None) -> bool | None:
        """Whether ``observed`` meets the target (None: undefined, nothing to judge)."""
        if observed is None:
            return None
        return observed >= self.value if self.bound == "min" else observed <= self.value

    @property
    def text(self) -> str:
        """The target as a clinician reads it: "> 70 %", "< 4 %"."""
        sign = ">" if self.bound == "min" else "<"
        unit = BY_NAME[self.metric].unit
        return f"{sign} {self.value:g} {unit}"


# Battelino 2019 (Diabetes Care 42:1593), targets for most adults with type 1 or 2 diabetes;
# GMI < 7 % (ADA Standards of Care 2019, the HbA1c goal GMI approximates); sensor active >= 70 %
# of the 14 days (Battelino 2019: "at least 70 % of possible CGM readings over 14 days").
TARGETS: Final = (
    Target("pct_70_180", "min", TIR_TARGET_PCT),
    Target("pct_below_70", "max", 4.0),
    Target("pct_below_54", "max", 1.0),
    Target("pct_above_180", "max", 25.0),
    Target("pct_above_250", "max", 5.0),
    Target("cv_pct", "max", 36.0),
    Target("gmi_pct", "max", 7.0),
    Target("active_pct", "min", MIN_ACTIVE_PCT),
)


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
    """One summary per patient over all the daily rows given, sorted by patient_key. A glucose
    summary: days without readings (a day with only insulin or carbs events) are not counted,
    and a patient with none has no summary."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in daily.to_pylist():
        if row["readings"]:
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


def window_metrics(
    readings: pa.Table, start: dt.date, end: dt.date, names: Sequence[str] = ALL
) -> dict[str, Any]:
    """The metrics ``names`` of one patient's canonical readings (``ts, glucose_mg_dl, tz``)
    whose local date lies in ``start``..``end``, JSON-ready (``json_value``); every value None
    when no reading falls in the window."""
    local = wall_clock_times(readings["ts"], readings["tz"])
    days = pc.cast(local, pa.date32())
    inside = pc.and_(
        pc.greater_equal(days, pa.scalar(start, pa.date32())),
        pc.less_equal(days, pa.scalar(end, pa.date32())),
    )
    series = pa.table(
        {
            "id": pa.repeat(pa.scalar("window", pa.string()), readings.num_rows),
            "time": local,
            "gl": readings["glucose_mg_dl"],
        }
    ).filter(inside)
    if series.num_rows == 0:
        return dict.fromkeys(names)
    row = compute_metrics(series, list(names)).to_pylist()[0]
    return {name: json_value(name, row[name]) for name in names}


def json_value(name: str, value: object) -> Any:
    """Metric ``name``'s value as JSON carries it: NaN and missing as None, a count as int, a
    flag as bool, a wall-clock time as ISO text (``YYYY-MM-DDTHH:MM:SS``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    kind = BY_NAME[name].result
    if kind == "int":
        return int(value)  # type: ignore[call-overload]
    if kind == "bool":
        return bool(value)
    if kind == "local_time":
        text = value.isoformat() if isinstance(value, dt.datetime) else str(value)
        return text.replace(" ", "T")
    if kind == "string":
        return str(value)
    return float(value)  # type: ignore[arg-type]
