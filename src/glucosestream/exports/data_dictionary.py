"""The columns of the tidy export, each defined once: name, Arrow type, unit, definition and
source. The tidy files' schemas and their data dictionary are both made from these rows, so the
dictionary names every column written, with the type it is written in. PURE.

Metric columns take their unit and source from the metric spec (``metrics.spec``: one row per
metric); their definitions are the catalog's (docs/metrics.md, "The catalog"), in short. The
insulin and carbohydrate columns take their names and types from the results tables
(``metrics.daily.DAILY_METRICS_SCHEMA``, ``metrics.result_schemas.PERIOD_EVENT_FIELDS``: the
names are a contract) and their definitions from docs/metrics.md ("Insulin and carbohydrate").
The events file's columns are those of ``events.EVENT_SCHEMA`` an analyst needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa

from glucosestream.events import EVENT_SCHEMA
from glucosestream.metrics.daily import DAILY_METRICS_SCHEMA
from glucosestream.metrics.result_schemas import PERIOD_EVENT_FIELDS
from glucosestream.metrics.spec import BY_NAME
from glucosestream.readings import MG_DL_PER_MMOL_L, ReadingFlag

__all__ = [
    "DICTIONARY_SCHEMA",
    "EVENTS_COLUMNS",
    "METRICS_COLUMNS",
    "METRIC_NAMES",
    "READINGS_COLUMNS",
    "TIDY_FILES",
    "ColumnDoc",
    "dictionary_markdown",
    "dictionary_rows",
    "schema_of",
]


@dataclass(frozen=True, slots=True)
class ColumnDoc:
    """One column of a tidy file."""

    name: str
    type: pa.DataType
    unit: str
    definition: str
    source: str


_ID_DOC: Final = (
    "The patient: the id as ingested (the patient key, 32 hex digits, when exported with "
    "--pseudonymous)."
)
_LAKE: Final = "curated.readings (the published run)"
_FLAG_DOCS: Final = {  # one boolean column per reading flag (readings.ReadingFlag)
    ReadingFlag.SENSOR_LOW: "The device reported Low: the true value is at or below glucose.",
    ReadingFlag.SENSOR_HIGH: "The device reported High: the true value is at or above glucose.",
    ReadingFlag.CALIBRATION: "A fingerstick calibration entry, not a sensor reading.",
    ReadingFlag.SCAN: "An on-demand scan (LibreView) rather than a historic reading.",
}

READINGS_COLUMNS: Final[tuple[ColumnDoc, ...]] = (
    ColumnDoc("patient_id", pa.string(), "", _ID_DOC, "metadata store: patients.external_id"),
    ColumnDoc(
        "device_id", pa.string(), "", "The device pseudonym (keyed hash of its serial, "
        "never the serial).", _LAKE,
    ),
    ColumnDoc("source", pa.string(), "", "The format the reading arrived in.", _LAKE),
    ColumnDoc(
        "time_utc", pa.timestamp("us", tz="UTC"), "UTC", "The instant of the reading, in UTC "
        "(CSV: YYYY-MM-DD HH:MM:SS).", _LAKE,
    ),
    ColumnDoc(
        "time_local", pa.timestamp("us"), "local wall clock", "The same instant on the "
        "patient's clock in zone tz (CSV: YYYY-MM-DD HH:MM:SS).", "localclock.wall_clock_times",
    ),
    ColumnDoc("local_date", pa.date32(), "date", "The patient's local calendar day.",
              "localclock.local_days"),
    ColumnDoc("tz", pa.string(), "IANA zone", "The zone the device was in.", _LAKE),
    ColumnDoc("glucose_mg_dl", pa.float64(), "mg/dL", "Sensor glucose.", _LAKE),
    ColumnDoc(
        "glucose_mmol_l", pa.float64(), "mmol/L",
        f"Sensor glucose: glucose_mg_dl / {MG_DL_PER_MMOL_L} (glucose 180.156 g/mol).",
        "readings.MG_DL_PER_MMOL_L",
    ),
    ColumnDoc("original_value", pa.float64(), "original_unit", "The value as the source sent "
              "it.", _LAKE),
    ColumnDoc("original_unit", pa.string(), "", "The unit the source sent (mg/dL or mmol/L).",
              _LAKE),
    *(
        ColumnDoc(str(flag.name).lower(), pa.bool_(), "flag", doc, "readings.ReadingFlag")
        for flag, doc in _FLAG_DOCS.items()
    ),
    ColumnDoc("direction", pa.string(), "", "The trend arrow the uploader sent (a Nightscout "
              "direction), empty when none.", _LAKE),
    ColumnDoc("rate_mg_dl_min", pa.float64(), "mg/dL/min", "The rate of change the uploader "
              "sent, empty when none.", _LAKE),
)  # fmt: skip

_DAILY: Final = "results.daily_metrics (one row per patient and local day)"
_WINDOW: Final = "published.window_summary (the window's complete local days)"
_METRIC_DEFINITIONS: Final = {  # metric (metrics.spec name) -> what it is
    "readings": "Sensor readings counted.",
    "days": "Span from the first to the last reading, in days (window rows only).",
    "active_pct": "Sensor active: distinct reading times over those the span holds at the "
    "sampling interval, x 100, at most 100.",
    "mean_mg_dl": "Mean sensor glucose.",
    "sd_mg_dl": "Standard deviation of sensor glucose.",
    "cv_pct": "Coefficient of variation: sd / mean x 100.",
    "gmi_pct": "Glucose management indicator: 3.31 + 0.02392 x mean mg/dL.",
    "pct_below_54": "Time below range, very low: readings < 54 mg/dL.",
    "pct_54_69": "Time below range, low: 54-69 mg/dL (window rows only).",
    "pct_below_70": "Time below range: readings < 70 mg/dL.",
    "pct_70_180": "Time in range: 70-180 mg/dL.",
    "pct_181_250": "Time above range, high: 181-250 mg/dL (window rows only).",
    "pct_above_180": "Time above range: readings > 180 mg/dL.",
    "pct_above_250": "Time above range, very high: readings > 250 mg/dL.",
    "gri": "Glycaemia risk index (window rows only).",
    "sufficient_14d": "A span of at least 14 days with the sensor active 70 % or more "
    "(window rows only).",
}
METRIC_NAMES: Final = tuple(_METRIC_DEFINITIONS)  # the metrics file's metric columns, in order
_METRIC_TYPES: Final[dict[str, pa.DataType]] = {
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
}


def _metric(name: str) -> ColumnDoc:
    spec = BY_NAME[name]
    source = f"day rows: results.daily_metrics; window rows: window_summary; {spec.source}"
    return ColumnDoc(name, _METRIC_TYPES[spec.result], spec.unit, _METRIC_DEFINITIONS[name], source)


_TOTALS: Final = (
    "results.daily_metrics; metrics.event_totals (docs/metrics.md, Insulin and carbohydrate)"
)
_WINDOW_ONLY: Final = " (window rows only: published.window_summary's event_means)"
# Daily insulin and carbohydrate columns (metrics.daily.EVENT_COLUMNS; day rows, and
# automated_pct on window rows too): column -> (unit, what it is).
_DAY_EVENT_DOCS: Final = {
    "bolus_u": (
        "U",
        "Insulin delivered by boluses that day (an extended bolus spread over its "
        "duration, cut at midnight); 0 on a day with other insulin records and no "
        "bolus; empty on a day with no insulin record.",
    ),
    "basal_u": (
        "U",
        "Basal insulin delivered that day (pump rate x hours of known delivery, "
        "plus long-acting injections); empty where the delivered basal is not known.",
    ),
    "insulin_total_u": ("U", "bolus_u + basal_u; empty when basal_u is."),
    "carbs_g": ("g", "Carbohydrate recorded that day (meals and corrections); empty when none."),
    "boluses": (
        "count",
        "Boluses the person gave that day (automatic boluses not counted); empty with bolus_u.",
    ),
    "automated_pct": (
        "%",
        "Share of the known pump basal time in automated delivery; empty "
        "without pump basal records. Window rows: the mean over the window's days where "
        "it is known (published.window_summary's event_means).",
    ),
}
# The period means (metrics.result_schemas.PERIOD_EVENT_FIELDS) other than automated_pct.
_PERIOD_EVENT_DOCS: Final = {
    "bolus_u_per_day": ("U/day", "Mean bolus_u over the window's days where it is known"),
    "basal_u_per_day": ("U/day", "Mean basal_u over the window's days where it is known"),
    "insulin_total_u_per_day": ("U/day", "Mean insulin_total_u over the days where it is known"),
    "carbs_g_per_day": ("g/day", "Mean carbs_g over the window's days where it is known"),
    "boluses_per_day": ("1/day", "Mean boluses over the window's days where it is known"),
    "insulin_days": ("days", "Days of the window with bolus_u known"),
    "basal_days": ("days", "Days of the window with basal_u (and insulin_total_u) known"),
    "carbs_days": ("days", "Days of the window with carbs_g known"),
    "automated_days": ("days", "Days of the window with automated_pct known"),
}
_PERIOD_TYPES: Final = {f.name: f.type for f in PERIOD_EVENT_FIELDS}
EVENT_METRIC_COLUMNS: Final[tuple[ColumnDoc, ...]] = (
    *(
        ColumnDoc(name, DAILY_METRICS_SCHEMA.field(name).type, unit, doc, _TOTALS)
        for name, (unit, doc) in _DAY_EVENT_DOCS.items()
    ),
    *(
        ColumnDoc(name, _PERIOD_TYPES[name], unit, doc + _WINDOW_ONLY + ".",
                  "results.period_metrics; metrics.event_totals.period_event_totals")
        for name, (unit, doc) in _PERIOD_EVENT_DOCS.items()
    ),
)  # fmt: skip

METRICS_COLUMNS: Final[tuple[ColumnDoc, ...]] = (
    ColumnDoc("patient_id", pa.string(), "", _ID_DOC, "metadata store: patients.external_id"),
    ColumnDoc("row_kind", pa.string(), "", "day: one local day of the daily metrics; window: "
              "the summary of the export's window.", "exports.tidy"),
    ColumnDoc("period_start", pa.date32(), "date", "First local day of the row (a day row: "
              "its day).", f"{_DAILY}; {_WINDOW}"),
    ColumnDoc("period_end", pa.date32(), "date", "Last local day of the row.",
              f"{_DAILY}; {_WINDOW}"),
    ColumnDoc("complete", pa.bool_(), "flag", "false for the newest day when its data does not "
              "reach its last 20 minutes (partial: not counted in the window).",
              "metrics.report_window"),
    ColumnDoc("audited", pa.bool_(), "flag", "true when the values are a published run's "
              "(every day row; a window row only when it is one closed fixed fortnight).",
              _WINDOW),
    *(_metric(name) for name in METRIC_NAMES),
    *EVENT_METRIC_COLUMNS,
)  # fmt: skip

_EVENTS: Final = "curated.events (the published run)"
_EVENT_TYPES: Final = {f.name: f.type for f in EVENT_SCHEMA}
# The events file's columns taken as the lake holds them: column -> (unit, what it is).
_EVENT_DOCS: Final = {
    "device_id": ("", "The device pseudonym (keyed hash of its serial, never the serial)."),
    "source": ("", "The format the event arrived in."),
    "tz": ("IANA zone", "The zone the device was in."),
    "kind": ("", "bolus, basal, carbs, exercise, device, smbg, ketone or note (events.py)."),
    "subtype": (
        "",
        "bolus: normal|extended|automatic; basal: scheduled|temporary|automated|"
        "suspended|injection; carbs: meal|correction; device: sensor_start|sensor_stop|"
        "site_change|pump_suspend|pump_resume|cartridge_change; ketone: blood|urine; "
        "note: a Clarity Health subtype; exercise: the activity, if named.",
    ),
    "units": (
        "U",
        "Insulin: a bolus's units delivered; a basal segment's delivered units when "
        "known; an injection's units.",
    ),
    "rate_u_h": ("U/h", "A basal segment's rate (0 while suspended)."),
    "duration_min": (
        "min",
        "A basal segment's, an extended bolus's, an exercise bout's or a "
        "suspension's length, when known.",
    ),
    "carbs_g": ("g", "Carbohydrate of a carbs event."),
    "glucose_mg_dl": ("mg/dL", "A finger-stick (smbg) glucose."),
    "ketone_mmol_l": ("mmol/L", "A ketone reading."),
    "intensity": ("", "An exercise bout's intensity: low, medium or high."),
    "note": (
        "",
        "A note's free text: present only when ingest kept notes "
        "(GLUCOSESTREAM_INGEST__KEEP_NOTES) and the export is not --pseudonymous.",
    ),
}


def _event_column(name: str) -> ColumnDoc:
    unit, doc = _EVENT_DOCS[name]
    return ColumnDoc(name, _EVENT_TYPES[name], unit, doc, _EVENTS)


EVENTS_COLUMNS: Final[tuple[ColumnDoc, ...]] = (
    ColumnDoc("patient_id", pa.string(), "", _ID_DOC, "metadata store: patients.external_id"),
    *(_event_column(name) for name in ("device_id", "source")),
    ColumnDoc("time_utc", pa.timestamp("us", tz="UTC"), "UTC", "The instant of the event (a "
              "segment's or a bout's start), in UTC (CSV: YYYY-MM-DD HH:MM:SS).", _EVENTS),
    ColumnDoc("time_local", pa.timestamp("us"), "local wall clock", "The same instant on the "
              "patient's clock in zone tz (CSV: YYYY-MM-DD HH:MM:SS).",
              "localclock.wall_clock_times"),
    ColumnDoc("local_date", pa.date32(), "date", "The patient's local calendar day of "
              "time_local (a basal segment or extended bolus may run into the next).",
              "localclock.local_days"),
    *(_event_column(name) for name in _EVENT_DOCS if name not in ("device_id", "source")),
)  # fmt: skip
# Each tidy file's stem and its columns, in the order the files are written.
TIDY_FILES: Final = {
    "readings": READINGS_COLUMNS,
    "events": EVENTS_COLUMNS,
    "metrics": METRICS_COLUMNS,
}

DICTIONARY_SCHEMA: Final = pa.schema(
    [(name, pa.string()) for name in ("file", "column", "type", "unit", "definition", "source")]
)


def schema_of(columns: Sequence[ColumnDoc]) -> pa.Schema:
    """The Arrow schema of a tidy file: its columns in order."""
    return pa.schema([pa.field(c.name, c.type) for c in columns])


def dictionary_rows(files: Mapping[str, Sequence[ColumnDoc]]) -> pa.Table:
    """The data dictionary: one row per column of each file (file name -> its columns)."""
    rows = [
        {
            "file": file,
            "column": c.name,
            "type": str(c.type),
            "unit": c.unit,
            "definition": c.definition,
            "source": c.source,
        }
        for file, docs in files.items()
        for c in docs
    ]
    return pa.Table.from_pylist(rows, schema=DICTIONARY_SCHEMA)


def dictionary_markdown() -> str:
    """The data dictionary as the Markdown tables of docs/exports.md (a cog block calls it)."""
    lines = []
    for file, docs in TIDY_FILES.items():
        lines += [f"`{file}.csv` / `{file}.parquet`:", ""]
        lines += ["| column | type | unit | definition | source |", "|---|---|---|---|---|"]
        lines += [
            f"| `{c.name}` | {c.type} | {c.unit} | {c.definition} | {c.source} |" for c in docs
        ]
        lines.append("")
    return "\n".join(lines)
