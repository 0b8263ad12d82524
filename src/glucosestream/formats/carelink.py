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
``(mmol/L)``) value; the section's serial is the device. Records of any section are events
(``ParsedFile.events``, one per column it fills) by these columns:

    Bolus Volume Delivered (U)     bolus: Bolus Type Normal or Dual (normal part) -> normal;
                                   Square or Dual (square part) -> extended, for its
                                   Bolus Duration (h:mm:ss) (a dual bolus is two records)
    Basal Rate (U/h)               basal scheduled at that rate, until the device's next
                                   Basal Rate record (wall-clock minutes; empty for the last,
                                   and for a gap over a day)
    Temp Basal Amount              basal temporary for Temp Basal Duration (h:mm:ss): the
                                   amount is U/h, or with Temp Basal Type Percent that percent
                                   of the scheduled rate in effect
    BWZ Carb Input (grams)         carbs meal (0: a bolus without a meal, not an event)
    BG Reading, Sensor Calibration BG   smbg, in the column's unit
    Suspend                        device pump_resume (NORMAL_PUMPING, USER_RESTART_BASAL, or a
                                   value naming a resume), pump_suspend (a value naming a
                                   suspend: USER_SUSPEND, ALARM_SUSPEND, …)
    Event Marker ``Meal: <n>grams``    carbs meal (logged in the Guardian Connect app)

Everything else is skipped: alarms, other ``Event Marker`` entries (the app's logged
``Insulin: 3,00`` does not say which insulin), primes and rewinds, sensor records without a
glucose value, and the preamble, whose names never leave this module. The
``Patient ID`` cell of the preamble, when filled, is the patient id; otherwise pass ``--patient``.
Rows are reversed into time order, which resolves repeated local times at the end of daylight
saving (see ``ingest``). Guardian sensors report 40-400 mg/dL; CareLink writes the limits as
numbers, so they are not flagged as LOW/HIGH clamps.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pyarrow as pa

