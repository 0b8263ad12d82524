"""Nightscout treatments as raw event rows: the documents of ``/api/v1/treatments`` (a JSON file
of them, or a POST), and the ``# TREATMENTS`` section of the Nightscout exporter CSV. PURE.

A treatment document names what happened in ``eventType`` and carries its amounts in plain
fields (``insulin`` U, ``carbs`` g, ``duration`` min, ``absolute``/``rate`` U/h, ``glucose`` in
``units``, ``notes``). Each becomes zero, one or two events (``formats.event_rows``):

    Meal Bolus, Snack Bolus, Bolus,      bolus normal (insulin) + carbs meal (carbs), each when
    Correction Bolus, Bolus Wizard       given and not 0; automatic when ``isSMB``/``automatic``
    SMB                                  bolus automatic (insulin)
    Combo Bolus                          bolus normal (``insulin``, the part given now) + bolus
                                         extended (``enteredinsulin`` - ``insulin``, else
                                         ``relative`` U/h x ``duration``; over ``duration``)
    Carb Correction                      carbs correction (+ bolus normal if it has insulin)
    Temp Basal                           basal temporary: rate ``absolute``, else ``rate``;
                                         ``duration`` min. One of duration 0 (a cancel) or with
                                         no rate at all is skipped; one given only as a
                                         ``percent`` of the profile is quarantined (no rate);
                                         basal automated when a closed loop entered it
                                         (``enteredBy`` names AndroidAPS/openaps, Loop, iAPS
                                         or Trio: their temp basals are the loop's delivery)
    Exercise                             exercise (duration)
    Sensor Start, Sensor Change /        device sensor_start / sensor_stop
    Sensor Stop
    Site Change / Insulin Change         device site_change / cartridge_change
    Pump Suspend, Suspend Pump /         device pump_suspend (duration, when given) /
    Resume Pump                          pump_resume
    BG Check                             smbg: ``glucose`` in ``units`` (mg/dl, mmol)
    Note, Announcement                   note (text from ``notes``)
    Temporary Target, Profile Switch,    skipped
    OpenAPS Offline
    any other eventType                  as a bolus when it has insulin or carbs, else skipped

The time is ``created_at`` (ISO 8601), else ``timestamp`` (ISO, or epoch ms), else ``date``
(epoch ms); the device is ``enteredBy`` (the uploader app, or the name typed in the careportal:
ingest turns it into a pseudonym). A record that is not a JSON object, an amount that is no
number, a bolus type with neither insulin nor carbs: an event row with its problem or a value
ingest quarantines, never an exception.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from glucosestream.formats.delimited import WIDTH_PROBLEM, Record, header_key
from glucosestream.formats.event_rows import EventBuilder, EventSite
from glucosestream.formats.jsontext import field_text
from glucosestream.formats.rows import RAW_SCHEMA, ParsedFile

__all__ = [
    "add_treatment",
    "looks_like_treatments",
    "read_treatments_section",
    "treatments_from_records",
]

# An amount longer than this is no number an uploader wrote (its text is not passed on).
_AMOUNT_CHARS: Final = 32
_GLUCOSE_UNITS: Final = {"mg/dl": "mg/dL", "mmol": "mmol/L", "mmol/l": "mmol/L"}
_SKIPPED: Final = frozenset({"Temporary Target", "Profile Switch", "OpenAPS Offline"})
# The exporter CSV's treatment columns (header keys) -> the document field they hold.
_CSV_FIELDS: Final = {
    "event type": "eventType",
    "insulin (u)": "insulin",
    "carbs (g)": "carbs",
    "notes": "notes",
}
_CSV_TITLE: Final = "# treatments"


def looks_like_treatments(document: object) -> bool:
    """Whether a parsed JSON document is treatments: an object, or an array whose first object,
    with ``eventType`` and no ``sgv``."""
    items = document if isinstance(document, list) else [document]
    first = next((item for item in items[:16] if isinstance(item, Mapping)), None)
    return first is not None and "eventType" in first and "sgv" not in first


def treatments_from_records(records: Sequence[object], first_line: int = 1) -> ParsedFile:
    """Treatment documents already parsed from JSON (a file's array, or a POST to the
    treatments API) as a ``ParsedFile``: no readings, the events, and the documents that are
    neither (``skipped``). The line of an event is its document's index from ``first_line``."""
    events = EventBuilder()
    skipped = 0
    for line, record in enumerate(records, start=first_line):
        if not add_treatment(events, line, record):
            skipped += 1
    return ParsedFile(RAW_SCHEMA.empty_table(), skipped=skipped, events=events.table())


