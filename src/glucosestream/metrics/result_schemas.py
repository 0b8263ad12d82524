"""Arrow schemas of the per-period results tables (``metrics.period_tables`` fills them). PURE.

Kept apart from ``period_tables`` so the lake can import them without loading the compiled kernels.
The lead creates the Iceberg tables ``results.period_metrics``, ``results.episodes`` and
``results.agp_profile`` from ``PERIOD_METRICS_SCHEMA``, ``EPISODES_SCHEMA`` and
``AGP_PROFILE_SCHEMA``. Column meanings: docs/metrics.md ("Per-period results"). A period's
insulin and carbohydrate columns (``PERIOD_EVENT_FIELDS``: means per day where known, and the
days known; ``metrics.event_totals.period_event_totals``, docs/metrics.md "Insulin and
carbohydrate") come last, after the run columns, as a lake that gains them by schema evolution
has them.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from glucosestream.metrics.spec import BY_NAME, CONSENSUS, ResultType
from glucosestream.metrics.thresholds import AGP_PERCENTILES

__all__ = [
    "AGP_PROFILE_SCHEMA",
    "EPISODES_SCHEMA",
    "EPISODE_KINDS",
    "LOCAL_TIME_COLUMNS",
    "PERIOD_EVENT_COLUMNS",
    "PERIOD_EVENT_FIELDS",
    "PERIOD_METRICS_SCHEMA",
    "metric_field",
]

_KEYS: Final = (
    pa.field("patient_key", pa.string(), nullable=False),
    pa.field("period_start", pa.date32(), nullable=False),
    pa.field("period_end", pa.date32(), nullable=False),
)
_RUN: Final = (
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("computed_at", pa.timestamp("us", tz="UTC"), nullable=False),
)
# The column type of each spec result type in the results table.
_ARROW_TYPES: Final[dict[ResultType, pa.DataType]] = {
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "local_time": pa.timestamp("s"),
}
LOCAL_TIME_COLUMNS: Final = {"start_time": "first_reading_local", "end_time": "last_reading_local"}


def metric_field(name: str) -> pa.Field:
    """The results-table column of metric ``name``: typed by its spec row (local times renamed,
    as they are wall-clock timestamps there, not the calculator's text)."""
    return pa.field(LOCAL_TIME_COLUMNS.get(name, name), _ARROW_TYPES[BY_NAME[name].result])


PERIOD_EVENT_FIELDS: Final = (
    pa.field("bolus_u_per_day", pa.float64()),
    pa.field("basal_u_per_day", pa.float64()),
    pa.field("insulin_total_u_per_day", pa.float64()),
    pa.field("carbs_g_per_day", pa.float64()),
    pa.field("boluses_per_day", pa.float64()),
    pa.field("automated_pct", pa.float64()),
    pa.field("insulin_days", pa.int32()),  # days bolus_u is known
    pa.field("basal_days", pa.int32()),  # days basal_u (and insulin_total_u) is known
    pa.field("carbs_days", pa.int32()),
    pa.field("automated_days", pa.int32()),
)
PERIOD_EVENT_COLUMNS: Final = tuple(f.name for f in PERIOD_EVENT_FIELDS)
PERIOD_METRICS_SCHEMA: Final = pa.schema(
    [
        *_KEYS,
        *(metric_field(n) for n in CONSENSUS),
        pa.field("dt0_min", pa.int32()),
        *_RUN,
        *PERIOD_EVENT_FIELDS,
    ]
)
EPISODES_SCHEMA: Final = pa.schema(
    [
        *_KEYS,
        pa.field("type", pa.string(), nullable=False),  # hypo | hyper
        pa.field("level", pa.string(), nullable=False),  # lv1 | lv2 | extended
        pa.field("start_local", pa.timestamp("s"), nullable=False),  # first grid point beyond
        pa.field("end_local", pa.timestamp("s"), nullable=False),  # first point of the recovery
        pa.field("duration_min", pa.int32(), nullable=False),
        pa.field("mean_mg_dl", pa.float64(), nullable=False),
        pa.field("min_mg_dl", pa.float64(), nullable=False),
        pa.field("max_mg_dl", pa.float64(), nullable=False),
        *_RUN,
    ]
)
AGP_PROFILE_SCHEMA: Final = pa.schema(
    [
        *_KEYS,
        pa.field("minute_of_day", pa.int16(), nullable=False),  # dt0, 2 dt0, ..., 1440
        *(pa.field(f"p{int(p):02d}_mg_dl", pa.float64()) for p in AGP_PERCENTILES),
        *_RUN,
    ]
)
EPISODE_KINDS: Final = (
    ("hypo", "lv1"), ("hypo", "lv2"), ("hypo", "extended"),
    ("hyper", "lv1"), ("hyper", "lv2"), ("hyper", "extended"),
)  # fmt: skip
