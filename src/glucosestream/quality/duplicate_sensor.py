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
equal wall times. The device serial pseudonym is *not* part of the match: the formats name
one sensor differently (a Clarity export names the phone app, ``iPhone G6``; a tabular export
the transmitter serial), so the README's two copies of one sensor arrive under two device ids.

What it sees: one bucket of a run (its patients' touched days). A run of one bucket (any run
up to ``pipeline.readings_per_task`` readings, the README's included) compares every patient;
in a run of many, one patient under two zones is always found (a patient is in one bucket),
two patient keys only when they share a bucket. Its first pass samples one reading in eight,
so a copy shorter than about two hours may go unseen. Local wall times are computed here, not
with ``localclock`` (a sibling in the import layers); both use Arrow's zone rules.

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

import numpy as np
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
# A first pass looks at one reading in _SAMPLE, chosen by value so that both copies of a reading
# are chosen together: by (seconds within the quarter hour + glucose), which a zone's offset (a
# whole number of quarter hours) does not change. Only identities it suspects are then counted
# exactly: the check costs a pass over 1/_SAMPLE of the bucket when nothing recurs.
_SAMPLE: Final = 8
_QUARTER_HOUR_S: Final = 900
_MIN_SAMPLED: Final = 2
_SHOWN_PAIRS: Final = 3
_PAIR: Final = ["identity_min", "identity_max"]
_SEP: Final = "\t"


def _sampled(rows: pa.Table) -> pa.Array:
    """Whether each row is in the first pass's sample (equal readings: equal answers): a
    multiplicative hash (Knuth's 2654435761) of the seconds within the quarter hour and the
    glucose in tenths, its top bits below 1/_SAMPLE of the range."""
    seconds = pc.cast(rows["ts"], pa.int64()).to_numpy() // 1_000_000
    tenths = np.rint(rows["glucose_mg_dl"].to_numpy() * 10).astype(np.int64)
    key = ((seconds % _QUARTER_HOUR_S) * 4096 + tenths).astype(np.uint64)
    mixed = (key * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return pa.array(mixed < np.uint64(2**32 // _SAMPLE))


def _wall_time(rows: pa.Table) -> pa.Array:
    """Each row's local wall time in its own zone (Arrow converts one zone at a time)."""
    ts = rows["ts"].combine_chunks()
    zones = pc.dictionary_encode(rows["tz"].combine_chunks())
    codes = zones.indices.to_numpy()
    out = pc.cast(ts, pa.int64()).to_numpy().copy()
    for code, zone in enumerate(zones.dictionary.to_pylist()):
        at = np.flatnonzero(codes == code)
        local = pc.local_timestamp(pa.array(out[at], pa.timestamp("us", tz=zone)))
        out[at] = pc.cast(local, pa.int64()).to_numpy()
    return pa.array(out, pa.timestamp("us"))


def _pair_counts(rows: pa.Table, when: str, differ: str) -> pa.Table:
    """Per pair of identities (the least and greatest of each group of readings equal in
    ``when`` and glucose whose ``differ`` column differs), how many readings it shares."""
    groups = rows.group_by([when, "glucose_mg_dl"]).aggregate(
        [(differ, "count_distinct"), ("identity", "min"), ("identity", "max")]
    )
    shared = groups.filter(pc.greater(groups[differ + "_count_distinct"], 1))
    return shared.group_by(_PAIR).aggregate([([], "count_all")])


def _matches(rows: pa.Table, least: int, share: float) -> pa.Table:
    """(identity_min, identity_max, readings) of the pairs sharing ``least`` readings and
    ``share`` of the smaller identity's at least."""
    identity = pc.binary_join_element_wise(rows["patient_key"], rows["tz"], _SEP)
    rows = rows.append_column("identity", identity).append_column("wall", _wall_time(rows))
    found = pa.concat_tables(
        [_pair_counts(rows, "ts", "patient_key"), _pair_counts(rows, "wall", "tz")]
    )
    best = found.group_by(_PAIR).aggregate([("count_all", "max")])
    best = best.rename_columns([*_PAIR, "readings"])
    sizes = rows.group_by(["identity"]).aggregate([([], "count_all")])
    best = best.join(sizes.rename_columns(["identity_min", "n_min"]), "identity_min")
    best = best.join(sizes.rename_columns(["identity_max", "n_max"]), "identity_max")
    smaller = pc.min_element_wise(best["n_min"], best["n_max"])
    enough = pc.and_(
        pc.greater_equal(best["readings"], least),
        pc.greater_equal(best["readings"], pc.multiply(smaller, share)),
    )
    return best.filter(enough).select([*_PAIR, "readings"])


def recurring_pairs(rows: pa.Table) -> pa.Table:
    """The pairs of identities (patient_key, tz, patient_key_b, tz_b) whose readings recur in
    the other (equal instant, or equal wall time under another zone, and equal glucose), with
    ``readings`` the number that recur; pairs under ``MIN_RECURRING`` or ``MIN_SHARE`` left
    out."""
    rows = pa.table(
        {
            "patient_key": pc.cast(rows["patient_key"], pa.string()),
            "tz": pc.cast(rows["tz"], pa.string()),
            "ts": rows["ts"],
            "glucose_mg_dl": pc.cast(rows["glucose_mg_dl"], pa.float64()),
        }
    )
    suspects = _matches(rows.filter(_sampled(rows)), _MIN_SAMPLED, MIN_SHARE)
    names = pc.unique(
        pa.chunked_array(
            [*suspects["identity_min"].chunks, *suspects["identity_max"].chunks], pa.string()
        )
    )
    identity = pc.binary_join_element_wise(rows["patient_key"], rows["tz"], _SEP)
    found = _matches(rows.filter(pc.is_in(identity, names)), MIN_RECURRING, MIN_SHARE)
    a = pc.split_pattern(found["identity_min"], _SEP)
    b = pc.split_pattern(found["identity_max"], _SEP)
    out = pa.table(
        {
            "patient_key": pc.list_element(a, 0),
            "tz": pc.list_element(a, 1),
            "patient_key_b": pc.list_element(b, 0),
            "tz_b": pc.list_element(b, 1),
            "readings": found["readings"],
        }
    )
    keys = ["patient_key", "tz", "patient_key_b", "tz_b"]
    return out.sort_by([("readings", "descending"), *((n, "ascending") for n in keys)])


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
