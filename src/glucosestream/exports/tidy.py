"""The tidy export: the patients' readings, events and metrics as three tables for any analysis
tool, and their data dictionary, in the folder ``out``.

- ``readings.csv`` / ``.parquet``: one row per published reading of the window's local days
  (every reading, fingerstick calibrations and a partial newest day included: the flags say).
- ``events.csv`` / ``.parquet``: one row per published event of the window's local days
  (insulin, carbs, exercise, device events, finger-sticks, ketones, notes), in time order. A
  note's text only where the lake holds it (ingest keeps notes on opt-in) and never with
  ``keep_notes`` False (the command line's ``--pseudonymous``: free text can name people).
- ``metrics.csv`` / ``.parquet``: one row per patient and local day of the published daily
  metrics (with the day's insulin and carbohydrate totals; a day with events and no readings
  has ``readings`` 0 and every glucose column empty, ``active_pct`` included), then one
  ``window`` row per patient: the summary of the window's complete days
  (``published.window_summary``).
- ``data_dictionary.csv``: every column of the files (type, unit, definition, source), made
  from the same definitions as the files (``exports.data_dictionary``).

A patient is written when it has readings or events in the window.

CSV conventions (and the formula guard for spreadsheets): ``exports.table_files``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.clock import utc_now
from glucosestream.config import Settings
from glucosestream.errors import NotFound
from glucosestream.exports import ExportReport, export_report
from glucosestream.exports.data_dictionary import (
    DICTIONARY_SCHEMA,
    EVENTS_COLUMNS,
    METRIC_NAMES,
    METRICS_COLUMNS,
    READINGS_COLUMNS,
    TIDY_FILES,
    dictionary_rows,
    schema_of,
)
from glucosestream.exports.table_files import TableFile, output_folder
from glucosestream.exports.window_events import window_events
from glucosestream.exports.window_readings import Window, exported_ids, readings_by_patient
from glucosestream.localclock import wall_clock_times
from glucosestream.metrics import PERIOD_EVENT_COLUMNS
from glucosestream.metrics.report_window import last_complete_day
from glucosestream.published import PublishedRun, window_summary
from glucosestream.readings import MG_DL_PER_MMOL_L, ReadingFlag

__all__ = ["DICTIONARY_FILE", "write_tidy"]

log = logging.getLogger(__name__)

DICTIONARY_FILE: Final = "data_dictionary.csv"
_FLAGS: Final = (
    ReadingFlag.SENSOR_LOW,
    ReadingFlag.SENSOR_HIGH,
    ReadingFlag.CALIBRATION,
    ReadingFlag.SCAN,
)
# Daily-metrics columns named otherwise than the spec's metric.
_DAILY_NAMES: Final = {"pct_active": "active_pct"}
_FLAGGED: Final = frozenset(c.name for c in METRICS_COLUMNS if c.type == pa.bool_())
# Window-row values taken from the window summary: its metrics by name, then its insulin and
# carbohydrate means (``WindowSummary.event_means``, period_metrics' names).
_WINDOW_METRICS: Final = tuple(METRIC_NAMES)
_WINDOW_EVENT_MEANS: Final = tuple(PERIOD_EVENT_COLUMNS)


def write_tidy(
    run: PublishedRun,
    patient_keys: list[str],
    start: dt.date | None,
    end: dt.date | None,
    out: Path,
    *,
    fmt: Literal["csv", "parquet"],
    settings: Settings,
    identities: Mapping[str, str] | None = None,
    keep_notes: bool = True,
    now: dt.datetime | None = None,
) -> ExportReport:
    """Write the tidy readings, events, metrics and data dictionary of ``patient_keys``'
    published data of local days ``start``..``end`` (each optional) into the folder ``out``;
    ``keep_notes`` False leaves the text of notes out."""
    now = now or utc_now()
    ids = exported_ids(settings, patient_keys, identities)
    output_folder(out)
    started = time.perf_counter()
    suffix = ".csv" if fmt == "csv" else ".parquet"
    files = {
        name: TableFile(out / f"{name}{suffix}", schema_of(columns), fmt)
        for name, columns in TIDY_FILES.items()
    }
    notes: list[str] = []
    try:
        for key, readings in readings_by_patient(run, patient_keys, (start, end)):
            patient = _Patient(key, ids[key], readings, window_events(run, key, (start, end)))
            _write_patient(run, files, patient, (start, end), now, notes, keep_notes=keep_notes)
    finally:
        for f in files.values():
            f.close()
    dictionary = _write_dictionary(out, {f.path.name: f for f in files.values()})
    rows = {name: f.rows for name, f in files.items()}
    log.info(
        "export format=tidy-%s readings=%d events=%d metric_rows=%d duration_ms=%d",
        fmt,
        rows["readings"],
        rows["events"],
        rows["metrics"],
        (time.perf_counter() - started) * 1000,
    )
    written = [f.path for f in files.values()] + [dictionary]
    return export_report(written, rows, notes)


@dataclass(frozen=True, slots=True)
class _Patient:
    """One patient's published readings and events of the window, and its id in the export."""

    key: str
    identity: str
    readings: pa.Table
    events: pa.Table


def _write_patient(
    run: PublishedRun,
    files: Mapping[str, TableFile],
    patient: _Patient,
    window: Window,
    now: dt.datetime,
    notes: list[str],
    *,
    keep_notes: bool,
) -> None:
    """The patient's rows of each file (none, said in notes, without readings or events)."""
    if patient.readings.num_rows == 0 and patient.events.num_rows == 0:
        notes.append(f"{patient.identity}: no published readings or events in the window")
        return
    files["readings"].write(_reading_rows(patient.readings, patient.identity))
    files["events"].write(_event_rows(patient.events, patient.identity, keep_notes=keep_notes))
    files["metrics"].write(_day_rows(run, patient, window))
    files["metrics"].write(_window_row(run, patient, window, now, notes))


