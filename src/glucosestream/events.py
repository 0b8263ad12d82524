"""The canonical event: what happened beside the glucose trace (insulin, carbs, exercise, device
events, finger-sticks, ketones, notes). One Arrow schema, its kinds and its limits. PURE.

Every stage after parsing speaks this schema, as it speaks ``readings.READING_SCHEMA`` for
glucose. An event is one row: who (``patient_key``, ``device_id``: the same keyed pseudonyms as
readings), where from (``source``), when (``ts`` in UTC, ``tz`` the device's IANA zone, which
decides the local day), what (``kind`` and ``subtype``) and how much, in the columns its kind
uses (the others are NULL):

    kind      subtype                                   amounts
    bolus     normal, extended, automatic               units (delivered), duration_min (extended)
    basal     scheduled, temporary, automated,          rate_u_h, duration_min, units (delivered
              suspended, injection                      when known; an injection: its units)
    carbs     meal, correction (rescue carbs)           carbs_g
    exercise  (activity name, if any)                   duration_min, intensity (low/medium/high)
    device    sensor_start, sensor_stop, site_change,   duration_min (a suspension, when known)
              pump_suspend, pump_resume, cartridge_change
    smbg      (none)                                    glucose_mg_dl (finger-stick; original
                                                        value and unit kept as for readings)
    ketone    blood, urine                              ketone_mmol_l
    note      (none)                                    note (free text; kept only when the
                                                        user opts in, else the row is dropped)

An insulin injection by pen is a ``bolus`` (rapid-acting) or ``basal`` ``injection``
(long-acting). A basal row is a segment: the rate from ``ts`` for ``duration_min``; ``units`` is
what that segment delivered (rate x hours) when the source says or implies it. ``suspended`` is
a basal segment at rate 0.

Two events are the same event when (patient_key, device_id, kind, subtype, ts, amount) agree,
where ``amount`` is ``EVENT_AMOUNT``: the first non-NULL of the kind's amount columns, and a
NULL subtype is the same as no subtype. The subtype is part of it so that a dual-wave bolus split
evenly (2 U now and 2 U extended, one instant) stays two events.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import pyarrow as pa

__all__ = [
    "BASAL_SUBTYPES",
    "BOLUS_SUBTYPES",
    "CARBS_SUBTYPES",
    "DAILY_EVENT_COLUMNS",
    "DEVICE_SUBTYPES",
    "EVENT_AMOUNT",
    "EVENT_KEY",
    "EVENT_KINDS",
    "EVENT_SCHEMA",
    "INTENSITIES",
    "KETONE_SUBTYPES",
    "KIND_SUBTYPES",
    "MAX_BASAL_RATE_U_H",
    "MAX_BOLUS_U",
    "MAX_CARBS_G",
    "MAX_DURATION_MIN",
    "MAX_KETONE_MMOL_L",
    "MAX_NOTE_CHARS",
    "MAX_SEGMENT_U",
    "NOTE_SUBTYPES",
]

EVENT_KINDS: Final = ("bolus", "basal", "carbs", "exercise", "device", "smbg", "ketone", "note")
BOLUS_SUBTYPES: Final = ("normal", "extended", "automatic")
BASAL_SUBTYPES: Final = ("scheduled", "temporary", "automated", "suspended", "injection")
CARBS_SUBTYPES: Final = ("meal", "correction")
DEVICE_SUBTYPES: Final = (
    "sensor_start",
    "sensor_stop",
    "site_change",
    "pump_suspend",
    "pump_resume",
    "cartridge_change",
)
KETONE_SUBTYPES: Final = ("blood", "urine")
INTENSITIES: Final = ("low", "medium", "high")
# The subtypes each kind may have (NULL is always allowed); a kind not named here (exercise,
# note) takes a free name: an activity, a note's topic.
KIND_SUBTYPES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "bolus": BOLUS_SUBTYPES,
        "basal": BASAL_SUBTYPES,
        "carbs": CARBS_SUBTYPES,
        "device": DEVICE_SUBTYPES,
        "ketone": KETONE_SUBTYPES,
        "smbg": (),
    }
)
# A note's subtypes of a fixed vocabulary (Dexcom Clarity's Health events), which hold no free
# text: kept without ``ingest.keep_notes``, unlike any other name a note or exercise carries.
NOTE_SUBTYPES: Final = ("illness", "stress", "high_symptoms", "low_symptoms", "cycle", "alcohol")

# Plausible amounts (ingest quarantines a row beyond them; the quality gate checks the same).
# A single bolus above 100 U or a basal rate above 35 U/h is beyond every insulin pump's setting
# (Medtronic 780G: bolus up to 75 U, basal up to 35 U/h; Omnipod 5: 30 U, 30 U/h; Tandem t:slim
# X2: 25 U, 15 U/h) and beyond any pen's single dial (80 U); it is a unit or parsing error.
MAX_BOLUS_U: Final = 100.0
MAX_BASAL_RATE_U_H: Final = 35.0
# More carbohydrate than anyone eats at once (a 1,000 g meal is ~4,000 kcal of carbs alone).
MAX_CARBS_G: Final = 1000.0
# A segment, an extended bolus or an exercise bout longer than a day is not one event.
MAX_DURATION_MIN: Final = 24 * 60.0
# What a basal segment of the longest duration at the highest rate delivers.
MAX_SEGMENT_U: Final = MAX_BASAL_RATE_U_H * MAX_DURATION_MIN / 60.0
# Blood beta-hydroxybutyrate above ~25 mmol/L is not survivable; meters read up to 8.0.
MAX_KETONE_MMOL_L: Final = 30.0
# A kept note's length; longer text is cut at this many characters.
MAX_NOTE_CHARS: Final = 1000

EVENT_SCHEMA: Final = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("tz", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("subtype", pa.string(), nullable=True),
        pa.field("units", pa.float64(), nullable=True),
        pa.field("rate_u_h", pa.float64(), nullable=True),
        pa.field("duration_min", pa.float64(), nullable=True),
        pa.field("carbs_g", pa.float64(), nullable=True),
        pa.field("glucose_mg_dl", pa.float64(), nullable=True),
        pa.field("original_value", pa.float64(), nullable=True),
        pa.field("original_unit", pa.string(), nullable=True),
        pa.field("ketone_mmol_l", pa.float64(), nullable=True),
        pa.field("intensity", pa.string(), nullable=True),
        pa.field("note", pa.string(), nullable=True),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

# The amount that, with the key columns, makes an event the same event (first non-NULL, in order).
EVENT_AMOUNT: Final = (
    "units",
    "carbs_g",
    "glucose_mg_dl",
    "ketone_mmol_l",
    "rate_u_h",
    "duration_min",
)
EVENT_KEY: Final = ("patient_key", "device_id", "kind", "subtype", "ts")
# The daily metrics' columns summed from events, by their contract names (other tools read
# them): ``metrics.daily`` computes them, the quality gate checks them, exports write them.
DAILY_EVENT_COLUMNS: Final = (
    "bolus_u",
    "basal_u",
    "insulin_total_u",
    "carbs_g",
    "boluses",
    "automated_pct",
)
