"""Medtronic CareLink CSV export (Guardian Connect, MiniMed 600/700 series).

Layout (``;``-separated; EU exports write decimals with a comma, even in ``Index``):

    Last Name;First Name;Patient ID;System ID;Start Date;End Date;Device;Guardian Connect
    "<last>";"<first>";"<patient id>";…;"Serial Number";<serial>
    (blank line)
    Device data shown may exceed selected date range.
    (blank line)
    -------;<device>;Pump|Sensor|…;<serial>;-------        one marker per device section
    Index;Date;Time;New Device Time;BG Reading (mg/dL);…;Sensor Glucose (mg/dL);ISIG Value;…
    2747,00000;2021/07/25;00:32:50;…;55;…                  records, newest first

Each section repeats the full header (48 columns for Guardian Connect, 54 for the 780G).
``Date`` is ``YYYY/MM/DD`` (or ``DD.MM.YYYY``) and ``Time`` ``HH:MM:SS``: local wall-clock time
without a zone (``--tz`` says where).

Readings are the records of ``Sensor`` sections with a ``Sensor Glucose (mg/dL)`` (or
``(mmol/L)``) value; the section's serial is the device. Everything else is skipped: pump-section
records (alarms, insulin, fingerstick ``BG Reading`` and ``Sensor Calibration BG`` values), sensor
records without a glucose value, and the preamble, whose names never leave this module. The
``Patient ID`` cell of the preamble, when filled, is the patient id; otherwise pass ``--patient``.
Rows are reversed into time order, which resolves repeated local times at the end of daylight
saving (see ``ingest``). Guardian sensors report 40-400 mg/dL; CareLink writes the limits as
numbers, so they are not flagged as LOW/HIGH clamps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from glucosestream.errors import InvalidInput
from glucosestream.formats.delimited import (
    WIDTH_PROBLEM,
    Record,
    decimal_point,
    header_key,
    header_unit,
    read_text,
    split_records,
)
from glucosestream.formats.rows import ParsedFile, RowBuilder

__all__ = ["looks_like_carelink", "read_carelink"]

_MARKER: Final = "-------"
_SENSOR_SECTION: Final = "sensor"
_TIME_FORMATS: Final = ("%Y/%m/%d %H:%M:%S", "%d.%m.%Y %H:%M:%S")


def looks_like_carelink(head: str) -> bool:
    """Whether the start of a text file is a CareLink export."""
    first = header_key(head.split("\n", 1)[0])
    return first.startswith("last name;first name;") or any(
        line.startswith(_MARKER + ";") for line in head.splitlines()
    )


def read_carelink(path: Path) -> ParsedFile:
    source = str(path)
    text = read_text(path, "CareLink export")
    records = list(split_records(text, delimiter=";", source=source))
    patient_id = _patient_id(records)
    rows = RowBuilder()
    skipped = 0
    section: tuple[str, str] | None = None  # (kind, serial)
    header: list[str] | None = None
    where: dict[str, int] = {}
    unit = "mg/dL"
    for line, fields in records:
        if fields[0].strip().startswith(_MARKER):
            section = (header_key(_cell(fields, 2)), _cell(fields, 3).strip())
            header = None
            continue
        if section is None:
            continue  # the preamble
        if header is None:
            header = fields
            if section[0] == _SENSOR_SECTION:
                where, unit = _locate(fields, source, line)
            continue
        value = _cell(fields, where["glucose"]).strip() if section[0] == _SENSOR_SECTION else ""
        if not value:
            skipped += 1
            continue
        if len(fields) != len(header):
            rows.add(line, time=None, glucose=None, problem=WIDTH_PROBLEM)
            continue
        rows.add(
            line,
            time=f"{fields[where['date']].strip()} {fields[where['time']].strip()}",
            glucose=decimal_point(value),
            unit=unit,
            device_id=section[1] or None,
            patient_id=patient_id,
        )
    if section is None:
        raise InvalidInput(
            "no device section (a '-------;<device>;Sensor;<serial>;-------' line) in this "
            "CareLink export; export the file again from CareLink",
            source=source,
        )
    return ParsedFile(rows.table(newest_first=True), time_formats=_TIME_FORMATS, skipped=skipped)


def _cell(fields: list[str], index: int) -> str:
    return fields[index] if index < len(fields) else ""


def _patient_id(records: list[Record]) -> str | None:
    """The ``Patient ID`` cell of the preamble, if filled (names are never read)."""
    if len(records) < 2:
        return None
    keys = [header_key(cell) for cell in records[0][1]]
    if "patient id" not in keys:
        return None
    value = _cell(records[1][1], keys.index("patient id")).strip()
    return value or None


def _locate(header: list[str], source: str, line: int) -> tuple[dict[str, int], str]:
    keys = [header_key(cell) for cell in header]
    where: dict[str, int] = {}
    for name, wanted in (("date", "date"), ("time", "time")):
        if wanted not in keys:
            raise InvalidInput(
                f"no {wanted!r} column in the CareLink section header; "
                "export the file again from CareLink",
                source=source,
                line=line,
            )
        where[name] = keys.index(wanted)
    for index, key in enumerate(keys):
        if key.startswith("sensor glucose ("):
            where["glucose"] = index
            return where, header_unit(header[index])
    raise InvalidInput(
        "no 'Sensor Glucose (mg/dL)' column in the CareLink section header; "
        "export the file again from CareLink",
        source=source,
        line=line,
    )
