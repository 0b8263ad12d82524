"""The OMOP CDM 5.4 export: PERSON, OBSERVATION_PERIOD, MEASUREMENT, DEVICE_EXPOSURE,
DRUG_EXPOSURE and CDM_SOURCE of the patients asked for, one file per table (``<table>.csv`` or
``.parquet``) in the folder ``out``, columns in the CDM's order and types (``exports.omop_tables``).

- PERSON: one per patient; ``person_id`` 1, 2, ... in the order of the keys given (stable for one
  export, not across exports); ``person_source_value`` the id exported (as ingested, or the key);
  gender, race and ethnicity 0 ("no matching concept": the lake holds none); ``year_of_birth``,
  NOT NULL in the CDM but unknown here, 0 (not a year: a site that knows it fills it in).
- MEASUREMENT: one row per sensor reading of the window (LOINC 99504-3, mg/dL; a fingerstick
  calibration entry is not a CGM reading and is left out, counted in the notes), then one row
  per summary value of the patient's window (``published.window_summary``: mean glucose, the
  five times in ranges, GMI, CV, days of wear, sensor active %), dated the window's last day,
  ``value_source_value`` the window as ``start/end``. Concept ids: ``exports.omop_concepts``.
- DEVICE_EXPOSURE: one row per sensor session (``pipeline.sensor_wear``, published as
  ``sessions``) that overlaps the exported readings; ``device_source_value`` the device
  pseudonym, never a serial.
- DRUG_EXPOSURE: one row per insulin dose of the window's local days (a bolus or a long-acting
  injection among the published events, ``exports.omop_insulin``): ``quantity`` its units,
  ``drug_concept_id`` 0 and ``drug_source_value`` its use (the lake names no insulin product).
- OBSERVATION_PERIOD: one per person, from its first to its last date in the tables above.
- CDM_SOURCE: one row.

Dates and datetimes are UTC (the CDM names no zone; the tidy export has local times), except a
summary's date, which is the last local day of its window.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.clock import utc_now
from glucosestream.config import Settings
from glucosestream.errors import ConfigError, NotFound
from glucosestream.exports import ExportReport, export_report
from glucosestream.exports.omop_concepts import (
    CDM_VERSION,
    CDM_VERSION_CONCEPT_ID,
    DEVICE_CONCEPT_ID,
    DEVICE_TYPE_CONCEPT_ID,
    DRUG_CONCEPT_ID,
    DRUG_TYPE_CONCEPT_ID,
    NO_MATCHING_CONCEPT,
    PERIOD_TYPE_CONCEPT_ID,
    READING_CODE,
    READING_TYPE_CONCEPT_ID,
    SUMMARY_MEASUREMENTS,
    SUMMARY_TYPE_CONCEPT_ID,
    UNIT_CONCEPT_IDS,
)
from glucosestream.exports.omop_insulin import DOSE_UNIT, insulin_doses
from glucosestream.exports.omop_tables import INT32_MAX, columns, schema
from glucosestream.exports.table_files import TableFile, TableFormat, output_folder
from glucosestream.exports.window_events import window_events
from glucosestream.exports.window_readings import Window, exported_ids, readings_by_patient
from glucosestream.published import PublishedRun, window_summary
from glucosestream.readings import ReadingFlag

__all__ = ["OMOP_TABLES", "write_omop"]

log = logging.getLogger(__name__)

OMOP_TABLES: Final = (
    "person",
    "observation_period",
    "measurement",
    "device_exposure",
    "drug_exposure",
)
_SOURCE_NAME: Final = "GlucoseStream"


def write_omop(
    run: PublishedRun,
    patient_keys: list[str],
    start: dt.date | None,
    end: dt.date | None,
    out: Path,
    *,
    fmt: Literal["csv", "parquet"],
    settings: Settings,
    identities: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> ExportReport:
    """Write the OMOP CDM 5.4 tables of ``patient_keys``' published data of local days
    ``start``..``end`` (each optional) into the folder ``out``. ``identities``: each key's
    id in the export (default: the id as ingested)."""
    now = now or utc_now()
    ids = exported_ids(settings, patient_keys, identities)
    _check_fits("person_source_value", ids.values())
    output_folder(out)
    started = time.perf_counter()
    writer = _OmopWriter(run, out, fmt, now, several=len(patient_keys) > 1)
    try:
        for key, readings in readings_by_patient(run, patient_keys, (start, end)):
            writer.add_patient(key, ids[key], readings, (start, end))
        writer.finish(start, end)
    finally:
        writer.close()
    log.info(
        "export format=omop patients=%d measurements=%d duration_ms=%d",
        writer.files["person"].rows,
        writer.files["measurement"].rows,
        (time.perf_counter() - started) * 1000,
    )
    rows = {name: f.rows for name, f in writer.files.items()}
    return export_report([f.path for f in writer.files.values()], rows, writer.notes)


def _check_fits(column: str, values: Iterable[str]) -> None:
    """Refuse a PERSON text longer than its CDM column (``varchar(n)``), naming the column."""
    limit = next(c.max_chars for c in columns("person") if c.name == column)
    for value in values:
        if limit is not None and len(value) > limit:
            raise ConfigError(
                f"a patient id of {len(value)} characters does not fit OMOP's {column} "
                f"(varchar({limit})); export with --pseudonymous (the patient key, 32 characters)"
            )


class _OmopWriter:
    """The six tables' files, the ids handed out so far, and the notes for the report."""

    def __init__(
        self, run: PublishedRun, out: Path, fmt: TableFormat, now: dt.datetime, *, several: bool
    ) -> None:
        self.run, self.now, self.several = run, now, several
        suffix = ".csv" if fmt == "csv" else ".parquet"
        self.files = {
            name: TableFile(out / f"{name}{suffix}", schema(name), fmt)
            for name in (*OMOP_TABLES, "cdm_source")
        }
        self.person_id = 0
        self.measurement_id = 0
        self.exposure_id = 0
        self.drug_exposure_id = 0
        self.calibrations = 0
        self.notes: list[str] = []
        self._sessions: pa.Table | None = None

    def add_patient(self, key: str, identity: str, readings: pa.Table, window: Window) -> None:
        """The patient's rows of every table (none when it has no sensor reading in the
        window)."""
        calibration = pc.not_equal(
            pc.bit_wise_and(readings["flags"], int(ReadingFlag.CALIBRATION)), 0
        )
        self.calibrations += pc.sum(calibration.cast(pa.int64())).as_py() or 0
        sensor = readings.filter(pc.invert(calibration))
        if sensor.num_rows == 0:
            self.notes.append(f"{identity}: no published sensor readings in the window")
            return
        self.person_id += 1
        measurements = [self._reading_rows(sensor), self._summary_rows(key, identity, window)]
        exposures = self._exposure_rows(key, readings)
        drugs = self._drug_rows(window_events(self.run, key, window))
        tables = [t for t in measurements if t.num_rows]
        for table in tables:
            self.files["measurement"].write(table)
        self.files["device_exposure"].write(exposures)
        self.files["drug_exposure"].write(drugs)
        self.files["observation_period"].write(self._period_row(tables, exposures, drugs))
        self.files["person"].write(_person_row(self.person_id, identity))

    def finish(self, start: dt.date | None, end: dt.date | None) -> None:
        """The CDM_SOURCE row, and the notes on what was left out."""
        self.files["cdm_source"].write(self._source_row(start, end))
        if self.calibrations:
            self.notes.append(
                f"{self.calibrations} fingerstick calibration entries not written to MEASUREMENT "
                "(not CGM readings; the tidy export has them)"
            )

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def _ids(self, n: int, attribute: str) -> pa.Array:
        first = getattr(self, attribute) + 1
        if first + n - 1 > INT32_MAX:
            raise ConfigError(
                f"over {INT32_MAX:,} rows do not fit OMOP's integer ids; export fewer patients "
                "or a shorter window (--from/--to) at a time"
            )
        setattr(self, attribute, first + n - 1)
        return pa.array(range(first, first + n), pa.int32())

    def _reading_rows(self, sensor: pa.Table) -> pa.Table:
        n = sensor.num_rows
        at = sensor["ts"].cast(pa.timestamp("us"))  # UTC, without its zone
        return _table(
            "measurement",
            n,
            measurement_id=self._ids(n, "measurement_id"),
            person_id=self.person_id,
            measurement_concept_id=NO_MATCHING_CONCEPT,
            measurement_date=at.cast(pa.date32()),
            measurement_datetime=at,
            measurement_type_concept_id=READING_TYPE_CONCEPT_ID,
            value_as_number=sensor["glucose_mg_dl"],
            unit_concept_id=UNIT_CONCEPT_IDS["mg/dL"],
            measurement_source_value=READING_CODE.code,
            measurement_source_concept_id=NO_MATCHING_CONCEPT,
            unit_source_value="mg/dL",
            value_source_value=_value_as_sent(sensor),
        )

    def _summary_rows(self, key: str, identity: str, window: Window) -> pa.Table:
        """The summary values of the patient's window (none when it has no complete day)."""
        try:
            summary = window_summary(self.run, key, *window, now=self.now)
        except NotFound as err:
            self.notes.append(f"{identity}: no summary ({err})")
            return _table("measurement", 0)
        rows = [
            (m, float(value))
            for m in SUMMARY_MEASUREMENTS
            if (value := summary.metrics.get(m.metric)) is not None
        ]
        units = [m.code.unit or "" for m, _ in rows]
        n = len(rows)
        return _table(
            "measurement",
            n,
            measurement_id=self._ids(n, "measurement_id"),
            person_id=self.person_id,
            measurement_concept_id=NO_MATCHING_CONCEPT,
            measurement_date=summary.end,
            measurement_type_concept_id=SUMMARY_TYPE_CONCEPT_ID,
            value_as_number=pa.array([v for _, v in rows], pa.float64()),
            unit_concept_id=pa.array([UNIT_CONCEPT_IDS.get(u, 0) for u in units], pa.int32()),
            measurement_source_value=pa.array([m.code.code for m, _ in rows], pa.string()),
            measurement_source_concept_id=NO_MATCHING_CONCEPT,
            unit_source_value=pa.array(units, pa.string()),
            value_source_value=f"{summary.start.isoformat()}/{summary.end.isoformat()}",
        )

    def _exposure_rows(self, key: str, readings: pa.Table) -> pa.Table:
        """The patient's sensor sessions that overlap its exported readings."""
        sessions = self._sessions_of(key)
        first, last = pc.min(readings["ts"]), pc.max(readings["ts"])
        sessions = sessions.filter(
            pc.and_(
                pc.greater_equal(sessions["session_end"], first),
                pc.less_equal(sessions["session_start"], last),
            )
        ).sort_by([("session_start", "ascending"), ("device_id", "ascending")])
        n = sessions.num_rows
        begin = sessions["session_start"].cast(pa.timestamp("us"))
        finish = sessions["session_end"].cast(pa.timestamp("us"))
        return _table(
            "device_exposure",
            n,
            device_exposure_id=self._ids(n, "exposure_id"),
            person_id=self.person_id,
            device_concept_id=DEVICE_CONCEPT_ID,
            device_exposure_start_date=begin.cast(pa.date32()),
            device_exposure_start_datetime=begin,
            device_exposure_end_date=finish.cast(pa.date32()),
            device_exposure_end_datetime=finish,
            device_type_concept_id=DEVICE_TYPE_CONCEPT_ID,
            quantity=1,
            device_source_value=sessions["device_id"],
            device_source_concept_id=NO_MATCHING_CONCEPT,
        )

    def _drug_rows(self, events: pa.Table) -> pa.Table:
        """The patient's insulin doses of the window (``exports.omop_insulin``)."""
        doses = insulin_doses(events)
        n = doses.num_rows
        return _table(
            "drug_exposure",
            n,
            drug_exposure_id=self._ids(n, "drug_exposure_id"),
            person_id=self.person_id,
            drug_concept_id=DRUG_CONCEPT_ID,
            drug_exposure_start_date=doses["start"].cast(pa.date32()),
            drug_exposure_start_datetime=doses["start"],
            drug_exposure_end_date=doses["end"].cast(pa.date32()),
            drug_exposure_end_datetime=doses["end"],
            drug_type_concept_id=DRUG_TYPE_CONCEPT_ID,
            quantity=doses["units"],
            drug_source_value=doses["source_value"],
            drug_source_concept_id=NO_MATCHING_CONCEPT,
            dose_unit_source_value=DOSE_UNIT,
        )

    def _sessions_of(self, key: str) -> pa.Table:
        """The patient's published sessions: the whole table is read once when the export has
        several patients (one scan, not one per patient)."""
        if not self.several:
            return self.run.results("sessions", key)
        if self._sessions is None:
            self._sessions = self.run.results("sessions")
        return self._sessions.filter(pc.equal(self._sessions["patient_key"], key))

    def _period_row(
        self, measurements: Sequence[pa.Table], exposures: pa.Table, drugs: pa.Table
    ) -> pa.Table:
        dates = [t["measurement_date"] for t in measurements]
        dates += [exposures["device_exposure_start_date"], exposures["device_exposure_end_date"]]
        dates += [drugs["drug_exposure_start_date"], drugs["drug_exposure_end_date"]]
        days = pa.chunked_array([c for d in dates for c in d.chunks], pa.date32())
        return _table(
            "observation_period",
            1,
            observation_period_id=self.person_id,
            person_id=self.person_id,
            observation_period_start_date=pc.min(days).as_py(),
            observation_period_end_date=pc.max(days).as_py(),
            period_type_concept_id=PERIOD_TYPE_CONCEPT_ID,
        )

    def _source_row(self, start: dt.date | None, end: dt.date | None) -> pa.Table:
        window = f"local days {start or 'first'} to {end or 'last'}"
        return _table(
            "cdm_source",
            1,
            cdm_source_name=f"{_SOURCE_NAME} export",
            cdm_source_abbreviation=_SOURCE_NAME,
            cdm_holder=_SOURCE_NAME,
            source_description=(
                f"CGM sensor readings, sensor sessions, window summaries and insulin doses of "
                f"published run "
                f"{self.run.run_id}, {window}"
            ),
            cdm_etl_reference=f"glucosestream {importlib.metadata.version('glucosestream')}",
            source_release_date=self.now.date(),
            cdm_release_date=self.now.date(),
            cdm_version=CDM_VERSION,
            cdm_version_concept_id=CDM_VERSION_CONCEPT_ID,
            vocabulary_version="none loaded",
        )