def add_treatment(events: EventBuilder, line: int, record: object, time: str | None = None) -> bool:
    """Adds the events of one treatment document; False when it maps to none (skipped).
    ``time`` stands in for the document's own (the exporter CSV's local date and time)."""
    if not isinstance(record, Mapping):
        problem = f"a treatment must be a JSON object, not {_json_kind(record)}"
        events.add(line, kind="", time=None, problem=problem)
        return True
    event_type = record.get("eventType")
    name = event_type if isinstance(event_type, str) else ""
    if name in _SKIPPED:
        return False
    at = EventSite(events, line, time or _time(record), field_text(record.get("enteredBy")))
    return _MAPPERS.get(name, _other)(at, record)


def read_treatments_section(records: Sequence[Record]) -> tuple[EventBuilder, int, int]:
    """The ``# TREATMENTS`` section of the exporter CSV, when ``records`` (the file's records
    after its entries) start with it: its events, the rows it skipped, and how many records it
    spans (0: there is no such section). Its header is ``Date,Time,Event Type,Insulin
    (U),Carbs (g),Notes,ID``; times are local, as the entries'."""
    events = EventBuilder()
    if len(records) < 2 or not header_key(records[0][1][0]).startswith(_CSV_TITLE):
        return events, 0, 0
    keys = [header_key(cell) for cell in records[1][1]]
    where = {field: keys.index(key) for key, field in _CSV_FIELDS.items() if key in keys}
    date, clock = _column(keys, "date"), _column(keys, "time")
    skipped, spanned = 0, 2
    for line, fields in records[2:]:
        if fields[0].lstrip().startswith("#"):
            break
        spanned += 1
        if len(fields) != len(keys) or date is None or clock is None:
            events.add(line, kind="", time=None, problem=WIDTH_PROBLEM)
            continue
        document = {field: fields[i].strip() or None for field, i in where.items()}
        time = f"{fields[date].strip()} {fields[clock].strip()}"
        if not add_treatment(events, line, document, time):
            skipped += 1
    return events, skipped, spanned


def _column(keys: list[str], name: str) -> int | None:
    return keys.index(name) if name in keys else None


@dataclass(frozen=True, slots=True)
class _Amount:
    """A document's amount field: its text for the raw row, and the problem that makes it
    unreadable (too long to be a number)."""

    text: str | None
    problem: str | None = None

    @property
    def given(self) -> bool:
        return self.text is not None or self.problem is not None

    @property
    def number(self) -> float | None:
        try:
            value = float(self.text) if self.text is not None else None
        except ValueError:
            return None
        return value if value is not None and math.isfinite(value) else None

    @property
    def dose(self) -> bool:
        """Given, and not zero (a zero dose or a zero of carbs is no event)."""
        return self.given and self.number != 0


def _amount(record: Mapping[str, Any], field: str) -> _Amount:
    """The field as text: a JSON number as Python writes it, a string stripped, an empty one
    absent; anything longer than a number can be is a problem, not a value."""
    value = record.get(field)
    if value is None:
        return _Amount(None)
    text = value.strip() if isinstance(value, str) else field_text(value)
    if not text:
        return _Amount(None)
    if len(text) > _AMOUNT_CHARS:
        return _Amount(None, f"the {field} field has {len(text)} characters, not a number")
    return _Amount(text)


