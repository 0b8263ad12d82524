"""Dexcom Clarity CSV export (G6, G7; English and German).

Layout: line 1 is the header, then one record per line; the first column is ``Index``.

    Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,
    Source Device ID,Glucose Value (mg/dL),Insulin Value (u),Carb Value (grams),
    Duration (hh:mm:ss),Glucose Rate of Change (mg/dL/min)[,Transmitter Time (Long Integer),
    Transmitter ID]

12 columns (older exports) or 14 (with the transmitter columns); ``(mmol/L)`` in place of
``(mg/dL)`` in mmol/L exports; the German export uses ``;``, quotes every field and translates
the header (``Zeitstempel (JJJJ-MM-TTThh:mm:ss)``, ``Ereignisart``, ``Quellengeräte-ID``,
``Glukosewert (mg/dL)``). The first cell may carry a byte-order mark, or a mangled one and
extra quotes when a tool re-saved the file.

Records:
- ``EGV`` (estimated glucose value) rows are the readings. Timestamps are the device's local
  wall clock without a zone (``T`` or a space between date and time): ``--tz`` says where.
  A value written ``Low`` or ``High`` is outside the sensor's range: it becomes a reading at the
  range limit (40 or 400 mg/dL) flagged ``SENSOR_LOW``/``SENSOR_HIGH``.
- ``Glucose Rate of Change`` is the sensor's trend (mg/dL/min, or mmol/L/min in mmol/L
  exports, converted; ``Glukose-Änderungsgeschwindigkeit`` in German): kept with the reading;
  older exports leave it empty.
- ``Insulin``, ``Carbs``, ``Exercise`` and ``Health`` records are events (``ParsedFile.events``),
  at the record's local time, on its ``Source Device ID``: ``Insulin`` ``Fast-Acting`` is a
  bolus (``normal``) and ``Long-Acting`` a basal ``injection``, of ``Insulin Value (u)`` units
  (an Insulin record of another subtype keeps a problem: which insulin it was is not known);
  ``Carbs`` is a meal of ``Carb Value (grams)``; ``Exercise`` takes its subtype as the intensity
  (``Light``, ``Medium``, ``Heavy``: low, medium, high) and ``Duration (hh:mm:ss)`` in minutes;
  ``Health`` is a note whose subtype is Clarity's, lower case with ``_`` for spaces
  (``illness``, ``stress``, ``high_symptoms``, ``low_symptoms``, ``cycle``, ``alcohol``), no text.
  Amounts are passed as written (a decimal comma read as a point); ingest checks them.
- Everything else is skipped and never leaves this module: the preamble (``FirstName``,
  ``LastName``, ``DateOfBirth`` carrying the patient's name and birth date in ``Patient Info``;
  ``Device``, ``Sensor`` and ``Alert`` settings), ``Calibration`` fingersticks (the sensor's
  calibrations, not a record of the patient's), and in German exports every record but ``EGV``
  (no public German export shows the event type names).

Identity: the file names no patient id (only a name, which is dropped): pass ``--patient``.
``Source Device ID`` (``iPhone G6``, ``android G6``) is the device; it is present in both
layouts, so a 12- and a 14-column export of the same days agree on it. Transmitter ids are not
read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from glucosestream.errors import InvalidInput
from glucosestream.formats.delimited import (
    WIDTH_PROBLEM,
    amount_text,
    decimal_point,
    header_key,
    header_unit,
    minutes_text,
    read_text,
    split_records,
)
from glucosestream.formats.event_rows import EventBuilder
from glucosestream.formats.rows import ParsedFile, RowBuilder
from glucosestream.readings import MG_DL_PER_MMOL_L, ReadingFlag

__all__ = ["looks_like_dexcom", "read_dexcom"]

# Dexcom G6 and G7 user guides: the sensor reports 40-400 mg/dL and shows LOW/HIGH outside it.
DEXCOM_LOW_MG_DL: Final = 40
DEXCOM_HIGH_MG_DL: Final = 400

_COLUMNS: Final = {
    "time": ("timestamp", "zeitstempel"),
    "event": ("event type", "ereignisart"),
    "device": ("source device id", "quellengeräte-id", "quellengerät-id"),
    "glucose": ("glucose value", "glukosewert"),
}
_RATE_COLUMNS: Final = ("glucose rate of change", "glukose-änderungsgeschwindigkeit")
# The columns of the event records (English only: no German export with events is public, so
# the German event type names are not known and those records stay skipped).
_EVENT_COLUMNS: Final = {
    "subtype": ("event subtype",),
    "insulin": ("insulin value",),
    "carbs": ("carb value",),
    "duration": ("duration",),
}
_INSULIN_SUBTYPES: Final = {
    "fast-acting": ("bolus", "normal"),
    "long-acting": ("basal", "injection"),
}
# Clarity's exercise subtypes are the intensity the user chose.
_INTENSITIES: Final = {"light": "low", "medium": "medium", "heavy": "high"}
_CLAMPS: Final = {
    "low": (DEXCOM_LOW_MG_DL, ReadingFlag.SENSOR_LOW),
    "high": (DEXCOM_HIGH_MG_DL, ReadingFlag.SENSOR_HIGH),
}


def looks_like_dexcom(head: str) -> bool:
    """Whether the first line of a text file is a Clarity header."""
    first = header_key(head.split("\n", 1)[0])
    return "index" in first and (
        ("event type" in first and "glucose value" in first)
        or ("ereignisart" in first and "glukosewert" in first)
    )


def read_dexcom(path: Path) -> ParsedFile:
    source = str(path)
    text = read_text(path, "Dexcom Clarity export")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    records = split_records(text, delimiter=delimiter, source=source)
    first = next(records, None)
    if first is None:
        raise InvalidInput("the file has no header; nothing to ingest", source=source)
    line, header = first
    layout = _Layout.of(header, _locate(header, source, line))
    rows = RowBuilder()
    events = EventBuilder()
    skipped = 0
    for line, fields in records:
        event = header_key(fields[layout.at("event")]) if len(fields) > layout.at("event") else ""
        if event == "egv":
            _add_reading(rows, line, fields, layout)
        elif event in _EVENT_TYPES:
            _add_event(events, line, fields, layout, event)
        else:
            skipped += 1
    return ParsedFile(rows.table(), skipped=skipped, events=events.table() if events else None)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where a Clarity file keeps what is read: the header and its columns (-1: absent), the
    glucose unit and whether the rate of change is per mmol/L."""

    header: list[str]
    where: dict[str, int]
    unit: str
    rate_per_mmol: bool

    @classmethod
    def of(cls, header: list[str], where: dict[str, int]) -> _Layout:
        rate_at = where.get("rate", -1)
        per_mmol = rate_at >= 0 and header_unit(header[rate_at]).lower().startswith("mmol")
        return cls(header, where, header_unit(header[where["glucose"]]), per_mmol)

    def at(self, name: str) -> int:
        return self.where.get(name, -1)

    def cell(self, fields: list[str], name: str) -> str:
        index = self.at(name)
        return fields[index] if 0 <= index < len(fields) else ""


