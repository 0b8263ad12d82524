"""The canonical reading: one Arrow schema, its units and flags. PURE.

Every stage after parsing speaks this schema. Glucose is stored in mg/dL (float64); a value that
arrived in mmol/L is converted with ``MG_DL_PER_MMOL_L`` and its original value and unit are kept.
``ts`` is the instant in UTC; ``tz`` is the IANA zone the device was in, which decides the
patient's local calendar day.
"""

from __future__ import annotations

import enum
from typing import Final, Literal

import pyarrow as pa

__all__ = [
    "MG_DL_PER_MMOL_L",
    "READING_SCHEMA",
    "ReadingFlag",
    "Unit",
    "mmol_l_to_mg_dl",
]

# Molar mass of glucose 180.156 g/mol: 1 mmol/L = 18.0156 mg/dL (DESIGN.md, canonical reading).
MG_DL_PER_MMOL_L: Final = 18.0156

Unit = Literal["mg/dL", "mmol/L"]


class ReadingFlag(enum.IntFlag):
    """Bit flags stored in ``flags`` (an int32, so every SQL engine can test them)."""

    NONE = 0
    SENSOR_LOW = 1  # the device reported "Low": the true value is at or below glucose_mg_dl
    SENSOR_HIGH = 2  # the device reported "High": the true value is at or above glucose_mg_dl
    CALIBRATION = 4  # a fingerstick calibration entry, not a sensor reading
    SCAN = 8  # an on-demand scan (LibreView) rather than a historic reading


READING_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("glucose_mg_dl", pa.float64(), nullable=False),
        pa.field("original_value", pa.float64(), nullable=False),
        pa.field("original_unit", pa.string(), nullable=False),
        pa.field("flags", pa.int32(), nullable=False),
        pa.field("tz", pa.string(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def mmol_l_to_mg_dl(value_mmol_l: float) -> float:
    """Convert a glucose concentration from mmol/L to mg/dL."""
    return value_mmol_l * MG_DL_PER_MMOL_L