from glucosestream.errors import InvalidInput
from glucosestream.events import MAX_DURATION_MIN
from glucosestream.formats.delimited import (
    WIDTH_PROBLEM,
    Record,
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
    events = _Events(patient_id)
    skipped = 0
    section: tuple[str, str] | None = None  # (kind, serial)
    layout: _Layout | None = None
    for line, fields in records:
        if fields[0].strip().startswith(_MARKER):
            section = (header_key(_cell(fields, 2)), _cell(fields, 3).strip())
            layout = None
            continue
        if section is None:
            continue  # the preamble
        if layout is None:
            layout = _Layout.of(fields, source, line, sensor=section[0] == _SENSOR_SECTION)
            continue
        device = section[1] or None
        read = _add_reading(rows, line, fields, layout, device, patient_id)
        if not events.add_record(line, fields, layout, device) and not read:
            skipped += 1
    if section is None:
        raise InvalidInput(
            "no device section (a '-------;<device>;Sensor;<serial>;-------' line) in this "
            "CareLink export; export the file again from CareLink",
            source=source,
        )
    table = events.table()
    return ParsedFile(
        rows.table(newest_first=True), time_formats=_TIME_FORMATS, skipped=skipped, events=table
    )


def _add_reading(
    rows: RowBuilder,
    line: int,
    fields: list[str],
    layout: _Layout,
    device: str | None,
    patient_id: str | None,
) -> bool:
    """The record's sensor glucose as a reading; False when it has none."""
    value = _cell(fields, layout.where["glucose"]).strip() if "glucose" in layout.where else ""
    if not value:
        return False
    if len(fields) != len(layout.header):
        rows.add(line, time=None, glucose=None, problem=WIDTH_PROBLEM)
        return True
    rows.add(
        line,
        time=layout.time(fields),
        glucose=decimal_point(value),
        unit=layout.unit,
        device_id=device,
        patient_id=patient_id,
    )
    return True


# The event columns a section may have: the names in the CareLink headers (the Guardian Connect
# sample's, and the older ``Temp Basal Amount (U/h)``, ``… Duration (hh:mm:ss)``, ``Programmed
# Bolus Duration (hh:mm:ss)``, ``BG Reading (mmol/L)``), exact or by their start.
_EVENT_COLUMNS: Final = {
    "bg": (("bg reading (",), False),
    "calibration": (("sensor calibration bg (",), False),
    "basal": (("basal rate (u/h)",), True),
    "temp_amount": (("temp basal amount",), False),
    "temp_type": (("temp basal type",), True),
    "temp_duration": (("temp basal duration",), False),
    "bolus_type": (("bolus type",), True),
    "bolus": (("bolus volume delivered (u)",), True),
    "bolus_duration": (("bolus duration", "programmed bolus duration"), False),
    "carbs": (("bwz carb input (grams)",), True),
    "suspend": (("suspend",), True),
    "marker": (("event marker",), True),
}
_AMOUNT_COLUMNS: Final = (
    "bg",
    "calibration",
    "basal",
    "temp_amount",
    "bolus",
    "carbs",
    "suspend",
    "marker",
)
# A meal the user logged in the Guardian Connect app: ``Meal: 60,00grams`` (the sample's).
_MEAL_MARKER: Final = re.compile(r"meal:\s*(\S{1,32}?)\s*grams?", re.IGNORECASE)
_BOLUS_TYPES: Final = {
    "normal": "normal",
    "square": "extended",
    "dual (normal part)": "normal",
    "dual (square part)": "extended",
}
# Suspend column values that end a suspension (the others starting one name it: USER_SUSPEND,
# ALARM_SUSPEND, NOTSEATED_SUSPEND, LOW_SUSPEND_…).
_RESUMES: Final = ("normal_pumping", "user_restart_basal")
_Event = tuple[str, dict[str, str | None]]  # kind, raw event values (with its problem)
_PERCENT: Final = "percent"  # not a raw event column: a temp basal's percent, until rated


def _smbg(fields: list[str], layout: _Layout, name: str) -> _Event:
    glucose, problem = amount_text(layout.cell(fields, name), _column(layout, name))
    unit = header_unit(layout.header[layout.where[name]])
    return "smbg", {"glucose": glucose, "unit": unit, "problem": problem}


def _bolus(fields: list[str], layout: _Layout) -> _Event:
    units, problem = amount_text(layout.cell(fields, "bolus"), _column(layout, "bolus"))
    given = layout.cell(fields, "bolus_type")
    subtype = _BOLUS_TYPES.get(given.lower())
    if subtype is None:
        problem = problem or f"a bolus of Bolus Type {given[:40]!r}, not Normal, Square or Dual"
    duration = None
    if subtype == "extended":
        duration, late = _duration(fields, layout, "bolus_duration")
        problem = problem or late
    return "bolus", {
        "subtype": subtype,
        "units": units,
        "duration_min": duration,
        "problem": problem,
    }


def _temp_basal(fields: list[str], layout: _Layout) -> _Event:
    amount, problem = amount_text(
        layout.cell(fields, "temp_amount"), _column(layout, "temp_amount")
    )
    duration, late = _duration(fields, layout, "temp_duration")
    values = {"subtype": "temporary", "rate_u_h": amount, "duration_min": duration}
    if amount is not None and layout.cell(fields, "temp_type").lower().startswith("percent"):
        # a percent of the scheduled rate: made a rate by ``_Events.table``
        values["rate_u_h"], values[_PERCENT] = None, amount
    return "basal", {**values, "problem": problem or late}


def _suspend(fields: list[str], layout: _Layout) -> _Event:
    given = layout.cell(fields, "suspend").lower()
    if given in _RESUMES or "resume" in given:
        return "device", {"subtype": "pump_resume"}
    if "suspend" in given:
        return "device", {"subtype": "pump_suspend"}
    return "device", {
        "problem": f"a Suspend value {given[:40]!r} that is neither a suspend nor a resume"
    }


def _duration(fields: list[str], layout: _Layout, name: str) -> tuple[str | None, str | None]:
    """A duration column as minutes: ``h:mm:ss`` cells, or minutes when the header says ``(m)``."""
    if name not in layout.where:
        return None, None
    column = _column(layout, name)
    if header_unit(column).lower() in ("m", "min"):
        return amount_text(layout.cell(fields, name), column)
    return minutes_text(layout.cell(fields, name), column)


def _column(layout: _Layout, name: str) -> str:
    return layout.header[layout.where[name]].strip()


def _record_events(fields: list[str], layout: _Layout) -> list[_Event]:
    """The events one record holds, in the columns' order."""
    found: list[_Event] = []
    if not any(_cell(fields, i).strip() for i in layout.event_columns):
        return found  # most records: a sensor reading, an alarm
    for name in ("bg", "calibration"):
        if layout.cell(fields, name):
            found.append(_smbg(fields, layout, name))
    if layout.cell(fields, "basal"):
        rate, problem = amount_text(layout.cell(fields, "basal"), _column(layout, "basal"))
        found.append(("basal", {"subtype": "scheduled", "rate_u_h": rate, "problem": problem}))
    if layout.cell(fields, "temp_amount"):
        found.append(_temp_basal(fields, layout))
    if layout.cell(fields, "bolus"):
        found.append(_bolus(fields, layout))
    if layout.cell(fields, "carbs"):  # zero: a bolus without a meal
        carbs, problem = amount_text(layout.cell(fields, "carbs"), _column(layout, "carbs"))
        if _number(carbs) != 0.0:
            found.append(("carbs", {"subtype": "meal", "carbs_g": carbs, "problem": problem}))
    if layout.cell(fields, "suspend"):
        found.append(_suspend(fields, layout))
    meal = _MEAL_MARKER.fullmatch(layout.cell(fields, "marker"))
    if meal is not None:
        carbs, problem = amount_text(meal.group(1), "Event Marker")
        found.append(("carbs", {"subtype": "meal", "carbs_g": carbs, "problem": problem}))
    return found


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _wall_clock(text: str) -> dt.datetime | None:
    """A record's local time, to measure the time between two of them (wall-clock minutes)."""
    for time_format in _TIME_FORMATS:
        try:
            # a wall clock, not an instant: marked UTC only to be compared with others
            return dt.datetime.strptime(text, time_format).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


@dataclass(slots=True)
class _Events:
    """The events of one export, and what finishes its basal segments once all are read."""

    patient_id: str | None
    rows: EventBuilder = field(default_factory=EventBuilder)
    # scheduled basal rows: (row index, device, local time)
    scheduled: list[tuple[int, str | None, dt.datetime]] = field(default_factory=list)
    # temp basals in percent: (row index, device, local time if read, the percent as text)
    percent: list[tuple[int, str | None, dt.datetime | None, str]] = field(default_factory=list)

    def add_record(self, line: int, fields: list[str], layout: _Layout, device: str | None) -> bool:
        """The events of one record; False when it holds none."""
        found = _record_events(fields, layout)
        if not found:
            return False
        time: str | None = layout.time(fields)
        if len(fields) != len(layout.header):
            found, time = [(found[0][0], {"problem": WIDTH_PROBLEM})], None
        for kind, values in found:
            percent = values.pop(_PERCENT, None)
            index = len(self.rows)
            self.rows.add(
                line, kind=kind, time=time, device_id=device, patient_id=self.patient_id, **values
            )
            wall = _wall_clock(time) if time and kind == "basal" else None
            if values.get("subtype") == "scheduled" and wall is not None:
                self.scheduled.append((index, device, wall))
            elif percent is not None:
                self.percent.append((index, device, wall, percent))
        return True

    def table(self) -> pa.Table | None:
        if not self.rows:
            return None
        segments = sorted(self.scheduled, key=lambda s: (s[1] or "", s[2]))
        for (index, device, start), (_, next_device, end) in itertools.pairwise(segments):
            minutes = (end - start).total_seconds() / 60
            if device == next_device and 0 < minutes <= MAX_DURATION_MIN:
                self.rows.columns["duration_min"][index] = repr(minutes)
        for row, on, at, percent in self.percent:
            self._percent_rate(row, on, at, percent, segments)
        return self.rows.table(newest_first=True)

    def _percent_rate(
        self,
        index: int,
        device: str | None,
        start: dt.datetime | None,
        percent: str,
        segments: list[tuple[int, str | None, dt.datetime]],
    ) -> None:
        """A temp basal in percent of the scheduled rate, as U/h: that percent of the rate of the
        latest scheduled segment of its device that started before it."""
        rates = self.rows.columns["rate_u_h"]
        before = [i for i, d, at in segments if d == device and start is not None and at <= start]
        rate = _number(rates[before[-1]]) if before else None
        share = _number(percent)
        if share is None or rate is None:
            self.rows.problems[index] = self.rows.problems[index] or (
                f"a temp basal of {percent[:40]!r} percent with no scheduled basal rate before it"
            )
            return
        rates[index] = repr(rate * share / 100)


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


@dataclass(frozen=True, slots=True)
class _Layout:
    """A section's header and where its columns are: ``date``, ``time``, ``glucose`` (sensor
    sections), and the event columns (``_EVENT_COLUMNS``) it has."""

    header: list[str]
    where: dict[str, int]
    unit: str = "mg/dL"
    # the columns whose value makes a record an event (not the type and duration columns)
    event_columns: tuple[int, ...] = ()

    @classmethod
    def of(cls, header: list[str], source: str, line: int, *, sensor: bool) -> _Layout:
        keys = [header_key(cell) for cell in header]
        where: dict[str, int] = {}
        for name in ("date", "time"):
            if name not in keys:
                raise InvalidInput(
                    f"no {name!r} column in the CareLink section header; "
                    "export the file again from CareLink",
                    source=source,
                    line=line,
                )
            where[name] = keys.index(name)
        for name, (names, exact) in _EVENT_COLUMNS.items():
            found = [
                i for i, k in enumerate(keys) if (k in names if exact else k.startswith(names))
            ]
            if found:
                where[name] = found[0]
        amounts = tuple(i for name, i in where.items() if name in _AMOUNT_COLUMNS)
        if not sensor:
            return cls(header, where, event_columns=amounts)
        glucose = next((i for i, k in enumerate(keys) if k.startswith("sensor glucose (")), -1)
        if glucose < 0:
            raise InvalidInput(
                "no 'Sensor Glucose (mg/dL)' column in the CareLink section header; "
                "export the file again from CareLink",
                source=source,
                line=line,
            )
        where["glucose"] = glucose
        return cls(header, where, header_unit(header[glucose]), amounts)

    def time(self, fields: list[str]) -> str:
        date, time = _cell(fields, self.where["date"]), _cell(fields, self.where["time"])
        return f"{date.strip()} {time.strip()}"

    def cell(self, fields: list[str], name: str) -> str:
        return _cell(fields, self.where[name]).strip() if name in self.where else ""
