"""Dexcom Clarity CSV export, as the web app writes it (see ../shared/samples/dexcom_clarity).

Layout: UTF-8 with a byte-order mark, LF line ends, the current 14-column header; an ``Index``
column numbering every row; preamble rows with an empty timestamp (FirstName, LastName,
DateOfBirth, Device, for G7 a Sensor row, then the seven Alert settings); then one ``EGV`` row per
reading with the **local wall-clock time without a zone** (``YYYY-MM-DDThh:mm:ss``), the
transmitter time (seconds, long integer) and transmitter id. Out-of-range readings are written
as Event Subtype ``Low``/``High`` with the value ``Low``/``High``. Patients in mmol/L zones get
the mmol/L header (``Glucose Value (mmol/L)``, one decimal).

Events logged in the app sit among the EGV rows in time order, as in the sample: ``Insulin``
rows (``Fast-Acting`` for every bolus, ``Long-Acting`` for a pen's daily injection; units in
``Insulin Value (u)``), ``Carbs`` rows (meals and rescues, grams in ``Carb Value (grams)``) and
``Exercise`` rows (``Light``/``Medium``/``Heavy``, ``Duration (hh:mm:ss)``), at the local
time without seconds' fraction, like EGVs. A pump's basal is not in a Clarity export.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import numpy as np

from glucosestream.readings import MG_DL_PER_MMOL_L, ReadingFlag
from glucosestream.synth.exporters.patient import (
    LoggedEvent,
    PatientRecord,
    format_units,
    local_strings,
    to_mmol_l,
)

__all__ = ["SUFFIX", "carries", "render"]

SUFFIX: Final = "_clarity.csv"
_HEADER: Final = (
    "Index,Timestamp (YYYY-MM-DDThh:mm:ss),Event Type,Event Subtype,Patient Info,Device Info,"
    "Source Device ID,Glucose Value ({unit}),Insulin Value (u),Carb Value (grams),"
    "Duration (hh:mm:ss),Glucose Rate of Change ({unit}/min),Transmitter Time (Long Integer),"
    "Transmitter ID"
)
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"
# (subtype, glucose column in mg/dL or None, duration, rate): the app's default alert settings.
_ALERTS: Final = (
    ("Fall", None, "", "3"),
    ("High", 250, "", ""),
    ("Low", 70, "", ""),
    ("Signal Loss", None, "0:20:00", ""),
    ("Rise", None, "", "3"),
    ("Urgent Low", 55, "", ""),
    ("Urgent Low Soon", 55, "", ""),
)
_TRANSMITTER_EPOCH_S: Final = 4_000_000  # transmitter clock at the first session start
_EXERCISE: Final = {"low": "Light", "medium": "Medium", "high": "Heavy"}


def render(patient: PatientRecord) -> bytes:
    """The Clarity CSV of one patient."""
    g7 = patient.device.endswith("G7")
    phone = "iOS" if patient.index % 2 == 0 else "android"
    if g7:
        app, source = "Dexcom G7 Mobile App", f"{phone} G7"
    else:
        app, source = "Dexcom G6 Mobile App", f"{'iPhone' if phone == 'iOS' else phone} G6"
    ident = patient.identity
    preamble: list[list[str]] = [
        ["", "FirstName", "", ident.first_name, "", ""],
        ["", "LastName", "", ident.last_name, "", ""],
        ["", "DateOfBirth", "", _us_date(ident.birth_date), "", ""],
        ["", "Device", "", "", app, source],
    ]
    if g7:
        preamble.append(["", "Sensor", "", "", "", source])
    rows = [",".join([*cells, *[""] * 7]) for cells in preamble]
    for subtype, mg_dl, duration, rate in _ALERTS:
        value = "" if mg_dl is None else _value(patient.mmol, mg_dl)
        rows.append(f",Alert,{subtype},,,{source},{value},,,{duration},{rate},,")
    rows.extend(_timeline(patient, source))
    unit = "mmol/L" if patient.mmol else "mg/dL"
    lines = [_HEADER.format(unit=unit)]
    lines.extend(f"{number},{row}" for number, row in enumerate(rows, start=1))
    return ("\ufeff" + "\n".join(lines) + "\n").encode("utf-8")


def _egv_rows(patient: PatientRecord, source: str) -> list[str]:
    times = patient.local(_TIME_FORMAT)
    seconds = (patient.time_us - patient.session_start_us[0]) // 10**6 + _TRANSMITTER_EPOCH_S
    low = (patient.flags & int(ReadingFlag.SENSOR_LOW)) != 0
    high = (patient.flags & int(ReadingFlag.SENSOR_HIGH)) != 0
    if patient.mmol:
        values = [f"{v:.1f}" for v in np.round(to_mmol_l(patient.glucose_mg_dl), 1)]
    else:
        values = [str(v) for v in patient.glucose_mg_dl.tolist()]
    subtype = np.where(low, "Low", np.where(high, "High", "")).tolist()
    shown = [s if s else v for s, v in zip(subtype, values, strict=True)]
    transmitter = patient.identity.device_serial
    return [
        f"{t},EGV,{s},,,{source},{v},,,,,{tt},{transmitter}"
        for t, s, v, tt in zip(times, subtype, shown, seconds.tolist(), strict=True)
    ]


def _timeline(patient: PatientRecord, source: str) -> list[str]:
    """EGV and event rows merged in time order (an event after the EGVs of its instant)."""
    egv = _egv_rows(patient, source)
    logged = [e for e in patient.events if _event_cells(e) is not None]
    if not logged:
        return egv
    times = np.array([e.time_us for e in logged], dtype=np.int64)
    stamps = local_strings(times, patient.zone, _TIME_FORMAT)
    events = [
        f"{t},{cells.format(source=source)}"
        for t, e in zip(stamps, logged, strict=True)
        if (cells := _event_cells(e)) is not None
    ]
    at = np.searchsorted(patient.time_us, times, side="right")
    merged: list[str] = []
    start = 0
    for position, row in zip(at.tolist(), events, strict=True):
        merged.extend(egv[start:position])
        merged.append(row)
        start = position
    merged.extend(egv[start:])
    return merged


def carries(event: LoggedEvent) -> bool:
    """Whether a Clarity export holds ``event``."""
    return _event_cells(event) is not None


def _event_cells(event: LoggedEvent) -> str | None:
    """The cells after the timestamp of an event's row (``{source}`` left to fill), or None
    for an event Clarity does not show."""
    if event.kind == "bolus" and event.units is not None:
        return f"Insulin,Fast-Acting,,,{{source}},,{format_units(event.units)},,,,,"
    if event.kind == "basal" and event.subtype == "injection" and event.units is not None:
        return f"Insulin,Long-Acting,,,{{source}},,{format_units(event.units)},,,,,"
    if event.kind == "carbs" and event.carbs_g is not None:
        return f"Carbs,,,,{{source}},,,{format_units(event.carbs_g)},,,,"
    if event.kind == "exercise" and event.duration_min is not None and event.intensity:
        minutes = round(event.duration_min)
        duration = f"{minutes // 60}:{minutes % 60:02d}:00"
        return f"Exercise,{_EXERCISE[event.intensity]},,,{{source}},,,,{duration},,,"
    return None


def _us_date(day: dt.date) -> str:
    return f"{day.month}/{day.day}/{day.year}"


def _value(mmol: bool, mg_dl: int) -> str:
    return f"{mg_dl / MG_DL_PER_MMOL_L:.1f}" if mmol else str(mg_dl)
