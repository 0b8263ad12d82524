"""The patient page's insulin and carbs summary of a window of days. PURE.

From the daily metrics' event columns (``metrics.daily``: ``bolus_u``, ``basal_u``,
``insulin_total_u``, ``carbs_g``, ``boluses``, ``automated_pct``; docs/metrics.md defines
them): each figure is the mean over the window's days *that have it*, with the count of those
days. A day without the column's value (NULL: nothing recorded that day, or a basal the
sources do not give) is not a day of 0 U or 0 g: it is left out, and a figure no day has is
"not recorded", never 0. The window's days are those the page's summary counts (complete local
days; the partial newest day is not among them).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["FIGURES", "Figure", "InsulinCarbs", "insulin_carbs"]

# (column, label, unit, decimals): the rows of the summary, in order.
FIGURES: Final = (
    ("bolus_u", "Bolus insulin per day", "U", 1),
    ("basal_u", "Basal insulin per day", "U", 1),
    ("insulin_total_u", "Total insulin per day", "U", 1),
    ("carbs_g", "Carbohydrates per day", "g", 0),
    ("boluses", "Boluses per day", "", 1),
    ("automated_pct", "Time in automated delivery", "%", 0),
)
_EVENT_COLUMNS: Final = tuple(column for column, *_ in FIGURES)


@dataclass(frozen=True, slots=True)
class Figure:
    """One row: the mean over ``days`` days that have the value (None: no day has it)."""

    column: str
    label: str
    unit: str
    decimals: int
    mean: float | None
    days: int

    @property
    def shown(self) -> str:
        """The mean as the page prints it, or "not recorded"."""
        if self.mean is None:
            return "not recorded"
        number = f"{self.mean:.{self.decimals}f}"
        return f"{number}%" if self.unit == "%" else f"{number} {self.unit}".rstrip()


@dataclass(frozen=True, slots=True)
class InsulinCarbs:
    """The window ``start``..``end``: its figures, the days it has daily rows for, and the days
    with any insulin or carbs recorded."""

    start: dt.date
    end: dt.date
    figures: tuple[Figure, ...]
    days: int
    days_with_data: int

    def as_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "days_with_data": self.days_with_data,
            "figures": {
                f.column: {"mean_per_day": f.mean, "days": f.days, "unit": f.unit or None}
                for f in self.figures
            },
        }


def insulin_carbs(days: pa.Table, start: dt.date, end: dt.date) -> InsulinCarbs:
    """The summary of the daily metrics rows ``days`` (one patient's) dated ``start``..``end``;
    a table without the event columns (a lake before them) has none recorded."""
    in_window = days.filter(
        pc.and_(
            pc.greater_equal(days["date"], pa.scalar(start)),
            pc.less_equal(days["date"], pa.scalar(end)),
        )
    )
    figures = tuple(_figure(in_window, *spec) for spec in FIGURES)
    with_data = 0
    masks = [_known(in_window, c) for c in _EVENT_COLUMNS if c in in_window.column_names]
    if masks:
        any_known = masks[0]
        for mask in masks[1:]:
            any_known = pc.or_(any_known, mask)
        with_data = int(pc.sum(pc.cast(any_known, pa.int64())).as_py() or 0)
    return InsulinCarbs(start, end, figures, in_window.num_rows, with_data)


def _known(days: pa.Table, column: str) -> pa.ChunkedArray:
    """Which days have a value of ``column`` (not NULL, not NaN)."""
    return pc.fill_null(pc.is_finite(pc.cast(days[column], pa.float64())), False)


def _figure(days: pa.Table, column: str, label: str, unit: str, decimals: int) -> Figure:
    if column not in days.column_names:
        return Figure(column, label, unit, decimals, None, 0)
    values = pc.cast(days[column], pa.float64()).filter(_known(days, column))
    if len(values) == 0:
        return Figure(column, label, unit, decimals, None, 0)
    return Figure(column, label, unit, decimals, float(pc.mean(values).as_py()), len(values))