def _person_row(person_id: int, identity: str) -> pa.Table:
    return _table(
        "person",
        1,
        person_id=person_id,
        gender_concept_id=NO_MATCHING_CONCEPT,
        year_of_birth=0,
        race_concept_id=NO_MATCHING_CONCEPT,
        ethnicity_concept_id=NO_MATCHING_CONCEPT,
        person_source_value=identity,
    )


def _value_as_sent(readings: pa.Table) -> pa.ChunkedArray:
    """The value as the source gave it, with its unit; "<=" before a sensor "Low" (the true
    value is at or below it), ">=" before a "High"."""
    value = pc.binary_join_element_wise(
        readings["original_value"].cast(pa.string()), readings["original_unit"], " "
    )
    flags = readings["flags"]
    low = pc.not_equal(pc.bit_wise_and(flags, int(ReadingFlag.SENSOR_LOW)), 0)
    high = pc.not_equal(pc.bit_wise_and(flags, int(ReadingFlag.SENSOR_HIGH)), 0)
    value = pc.if_else(low, pc.binary_join_element_wise("<=", value, ""), value)
    return pc.if_else(high, pc.binary_join_element_wise(">=", value, ""), value)


def _table(name: str, n: int, **values: Any) -> pa.Table:
    """``n`` rows of CDM table ``name``: each column from ``values`` (an array, or one value
    for every row), NULL where not given."""
    out = []
    for field in schema(name):
        value = values.pop(field.name, None)
        if isinstance(value, pa.Array | pa.ChunkedArray):
            out.append(value.cast(field.type))
        else:
            out.append(pa.array([value] * n, field.type))
    if values:
        raise TypeError(f"{name} has no columns {sorted(values)}")
    return pa.Table.from_arrays(out, schema=schema(name))
