"""Nightscout entries: the API's JSON and CSV, and the "nightscout exporter" CSV.

JSON (``GET /api/v1/entries.json``): an array of entry documents, newest first:

    {"_id": …, "type": "sgv", "sgv": 162, "date": 1775421029000,
     "dateString": "2026-04-05T20:30:29.000Z", "direction": "Flat", "device": …, "utcOffset": 0}

``date`` (epoch milliseconds) is the instant (``dateString``/``sysTime`` when it is missing);
``sgv`` is in mg/dL. The line of a reading is its 1-based index in the array. ``direction`` is
the uploader's trend arrow; an entry without a known one may carry the numeric ``trend``
instead (0-9, ``readings.DIRECTIONS``), which is read as its direction.

CSV (``GET /api/v1/entries.csv``): no header, one entry a line:

    "2026-04-05T20:30:29.000Z",1775421029000,162,"Flat",<device>

(the fourth field is the direction).

Exporter CSV (a third-party tool): a ``# CGM ENTRIES`` section with the header
``Date,Time,Glucose (mg/dL),Type,Device,Trend,ID``, local times ``M/D/YYYY`` and
``h:mm:ss AM`` without a zone (``--tz`` says where), newest first, ``Trend`` holding the
direction (often empty); then a ``# TREATMENTS`` section, whose rows become events
(``nightscout_treatments``; its ``Temp Basal`` rows carry no rate and are skipped).

Treatments (``GET /api/v1/treatments.json``: an array of documents with an ``eventType`` and no
``sgv``) are read as events by ``nightscout_treatments.treatments_from_records``.

A direction that is not one of Nightscout's names is dropped by ingest, never quarantined.

Only ``sgv`` (sensor glucose) entries are readings; ``mbg`` (meter) and ``cal`` entries are
skipped. An ``sgv`` entry without a value (or with ``null``, ``NaN``) is received and quarantined,
not skipped; a ``date`` that is no instant (``Infinity``, ``NaN``, ``1e300``) quarantines its entry
as an unparsable time. ``sgv`` values below 13 are the Dexcom error codes Nightscout passes through
(1 ``?SN`` sensor not active … 12 ``?RF`` bad RF), not glucose: they are quarantined.
A Nightscout site is one person and names no patient id: pass ``--patient``. Treatment and
profile documents are not entries: a POST of them to the entries API is refused with a message
saying so. A profile file read alone gives no rows: its documents are counted skipped
(``ingest.basal_profiles`` lays its schedule over the days of the data ingested with it, by
``nightscout_profile.scheduled_basal``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from glucosestream.errors import InvalidInput
from glucosestream.formats.delimited import (
    WIDTH_PROBLEM,
    Record,
    header_key,
    header_unit,
    read_text,
    split_records,
)
from glucosestream.formats.jsontext import decode_json, field_text
from glucosestream.formats.nightscout_profile import looks_like_profiles
from glucosestream.formats.nightscout_treatments import (
    looks_like_treatments,
    read_treatments_section,
    treatments_from_records,
)
from glucosestream.formats.rows import ParsedFile, RowBuilder
from glucosestream.readings import DIRECTIONS

__all__ = [
    "looks_like_nightscout_csv",
    "looks_like_nightscout_json",
    "nightscout_document",
    "read_nightscout",
    "read_nightscout_entries",
    "treatments_from_records",
]

# cgm-remote-monitor lib/plugins/errorcodes.js: sgv values below 13 are Dexcom error codes.
NIGHTSCOUT_ERROR_CODE_BELOW: Final = 13
_EXPORTER_TITLE: Final = "# cgm entries"
_API_CSV_LINE: Final = re.compile(r'^"?\d{4}-\d{2}-\d{2}T[^",]*"?,\d{10,13},')
_API_CSV_FIELDS: Final = 5
_EXPORTER_FORMATS: Final = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p")
_ENTRY_TYPES: Final = ("sgv", "mbg", "cal")
_TREND_NAMES: Final = {str(number): name for number, name in enumerate(DIRECTIONS)}


def looks_like_nightscout_csv(head: str) -> bool:
    first = head.lstrip().split("\n", 1)[0]
    return header_key(first).startswith(_EXPORTER_TITLE) or bool(_API_CSV_LINE.match(first))


def looks_like_nightscout_json(document: object) -> bool:
    """Whether a parsed JSON document holds Nightscout entries, treatments or profiles."""
    first = document[0] if isinstance(document, list) and document else document
    if not isinstance(first, Mapping):
        return False
    typed_entry = first.get("type") in _ENTRY_TYPES and "date" in first
    return typed_entry or bool({"sgv", "dateString", "eventType", "defaultProfile"} & set(first))


def read_nightscout(path: Path) -> ParsedFile:
    text = read_text(path, "Nightscout export")
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        return _read_json(text, str(path))
    if header_key(stripped.split("\n", 1)[0]).startswith(_EXPORTER_TITLE):
        return _read_exporter_csv(text, str(path))
    return _read_api_csv(text, str(path))


def _read_json(text: str, source: str) -> ParsedFile:
    try:
        document = decode_json(text, source=source)
    except json.JSONDecodeError as err:
        raise InvalidInput(
            f"not valid JSON ({err.msg}); export the entries again", source=source, line=err.lineno
        ) from err
    return nightscout_document(document, source)


def nightscout_document(document: object, source: str) -> ParsedFile:
    """The rows of a Nightscout JSON document already decoded (entries, treatments or
    profiles)."""
    entries = document if isinstance(document, list) else [document]
    if looks_like_treatments(document):
        return treatments_from_records(entries)
    if looks_like_profiles(document):  # a schedule alone has no days: nothing to lay it over
        return ParsedFile(RowBuilder().table(), skipped=len(entries))
    return read_nightscout_entries(entries, source=source)


def read_nightscout_entries(entries: list[Any], *, source: str) -> ParsedFile:
    """Entry documents already parsed from JSON (a file's array, or a POST to the entries API)."""
    rows = RowBuilder()
    skipped = 0
    for index, entry in enumerate(entries, start=1):
        if not _is_sgv(entry):
            skipped += 1
            continue
        rows.add(
            index,
            time=_instant(entry),
            glucose=field_text(entry.get("sgv")),
            unit="mg/dL",
            device_id=field_text(entry.get("device")),
            problem=_error_code(entry.get("sgv")),
            direction=_direction(entry),
        )
    if not rows and entries and isinstance(entries[0], Mapping):
        _refuse_other_documents(entries[0], source)
    return ParsedFile(rows.table(), skipped=skipped)


def _is_sgv(entry: object) -> bool:
    """A sensor glucose entry: typed ``sgv`` (with or without a value: one without is received
    and quarantined as missing glucose), or untyped with an ``sgv`` field."""
    if not isinstance(entry, Mapping):
        return False
    kind = entry.get("type")
    return kind == "sgv" or (kind is None and "sgv" in entry)


def _refuse_other_documents(first: Mapping[str, Any], source: str) -> None:
    """Entries that are treatments (posted to the entries API) or a profile: refused, saying
    where they belong."""
    if "eventType" in first:
        raise InvalidInput(
            "these are Nightscout treatments, not glucose entries; send them to "
            "/api/v1/treatments (or ingest the treatments file itself)",
            source=source,
        )
    if "store" in first:
        raise InvalidInput(
            "this is a Nightscout profile document, not glucose entries", source=source
        )


def _direction(entry: Mapping[str, Any]) -> str | None:
    """The entry's direction: its ``direction`` when that is a Nightscout name, else the name of
    its numeric ``trend`` (0-9), else whatever ``direction`` holds (ingest drops it)."""
    direction = entry.get("direction")
    if isinstance(direction, str) and direction in DIRECTIONS:
        return direction
    trend = entry.get("trend")
    if isinstance(trend, int | float) and not isinstance(trend, bool) and trend in range(10):
        return DIRECTIONS[int(trend)]
    return direction if isinstance(direction, str) else None


def _direction_text(field: str) -> str | None:
    """A CSV field holding a direction name or a trend number (0-9), as a direction name (any
    other text as it is: ingest drops it); None when empty."""
    text = field.strip()
    return _TREND_NAMES.get(text, text) or None


def _instant(entry: Mapping[str, Any]) -> str | None:
    epoch_ms = entry.get("date")
    if isinstance(epoch_ms, int | float) and not isinstance(epoch_ms, bool):
        try:
            instant = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return str(epoch_ms)  # quarantined as an unparsable time
        return instant.isoformat(timespec="milliseconds")
    return field_text(entry.get("dateString") or entry.get("sysTime"))


def _error_code(sgv: object) -> str | None:
    if isinstance(sgv, bool) or not isinstance(sgv, int | float):
        return None
    return (
        "a sensor error code, not a glucose value"
        if 0 <= sgv < NIGHTSCOUT_ERROR_CODE_BELOW
        else None
    )


def _read_api_csv(text: str, source: str) -> ParsedFile:
    rows = RowBuilder()
    for line, fields in split_records(text, delimiter=",", source=source):
        if len(fields) != _API_CSV_FIELDS:
            rows.add(line, time=None, glucose=None, problem=WIDTH_PROBLEM)
            continue
        sgv = fields[2].strip()
        rows.add(
            line,
            time=fields[0].strip(),
            glucose=sgv,
            unit="mg/dL",
            device_id=fields[4].strip() or None,
            problem=_error_code(int(sgv)) if sgv.isascii() and sgv.isdigit() else None,
            direction=_direction_text(fields[3]),
        )
    return ParsedFile(rows.table())


def _read_exporter_csv(text: str, source: str) -> ParsedFile:
    records = list(split_records(text, delimiter=",", source=source))
    section = _entries_section(records)
    if not section:
        raise InvalidInput("the '# CGM ENTRIES' section has no header line", source=source)
    header_line, header = section[0]
    keys = [header_key(cell) for cell in header]
    where = {name: _index(keys, name, source, header_line) for name in ("date", "time", "type")}
    glucose = next((i for i, k in enumerate(keys) if k.startswith("glucose (")), None)
    if glucose is None:
        raise InvalidInput(
            "no 'Glucose (mg/dL)' column in the CGM entries header", source=source, line=header_line
        )
    unit = header_unit(header[glucose])
    trend = keys.index("trend") if "trend" in keys else None
    rows = RowBuilder()
    after = records[1 + len(section) :]
    events, skipped, spanned = read_treatments_section(after)
    skipped += sum(1 for _, fields in after[spanned:] if not fields[0].lstrip().startswith("#"))
    for line, fields in section[1:]:
        if len(fields) != len(header):
            rows.add(line, time=None, glucose=None, problem=WIDTH_PROBLEM)
        elif fields[where["type"]].strip().lower() != "sgv":
            skipped += 1
        else:
            time = f"{fields[where['date']].strip()} {fields[where['time']].strip()}"
            direction = _direction_text(fields[trend]) if trend is not None else None
            rows.add(
                line, time=time, glucose=fields[glucose].strip(), unit=unit, direction=direction
            )
    return ParsedFile(
        rows.table(newest_first=True),
        time_formats=_EXPORTER_FORMATS,
        skipped=skipped,
        events=events.table(newest_first=True) if events else None,
    )


def _entries_section(records: list[Record]) -> list[Record]:
    """The records after ``# CGM ENTRIES`` up to the next ``#`` section."""
    section: list[Record] = []
    for line, fields in records[1:]:
        if fields[0].lstrip().startswith("#"):
            break
        section.append((line, fields))
    return section


def _index(keys: list[str], name: str, source: str, line: int) -> int:
    if name not in keys:
        raise InvalidInput(
            f"no {name!r} column in the CGM entries header", source=source, line=line
        )
    return keys.index(name)