def _add_reading(rows: RowBuilder, line: int, fields: list[str], layout: _Layout) -> None:
    if len(fields) != len(layout.header):
        rows.add(line, time=None, glucose=None, problem=WIDTH_PROBLEM)
        return
    time = layout.cell(fields, "time").strip()
    value = layout.cell(fields, "glucose").strip()
    device = layout.cell(fields, "device").strip() or None
    rate_at = layout.at("rate")
    rate = _rate(fields[rate_at], per_mmol=layout.rate_per_mmol) if rate_at >= 0 else None
    clamp = _CLAMPS.get(value.lower())
    if clamp is None:
        rows.add(line, time=time, glucose=value, unit=layout.unit, device_id=device, rate=rate)
        return
    limit, flag = clamp
    rows.add(
        line, time=time, glucose=str(limit), unit="mg/dL", device_id=device, flags=flag, rate=rate
    )


def _add_event(
    events: EventBuilder, line: int, fields: list[str], layout: _Layout, event: str
) -> None:
    """One Insulin, Carbs, Exercise or Health record as an event (contract: docs/events.md)."""
    subtype = layout.cell(fields, "subtype").strip()
    kind, values, problem = _EVENT_TYPES[event](subtype, fields, layout)
    if len(fields) != len(layout.header):
        events.add(line, kind=kind, time=None, problem=WIDTH_PROBLEM)
        return
    events.add(
        line,
        kind=kind,
        time=layout.cell(fields, "time").strip(),
        device_id=layout.cell(fields, "device").strip() or None,
        problem=problem,
        **values,
    )


