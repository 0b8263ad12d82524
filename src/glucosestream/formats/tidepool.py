"""Tidepool device data: continuous glucose (``cbg``) datums.

Layout: a JSON array of datums, as the Tidepool API and its JSON export give them (a JSON object
whose values are datums, as in Tidepool's documentation examples, is read the same way):

    {"type": "cbg", "units": "mmol/L", "value": 3.996538553552784,
     "time": "2018-05-14T08:17:07.384Z", "deviceTime": "2018-05-14T18:17:07",
     "timezoneOffset": 600, "deviceId": "DevId0987654321", "sampleInterval": 300000,
     "annotations": [{"code": "bg/out-of-range", "value": "low", "threshold": 40}]}

``time`` is the UTC instant (``deviceTime``, local without a zone, only when ``time`` is
missing). Stored values are mmol/L (Tidepool divides mg/dL by 18.01559, unrounded); they are
converted back with the project's factor and the original value kept. An out-of-range datum
(``bg/out-of-range`` annotation) holds threshold ± 1: it becomes a reading at the threshold,
which Tidepool gives in mg/dL, flagged ``SENSOR_LOW``/``SENSOR_HIGH``.

Bolus, basal, food, wizard, smbg, bloodKetone, physicalActivity and some deviceEvent datums are
events (``tidepool_events`` says which and how); other datum types (``upload``, settings,
alarms, …) are skipped. The line of a reading or event is its 1-based position in the document.
``deviceId`` is the device; ``_userId`` the patient when present, else pass ``--patient``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from glucosestream.errors import InvalidInput
from glucosestream.formats.delimited import read_text
from glucosestream.formats.event_rows import EventBuilder
from glucosestream.formats.jsontext import decode_json, field_text
from glucosestream.formats.rows import ParsedFile, RowBuilder
from glucosestream.formats.tidepool_events import add_datum_events
from glucosestream.readings import ReadingFlag

__all__ = ["looks_like_tidepool", "read_tidepool", "tidepool_document"]

# Tidepool API docs, device-data/oor-values.md.
_OUT_OF_RANGE: Final = "bg/out-of-range"
_CLAMP_FLAGS: Final = {"low": ReadingFlag.SENSOR_LOW, "high": ReadingFlag.SENSOR_HIGH}
_DATUM_KEYS: Final = frozenset({"deviceTime", "uploadId", "timezoneOffset", "deviceId"})


def looks_like_tidepool(document: object) -> bool:
    """Whether a parsed JSON document holds Tidepool datums."""
    datums = _datums(document)
    return bool(datums) and isinstance(datums[0], Mapping) and bool(_DATUM_KEYS & set(datums[0]))


def read_tidepool(path: Path) -> ParsedFile:
    source = str(path)
    try:
        document = decode_json(read_text(path, "Tidepool export"), source=source)
    except json.JSONDecodeError as err:
        raise InvalidInput(
            f"not valid JSON ({err.msg}); export the data again", source=source, line=err.lineno
        ) from err
    return tidepool_document(document, source)


def tidepool_document(document: object, source: str) -> ParsedFile:
    """The rows of a Tidepool JSON document already decoded."""
    datums = _datums(document)
    if not datums:
        raise InvalidInput("no Tidepool datums in this document; nothing to ingest", source=source)
    rows, events = RowBuilder(), EventBuilder()
    skipped = 0
    for index, datum in enumerate(datums, start=1):
        if not isinstance(datum, Mapping):
            skipped += 1
        elif datum.get("type") == "cbg":
            _add(rows, index, datum)
        elif not add_datum_events(events, index, datum):
            skipped += 1
    return ParsedFile(rows.table(), skipped=skipped, events=events.table() if events else None)


def _datums(document: object) -> Sequence[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, Mapping):
        if "type" in document:
            return [document]
        values = list(document.values())
        if values and all(isinstance(v, Mapping) and "type" in v for v in values):
            return values
    return []


def _add(rows: RowBuilder, index: int, datum: Mapping[str, Any]) -> None:
    value, unit, flags = datum.get("value"), datum.get("units"), 0
    notes = datum.get("annotations")
    for note in notes if isinstance(notes, list) else ():
        if isinstance(note, Mapping) and note.get("code") == _OUT_OF_RANGE:
            flags = _CLAMP_FLAGS.get(str(note.get("value")), 0)
            if flags and note.get("threshold") is not None:
                value, unit = note["threshold"], "mg/dL"
    rows.add(
        index,
        time=field_text(datum.get("time") or datum.get("deviceTime")),
        glucose=field_text(value),
        unit=field_text(unit),
        device_id=field_text(datum.get("deviceId")),
        patient_id=field_text(datum.get("_userId")),
        tz=field_text(datum.get("timezone")),
        flags=flags,
    )