def _reading_rows(readings: pa.Table, identity: str) -> pa.Table:
    """The readings as the tidy file's rows (``READINGS_COLUMNS``)."""
    n = readings.num_rows
    mg_dl = readings["glucose_mg_dl"]
    columns: dict[str, Any] = {
        "patient_id": pa.array([identity] * n, pa.string()),
        "device_id": readings["device_id"],
        "source": readings["source"],
        "time_utc": readings["ts"],
        "time_local": wall_clock_times(readings["ts"], readings["tz"]),
        "local_date": readings["local_date"],
        "tz": readings["tz"],
        "glucose_mg_dl": mg_dl,
        "glucose_mmol_l": pc.divide(mg_dl, MG_DL_PER_MMOL_L),
        "original_value": readings["original_value"],
        "original_unit": readings["original_unit"],
        "direction": readings["direction"],
        "rate_mg_dl_min": readings["rate_mg_dl_min"],
    }
    for flag in _FLAGS:
        set_bits = pc.bit_wise_and(readings["flags"], int(flag))
        columns[str(flag.name).lower()] = pc.not_equal(set_bits, 0)
    return pa.table({c.name: columns[c.name] for c in READINGS_COLUMNS})


def _event_rows(events: pa.Table, identity: str, *, keep_notes: bool) -> pa.Table:
    """The events as the tidy file's rows (``EVENTS_COLUMNS``)."""
    n = events.num_rows
    columns: dict[str, Any] = {
        "patient_id": pa.repeat(pa.scalar(identity, pa.string()), n),
        "time_utc": events["ts"],
        "time_local": wall_clock_times(events["ts"], events["tz"]),
    }
    if not keep_notes:
        columns["note"] = pa.nulls(n, pa.string())
    return pa.table(
        {c.name: columns[c.name] if c.name in columns else events[c.name] for c in EVENTS_COLUMNS}
    )


def _day_rows(run: PublishedRun, patient: _Patient, window: Window) -> pa.Table:
    """The patient's published daily metrics of the window, marked complete or partial (without
    readings every day counts, as in the window summary). A day without readings (events only)
    has every glucose figure empty, its sensor-active share too: it was no sensor day."""
    days = run.daily_index().patient_days(patient.key, *window)
    complete: Any = [True] * days.num_rows
    if patient.readings.num_rows:
        ts, tz = patient.readings["ts"], patient.readings["tz"]
        newest = last_complete_day(pc.max(wall_clock_times(ts, tz)).as_py())
        complete = pc.less_equal(days["date"], pa.scalar(newest, pa.date32()))
    values: dict[str, Any] = {
        "patient_id": [patient.identity] * days.num_rows,
        "row_kind": ["day"] * days.num_rows,
        "period_start": days["date"],
        "period_end": days["date"],
        "complete": complete,
        "audited": [True] * days.num_rows,
    }
    for name in days.column_names:
        values[_DAILY_NAMES.get(name, name)] = days[name]
    no_readings = pc.equal(days["readings"], 0)
    values["active_pct"] = pc.if_else(
        no_readings, pa.scalar(None, pa.float64()), days["pct_active"]
    )
    return _metric_table(values, days.num_rows)


def _window_row(
    run: PublishedRun, patient: _Patient, window: Window, now: dt.datetime, notes: list[str]
) -> pa.Table:
    """The summary of the window's complete days (no row when it has none: said in notes)."""
    try:
        summary = window_summary(run, patient.key, *window, now=now)
    except NotFound as err:
        notes.append(f"{patient.identity}: no window summary ({err})")
        return _metric_table({}, 0)
    values: dict[str, Any] = {
        "patient_id": [patient.identity],
        "row_kind": ["window"],
        "period_start": [summary.start],
        "period_end": [summary.end],
        "complete": [True],
        "audited": [summary.audited],
    }
    for name in _WINDOW_METRICS:
        value = summary.metrics.get(name)
        values[name] = [
            bool(value) if isinstance(value, float | int) and name in _FLAGGED else value
        ]
    for name in _WINDOW_EVENT_MEANS:
        values[name] = [summary.event_means.get(name)]
    return _metric_table(values, 1)


def _metric_table(values: Mapping[str, Any], n: int) -> pa.Table:
    """``n`` rows of the metrics file: the columns given, NULL in the others."""
    out = []
    for c in METRICS_COLUMNS:
        value = values.get(c.name)
        if value is None:
            out.append(pa.nulls(n, c.type))
        elif isinstance(value, pa.Array | pa.ChunkedArray):
            out.append(value.cast(c.type))
        else:
            out.append(pa.array(value, c.type))
    return pa.Table.from_arrays(out, schema=schema_of(METRICS_COLUMNS))


def _write_dictionary(out: Path, files: Mapping[str, TableFile]) -> Path:
    """``data_dictionary.csv``: every column of the files written (CSV whatever the format:
    it is read by people)."""
    by_file = {name: TIDY_FILES[name.split(".")[0]] for name in files}
    path = out / DICTIONARY_FILE
    with TableFile(path, DICTIONARY_SCHEMA, "csv") as dictionary:
        dictionary.write(dictionary_rows(by_file))
    return path