_Mapped = tuple[str, dict[str, str | None], str | None]  # kind, raw event values, problem


def _insulin(subtype: str, fields: list[str], layout: _Layout) -> _Mapped:
    units, problem = _amount(fields, layout, "insulin")
    kind, mapped = _INSULIN_SUBTYPES.get(subtype.lower(), ("bolus", None))
    if mapped is None:
        shown = subtype[:40]
        problem = problem or f"an Insulin record of subtype {shown!r}, not Fast- or Long-Acting"
    return kind, {"subtype": mapped, "units": units}, problem


def _carbs(subtype: str, fields: list[str], layout: _Layout) -> _Mapped:
    carbs, problem = _amount(fields, layout, "carbs")
    return "carbs", {"subtype": "meal", "carbs_g": carbs}, problem


def _exercise(subtype: str, fields: list[str], layout: _Layout) -> _Mapped:
    duration_at = layout.at("duration")
    duration, problem = (
        minutes_text(fields[duration_at], layout.header[duration_at])
        if 0 <= duration_at < len(fields)
        else (None, None)
    )
    intensity = _INTENSITIES.get(subtype.lower(), subtype[:40] or None)
    return "exercise", {"intensity": intensity, "duration_min": duration}, problem


def _health(subtype: str, fields: list[str], layout: _Layout) -> _Mapped:
    return "note", {"subtype": "_".join(subtype.lower().split())[:40] or None}, None


def _amount(fields: list[str], layout: _Layout, name: str) -> tuple[str | None, str | None]:
    index = layout.at(name)
    if index < 0:
        return None, f"no {_EVENT_COLUMNS[name][0]!r} column in the Clarity header"
    if index >= len(fields):
        return None, None  # a narrow record: WIDTH_PROBLEM
    return amount_text(fields[index], layout.header[index])


_EVENT_TYPES: Final[dict[str, Callable[[str, list[str], _Layout], _Mapped]]] = {
    "insulin": _insulin,
    "carbs": _carbs,
    "exercise": _exercise,
    "health": _health,
}


def _rate(field: str, *, per_mmol: bool) -> str | None:
    """The rate of change as text in mg/dL/min (None when empty); text that is no number is
    passed on as it is (ingest drops it)."""
    text = decimal_point(field)
    if not text or not per_mmol:
        return text or None
    try:
        return repr(float(text) * MG_DL_PER_MMOL_L)
    except ValueError:
        return text


def _locate(header: list[str], source: str, line: int) -> dict[str, int]:
    keys = [header_key(cell) for cell in header]
    where: dict[str, int] = {}
    for name, prefixes in _COLUMNS.items():
        found = [i for i, key in enumerate(keys) if key.startswith(prefixes)]
        if not found:
            raise InvalidInput(
                f"no {prefixes[0]!r} column in the Dexcom Clarity header "
                f"(found {', '.join(header)}); export the file again from Clarity",
                source=source,
                line=line,
            )
        where[name] = found[0]
    for name, prefixes in (*_EVENT_COLUMNS.items(), ("rate", _RATE_COLUMNS)):
        where[name] = next((i for i, key in enumerate(keys) if key.startswith(prefixes)), -1)
    return where
