"""The same sensor arriving twice under two identities: a warning check (PURE: Arrow in, out).

A sensor serial belongs to one patient and its readings to one zone. When the same export is
ingested twice, once as part of a cohort file and once as the device's own export under another
patient id or another ``--tz`` (issue 18: the README's own steps did this), every reading lands
twice and each copy passes every other check: the keys differ (patient key, or the instant,
shifted by the zone), so nothing is a duplicate. This check finds them:

- under another patient key: readings with the same instant and glucose under two patient
  keys;
- under another zone: readings with the same *local wall time* and glucose under two zones,
  of the same patient or not (a zone-less export, Clarity or LibreView, read with the wrong
  ``--tz`` shifts every instant by the zones' difference but keeps the wall times).

A pair of identities (patient key, zone) is flagged when the readings that recur are at least
``MIN_RECURRING`` and at least half of the smaller identity's readings (``MIN_SHARE``): a copy
repeats all of its readings, while two people whose sensors happen to read on the same second
of the 5-minute grid share an equal value about one time in a hundred (the synthetic cohort
has such pairs: 45 equal readings of ~3,900), and a traveller's change of zone gives no run of
equal wall times. The device serial pseudonym is *not* part of the
match: the formats name one sensor differently (a Clarity export names the phone app,
``iPhone G6``; a tabular export the transmitter serial), so the README's two copies of one
sensor arrive under two device ids; the detail names the devices seen.

Its level is *warning*: the run still publishes (``CheckResult.passed`` stays true) and the
report says which identities share the sensor and how many readings recur. It does not block,
because the lake cannot tell which copy is right (both are well-formed data) and refusing the
run would hold back every other patient's data: the fix is a human's (erase the wrong patient;
for one patient under two zones, erase them and ingest once with the right ``--tz``), and the
warning says so.
The detail names patient keys (pseudonyms, shortened), zones and counts, never glucose values.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import QualitySettings
from glucosestream.quality.staged import CheckResult, StagedRun

__all__ = [
    "CHECK_NAME",
    "MIN_RECURRING",
    "MIN_SHARE",
    "check_duplicate_sensor",
    "recurring_pairs",
]

CHECK_NAME: Final = "duplicate_sensor"
MIN_RECURRING: Final = 12  # an hour of 5-minute readings equal in time and value
MIN_SHARE: Final = 0.5  # of the smaller identity's readings
_SHOWN_PAIRS: Final = 3
_COLUMNS: Final = ["patient_key", "tz", "ts", "glucose_mg_dl"]
_PAIR: Final = ["patient_key", "tz", "patient_key_b", "tz_b"]


def _wall_time(rows: pa.Table) -> pa.Array:
    """Each row's local wall time in its own zone (zone by zone: Arrow casts one zone at once)."""
    ts = rows["ts"].combine_chunks()
    zones = rows["tz"].combine_chunks()
    wall = pa.nulls(len(rows), pa.timestamp("us"))
    for zone in pc.unique(zones).to_pylist():
        local = pc.local_timestamp(ts.cast(pa.timestamp("us", tz=zone)))
        wall = pc.if_else(pc.equal(zones, zone), local, wall)
    return wall


def _pairs(rows: pa.Table, when: str, differ: str) -> pa.Table:
    """Pairs of identities with readings equal in ``when`` and glucose whose ``differ`` column
    differs, and how many such readings each pair shares."""
    keys = [when, "glucose_mg_dl"]
    groups = rows.group_by(keys).aggregate([(differ, "count_distinct")])
    shared = groups.filter(pc.greater(groups[differ + "_count_distinct"], 1)).select(keys)
    if shared.num_rows == 0:
        return pa.table({name: pa.array([], pa.string()) for name in _PAIR}).append_column(
            "count_all", pa.array([], pa.int64())
        )
    flagged = rows.select([*keys, "patient_key", "tz"]).join(shared, keys, join_type="inner")
    both = flagged.join(flagged, keys, join_type="inner", right_suffix="_b")
    ordered = pc.or_(
        pc.less(both["patient_key"], both["patient_key_b"]),
        pc.and_(
            pc.equal(both["patient_key"], both["patient_key_b"]), pc.less(both["tz"], both["tz_b"])
        ),
    )
    apart = pc.not_equal(both[differ], both[differ + "_b"])
    return both.filter(pc.and_(ordered, apart)).group_by(_PAIR).aggregate([([], "count_all")])


def recurring_pairs(rows: pa.Table) -> pa.Table:
    """The pairs of identities (patient_key, tz, patient_key_b, tz_b) whose readings recur in
    the other (equal instant, or equal wall time under another zone, and equal glucose), with
    ``readings`` the number that recur; pairs under ``MIN_RECURRING`` or ``MIN_SHARE`` left
    out."""
    rows = rows.select(_COLUMNS)
    rows = rows.append_column("wall", _wall_time(rows))
    found = pa.concat_tables([_pairs(rows, "ts", "patient_key"), _pairs(rows, "wall", "tz")])
    best = found.group_by(_PAIR).aggregate([("count_all", "max")])
    best = best.rename_columns([*_PAIR, "readings"])
    sizes = rows.group_by(["patient_key", "tz"]).aggregate([([], "count_all")])
    best = best.join(sizes, ["patient_key", "tz"]).join(
        sizes.rename_columns(["patient_key_b", "tz_b", "count_all_b"]), ["patient_key_b", "tz_b"]
    )
    smaller = pc.min_element_wise(best["count_all"], best["count_all_b"])
    enough = pc.and_(
        pc.greater_equal(best["readings"], MIN_RECURRING),
        pc.greater_equal(best["readings"], pc.multiply(smaller, MIN_SHARE)),
    )
    best = best.filter(enough).select([*_PAIR, "readings"])
    return best.sort_by([("readings", "descending"), *((n, "ascending") for n in _PAIR)])


def _describe(found: pa.Table) -> str:
    pairs = found.to_pylist()
    said = [
        f"patient {p['patient_key'][:12]} ({p['tz']}) and patient {p['patient_key_b'][:12]} "
        f"({p['tz_b']}) share {p['readings']} readings"
        for p in pairs[:_SHOWN_PAIRS]
    ]
    hidden = len(pairs) - _SHOWN_PAIRS
    more = f"; and {hidden} more pairs" if hidden > 0 else ""
    return (
        "WARNING: the same sensor's readings (equal instant, or equal local time under another "
        "zone, and equal glucose) arrived twice, so they count twice: "
        + "; ".join(said)
        + more
        + ". The run published both copies. Ingest each sensor's data once: erase the patient "
        "whose copy is wrong (`maintain --erase-patient ID`; for one patient under two zones, "
        "erase them and ingest the export again with the right --tz)"
    )


def check_duplicate_sensor(run: StagedRun, settings: QualitySettings) -> CheckResult:
    """Warning level: passes (the run publishes) and names the identities sharing readings,
    with ``failed_rows`` the readings that recur (counted once per pair)."""
    found = recurring_pairs(run.all_readings)
    if found.num_rows == 0:
        return CheckResult(CHECK_NAME, True, 0, "ok")
    return CheckResult(CHECK_NAME, True, int(pc.sum(found["readings"]).as_py()), _describe(found))