def _add_amount(
    at: EventSite, kind: str, subtype: str | None, column: str, amount: _Amount
) -> None:
    at.add(kind, subtype, problem=amount.problem, **{column: amount.text})


def _bolus(at: EventSite, record: Mapping[str, Any], subtype: str = "normal") -> bool:
    """Insulin (a bolus) and carbs (a meal), each when given and not zero."""
    if _automatic(record):
        subtype = "automatic"
    insulin, carbs = _amount(record, "insulin"), _amount(record, "carbs")
    if insulin.dose:
        _add_amount(at, "bolus", subtype, "units", insulin)
    if carbs.dose:
        _add_amount(at, "carbs", "meal", "carbs_g", carbs)
    if not insulin.dose and not carbs.dose:
        at.add("bolus", subtype, problem="a bolus treatment with neither insulin nor carbs")
    return True


def _automatic(record: Mapping[str, Any]) -> bool:
    """An automatic bolus (a super-micro bolus): ``isSMB`` (AndroidAPS), ``automatic`` (Loop),
    or ``bolus.isSMB`` (iAPS, which nests the pump's bolus record)."""
    nested = record.get("bolus")
    nested_smb = isinstance(nested, Mapping) and nested.get("isSMB") is True
    return record.get("isSMB") is True or record.get("automatic") is True or nested_smb


def _smb(at: EventSite, record: Mapping[str, Any]) -> bool:
    return _bolus(at, record, "automatic")


def _combo(at: EventSite, record: Mapping[str, Any]) -> bool:
    """The Nightscout careportal stores a combo bolus as ``insulin`` (the part given now),
    ``enteredinsulin`` (the whole), ``relative`` (the extended part's rate, U/h) and
    ``duration`` (min); cgm-remote-monitor lib/client/careportal.js, postTreatment."""
    now, duration = _amount(record, "insulin"), _amount(record, "duration")
    whole, relative = _amount(record, "enteredinsulin"), _amount(record, "relative")
    if now.dose:
        _add_amount(at, "bolus", "normal", "units", now)
    extended: float | None = None
    if whole.number is not None and now.number is not None:
        extended = whole.number - now.number
    elif relative.number is not None and duration.number is not None:
        extended = relative.number * duration.number / 60
    if extended is not None and extended > 0:
        at.add("bolus", "extended", units=_number_text(extended), duration_min=duration.text)
    carbs = _amount(record, "carbs")
    if carbs.dose:
        _add_amount(at, "carbs", "meal", "carbs_g", carbs)
    if not now.dose and not carbs.dose and (extended is None or extended <= 0):
        at.add("bolus", "extended", problem="a combo bolus with no insulin amount")
    return True


def _number_text(value: float) -> str:
    """A computed amount as text, rounded past any pump's increment (0.001 U)."""
    return repr(round(value, 4))


def _carb_correction(at: EventSite, record: Mapping[str, Any]) -> bool:
    insulin, carbs = _amount(record, "insulin"), _amount(record, "carbs")
    if insulin.dose:
        _add_amount(at, "bolus", "normal", "units", insulin)
    if carbs.dose:
        _add_amount(at, "carbs", "correction", "carbs_g", carbs)
    elif not insulin.dose:
        at.add("carbs", "correction", problem="a carb correction with no carbs")
    return True


def _temp_basal(at: EventSite, record: Mapping[str, Any]) -> bool:
    duration = _amount(record, "duration")
    if duration.number == 0:
        return False  # the end of a temporary basal, not a segment
    rate = _amount(record, "absolute")
    if not rate.given:
        rate = _amount(record, "rate")
    if not rate.given and not _amount(record, "percent").given:
        return False
    problem = rate.problem or duration.problem
    if not rate.given:
        problem = "a temporary basal given only as a percent of the profile's rate"
    subtype = "automated" if _by_a_closed_loop(record) else "temporary"
    at.add("basal", subtype, rate_u_h=rate.text, duration_min=duration.text, problem=problem)
    return True


