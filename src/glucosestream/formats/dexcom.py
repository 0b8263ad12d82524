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
- Everything else is skipped and never leaves this module: the preamble (``FirstName``,
  ``LastName``, ``DateOfBirth`` carrying the patient's name and birth date in ``Patient Info``;
  ``Device``, ``Sensor`` and ``Alert`` settings), ``Calibration`` fingersticks, ``Insulin``,
  ``Carbs``, ``Exercise``, ``Health`` events.

Identity: the file names no patient id (only a name, which is dropped): pass ``--patient``.
``Source Device ID`` (``iPhone G6``, ``android G6``) is the device; it is present in both
layouts, so a 12- and a 14-column export of the same days agree on it. Transmitter ids are not
read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from glucosestream.errors import InvalidInput
from glucosestream.formats.delimited import (
    WIDTH_PROBLEM,
    decimal_point,
    header_key,
    header_unit,
    read_text,
    split_records,
)
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
    where = _locate(header, source, line)
    unit = header_unit(header[where["glucose"]])
    rate_at = next((i for i, c in enumerate(header) if header_key(c).startswith(_RATE_COLUMNS)), -1)
    per_mmol = rate_at >= 0 and header_unit(header[rate_at]).lower().startswith("mmol")
    rows = RowBuilder()
    skipped = 0
    for line, fields in records:
        if len(fields) <= where["event"] or header_key(fields[where["event"]]) != "egv":
            skipped += 1
            continue
        if len(fields) != len(header):
            rows.add(line, time=None, glucose=None, problem=WIDTH_PROBLEM)
            continue
        time = fields[where["time"]].strip()
        value = fields[where["glucose"]].strip()
        device = fields[where["device"]].strip() or None
        rate = _rate(fields[rate_at], per_mmol=per_mmol) if rate_at >= 0 else None
        clamp = _CLAMPS.get(value.lower())
        if clamp is None:
            rows.add(line, time=time, glucose=value, unit=unit, device_id=device, rate=rate)
        else:
            limit, flag = clamp
            rows.add(
                line,
                time=time,
                glucose=str(limit),
                unit="mg/dL",
                device_id=device,
                flags=flag,
                rate=rate,
            )
    return ParsedFile(rows.table(), skipped=skipped)


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
    return where