# Uploaders that are closed loops, as they sign ``enteredBy`` (AndroidAPS "openaps://AndroidAPS",
# Loop "loop://<device>", iAPS "iAPS", Trio "Trio"): a temp basal they enter is the loop's
# automated delivery, not one a person set.
_CLOSED_LOOPS: Final = ("openaps", "androidaps", "loop://", "iaps", "trio")


def _by_a_closed_loop(record: Mapping[str, Any]) -> bool:
    entered_by = record.get("enteredBy")
    if not isinstance(entered_by, str):
        return False
    name = entered_by.strip().lower()
    return any(name.startswith(loop) or name == loop for loop in _CLOSED_LOOPS)


def _exercise(at: EventSite, record: Mapping[str, Any]) -> bool:
    _add_amount(at, "exercise", None, "duration_min", _amount(record, "duration"))
    return True


def _device(subtype: str, *, timed: bool = False) -> Callable[[EventSite, Mapping[str, Any]], bool]:
    def add(at: EventSite, record: Mapping[str, Any]) -> bool:
        duration = _amount(record, "duration") if timed else _Amount(None)
        _add_amount(at, "device", subtype, "duration_min", duration)
        return True

    return add


def _bg_check(at: EventSite, record: Mapping[str, Any]) -> bool:
    glucose, units = _amount(record, "glucose"), field_text(record.get("units"))
    unit = _GLUCOSE_UNITS.get(units.strip().lower(), units) if units else None
    at.add("smbg", None, glucose=glucose.text, unit=unit, problem=glucose.problem)
    return True


def _note(at: EventSite, record: Mapping[str, Any]) -> bool:
    at.add("note", None, note=field_text(record.get("notes")))
    return True


def _other(at: EventSite, record: Mapping[str, Any]) -> bool:
    """An eventType of no known meaning: a bolus when it carries insulin or carbs."""
    if _amount(record, "insulin").dose or _amount(record, "carbs").dose:
        return _bolus(at, record)
    return False


_MAPPERS: Final[dict[str, Callable[[EventSite, Mapping[str, Any]], bool]]] = {
    "Meal Bolus": _bolus,
    "Snack Bolus": _bolus,
    "Bolus": _bolus,
    "Correction Bolus": _bolus,
    "Bolus Wizard": _bolus,
    "SMB": _smb,
    "Combo Bolus": _combo,
    "Carb Correction": _carb_correction,
    "Temp Basal": _temp_basal,
    "Exercise": _exercise,
    "Sensor Start": _device("sensor_start"),
    "Sensor Change": _device("sensor_start"),
    "Sensor Stop": _device("sensor_stop"),
    "Site Change": _device("site_change"),
    "Insulin Change": _device("cartridge_change"),
    "Pump Suspend": _device("pump_suspend", timed=True),
    "Suspend Pump": _device("pump_suspend", timed=True),
    "Resume Pump": _device("pump_resume"),
    "BG Check": _bg_check,
    "Note": _note,
    "Announcement": _note,
}


def _time(record: Mapping[str, Any]) -> str | None:
    """``created_at``, else ``timestamp``, else ``date``; epoch milliseconds as ISO 8601."""
    for field in ("created_at", "timestamp", "date"):
        value = record.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _epoch_ms_text(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _epoch_ms_text(epoch_ms: float) -> str:
    try:
        instant = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return str(epoch_ms)  # quarantined as an unparsable time
    return instant.isoformat(timespec="milliseconds")


def _json_kind(value: object) -> str:
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    return (
        "an array"
        if isinstance(value, list)
        else "a string"
        if isinstance(value, str)
        else "a number"
    )
