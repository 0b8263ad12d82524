"""Raw event rows checked: pseudonymised, timed, validated, each with its one reason or none.

``check_events`` turns the raw event rows of a batch's parts (``formats.event_rows``) into
checked rows: the ``events.EVENT_SCHEMA`` columns (but ``batch_id`` and ``ingested_at``, which
the batch fills) and, per row, ``reason`` (NULL: good) and ``dropped`` (a note with nothing
kept); ``event_batch`` finds the duplicates. No I/O but the engine a local time may need.

Readings' rules are used, not restated: pseudonyms come from ``identity.pseudonymised_rows``
(the same patient id gives the same ``patient_key`` in readings and events), and times are read
by ``normalise`` itself (the fast path, else ``normalize.sql``), which is given each event as a
reading of a glucose value known to pass; so ISO instants, local times in a zone, daylight-saving
gaps and repeats, unknown zones and the plausible window (``readings.EARLIEST_READING_AT`` to
the batch's ``ingested_at`` + ``readings.FUTURE_SKEW``) are decided exactly as for readings.

Then, in this order, the first that applies is the row's reason: the kind (``events.EVENT_KINDS``,
case and spaces ignored), the subtype (one of the kind's: bolus, basal, carbs, device and ketone
have closed sets; exercise and note take any name, cut at ``MAX_FREE_SUBTYPE_CHARS``, kept
only with ``ingest.keep_notes`` but for a note's ``NOTE_SUBTYPES``; smbg none),
each amount the kind uses (not a number, negative, above its ``events.MAX_*``; a finger-stick
outside the readings' plausible range or in an unknown unit), then a required amount missing
(bolus units, basal rate or units, carbs grams, a finger-stick's glucose, a ketone value).
Amounts a kind does not use are not read. A note's text is kept only with ``ingest.keep_notes``
(cut at ``events.MAX_NOTE_CHARS``); a note row left with neither text nor a subtype is dropped,
whatever else it holds, and counted ``notes_dropped``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.config import Settings
from glucosestream.engines import Engine
from glucosestream.events import (
    EVENT_KINDS,
    KIND_SUBTYPES,
    MAX_BASAL_RATE_U_H,
    MAX_BOLUS_U,
    MAX_CARBS_G,
    MAX_DURATION_MIN,
    MAX_KETONE_MMOL_L,
    MAX_NOTE_CHARS,
    MAX_SEGMENT_U,
    NOTE_SUBTYPES,
)
from glucosestream.formats import decoded
from glucosestream.ingest.fastpath import constant_strings
from glucosestream.ingest.identity import pseudonymised_rows
from glucosestream.ingest.normalise import normalise, normalise_params
from glucosestream.readings import MG_DL_PER_MMOL_L

__all__ = [
    "CHECKED_TYPES",
    "MAX_FREE_SUBTYPE_CHARS",
    "CheckedEvents",
    "EventInput",
    "check_events",
]

# An exercise's activity or a note's subtype is a name, not a text: longer is cut.
MAX_FREE_SUBTYPE_CHARS: Final = 64
_MOST: Final = {
    "rate_u_h": MAX_BASAL_RATE_U_H,
    "duration_min": MAX_DURATION_MIN,
    "carbs_g": MAX_CARBS_G,
    "ketone_mmol_l": MAX_KETONE_MMOL_L,
}
_INTENSITIES: Final = {
    **dict.fromkeys(("low", "light", "easy", "mild"), "low"),
    **dict.fromkeys(("medium", "moderate", "med"), "medium"),
    **dict.fromkeys(("high", "heavy", "hard", "vigorous", "intense"), "high"),
}
_GLUCOSE_UNITS: Final = {"mg/dl": "mg/dL", "mg": "mg/dL", "mmol/l": "mmol/L", "mmol": "mmol/L"}
# What ``normalise`` may say of the stand-in glucose value (it never should): not the event's.
_GLUCOSE_REASONS: Final = (
    "missing glucose",
    "glucose is not a number",
    "unknown unit (expected mg/dL or mmol/L)",
    "glucose outside the plausible range",
)
_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INSTANT: Final = pa.timestamp("us", tz="UTC")
_NO_TEXT: Final = pa.scalar(None, pa.string())
# A quarantined row keeps at most this much of its raw text (as readings' quarantine does).
_QUARANTINE_TEXT_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class EventInput:
    """One part's raw event rows (lines already batch-wide) and how to read them."""

    raw: pa.Table  # ``formats.event_rows.RAW_EVENT_SCHEMA``
    fmt: str
    tz: str | None = None
    patient_key: str | None = None  # every row's patient (an uploader token's), if bound


@dataclass(frozen=True, slots=True)
class CheckedEvents:
    """Every received event, checked, in line order; and the external id of each patient key
    made (to register, as for readings)."""

    rows: pa.Table
    external_ids: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Amount:
    raw: str  # the raw column
    column: str  # the checked column
    unit: str
    kinds: tuple[str, ...]  # the kinds that use it


_AMOUNTS: Final = (
    _Amount("units", "units", "U", ("bolus", "basal")),
    _Amount("rate_u_h", "rate_u_h", "U/h", ("basal",)),
    _Amount("duration_min", "duration_min", "min", ("bolus", "basal", "exercise", "device")),
    _Amount("carbs_g", "carbs_g", "g", ("carbs",)),
    _Amount("ketone", "ketone_mmol_l", "mmol/L", ("ketone",)),
)


def check_events(
    settings: Settings,
    inputs: Sequence[EventInput],
    secret: bytes,
    *,
    engine: Engine | None,
    received_at: dt.datetime,
    time_formats: tuple[str, ...],
    carried: pa.Table | None = None,
) -> CheckedEvents:
    """The inputs' event rows checked as one batch's (see the module docstring); ``carried``:
    the repeated local times earlier chunks of the file reached (``normalise``)."""
    inputs = [i for i in inputs if i.raw.num_rows]
    if not inputs:
        return CheckedEvents(_empty_checked(), {})
    params = normalise_params(settings, received_at)
    stand_in = repr((params.min_mg_dl + params.max_mg_dl) / 2)
    tables, external_ids = [], {}
    for item in inputs:
        table, ids = _pseudonymised(settings, item, secret, stand_in)
        tables.append(table)
        external_ids.update(ids)
    raw = pa.concat_tables([i.raw for i in inputs])
    incoming = pa.concat_tables(tables)
    order = pa.array(np.arange(incoming.num_rows, dtype=np.int64))
    # One line a row, in the rows' order: ``normalise`` answers in line order, so row i of
    # its answer is row i of ``raw`` (a record of two events has one line for both).
    incoming = incoming.set_column(0, "pos", order).set_column(1, "line", pc.add(order, 1))
    timed = normalise(engine, settings, incoming, time_formats, carried, received_at=received_at)
    rows = _checked(settings, raw, timed, (params.min_mg_dl, params.max_mg_dl))
    return CheckedEvents(_in_line_order(rows), external_ids)


def _pseudonymised(
    settings: Settings, item: EventInput, secret: bytes, stand_in: str
) -> tuple[pa.Table, dict[str, str]]:
    """The rows as ``normalise`` reads them: readings of a glucose value it accepts."""
    raw, n = item.raw, item.raw.num_rows
    reading_like = pa.table(
        {
            "line": raw["line"],
            "patient_id": decoded(raw["patient_id"]),
            "device_id": decoded(raw["device_id"]),
            "time": decoded(raw["time"]),
            "instant": raw["instant"],
            "glucose": constant_strings(stand_in, n),
            "unit": pa.nulls(n, pa.string()),
            "tz": decoded(raw["tz"]),
            "flags": pa.array(np.zeros(n, np.int32)),
            "problem": raw["problem"],
            "direction": pa.nulls(n, pa.string()),
            "rate": pa.nulls(n, pa.string()),
        }
    )
    bound = None if item.patient_key is None else constant_strings(item.patient_key, n)
    return pseudonymised_rows(settings, reading_like, secret, bound=bound, fmt=item.fmt, tz=item.tz)


def _checked(
    settings: Settings, raw: pa.Table, timed: pa.Table, glucose_range: tuple[float, float]
) -> pa.Table:
    """The checked rows from the raw rows and what ``normalise`` made of their times."""
    values, reasons = _values(settings, raw, glucose_range)
    kind, subtype, note = values["kind"], values["subtype"], values["note"]
    dropped = pc.fill_null(
        pc.and_(pc.equal(kind, "note"), pc.and_(pc.is_null(note), pc.is_null(subtype))), False
    )
    reason = pc.coalesce(_time_reason(timed["reason"]), *reasons)
    return pa.table(
        {
            "line": raw["line"],
            "pos": timed["line"],
            "reason": pc.if_else(dropped, _NO_TEXT, reason),
            "dropped": dropped,
            "patient_key": decoded(timed["patient_key"]),
            "device_id": decoded(timed["device_id"]),
            "source": decoded(timed["source"]),
            "ts": timed["ts"].cast(_INSTANT),
            "tz": decoded(timed["tz"]),
            **values,
            "raw_time": pc.coalesce(decoded(raw["time"]), raw["instant"].cast(pa.string())),
            "raw_kind": pc.utf8_slice_codeunits(decoded(raw["kind"]), 0, _QUARANTINE_TEXT_CHARS),
            "raw_amount": _first_amount_text(raw),
            "repeated_local_time": timed["repeated_local_time"],
        }
    )


def _values(
    settings: Settings, raw: pa.Table, glucose_range: tuple[float, float]
) -> tuple[dict[str, pa.Array], list[pa.Array]]:
    """The event columns read from the raw rows (``CHECKED_TYPES`` from ``kind`` to ``note``),
    and the reasons each row may have, first first."""
    kind = _per_distinct(raw["kind"], _kind_name)
    subtype = _free_names_kept(
        kind, _per_distinct(raw["subtype"], _subtype_name), settings.ingest.keep_notes
    )
    amounts = {a.column: _uses(kind, a.kinds, _numbers(raw[a.raw])) for a in _AMOUNTS}
    suspended = pc.fill_null(
        pc.and_(pc.equal(kind, "basal"), pc.equal(subtype, "suspended")), False
    )  # a suspension is a segment at rate 0
    amounts["rate_u_h"] = pc.if_else(
        pc.and_(suspended, pc.is_null(amounts["rate_u_h"])), 0.0, amounts["rate_u_h"]
    )
    smbg = pc.fill_null(pc.equal(kind, "smbg"), False)
    value = _uses(kind, ("smbg",), _numbers(raw["glucose"]))
    unit = _per_distinct(raw["unit"], _glucose_unit)
    mmol = pc.fill_null(pc.equal(unit, "mmol/L"), False)
    mg_dl = pc.if_else(mmol, pc.multiply(value, MG_DL_PER_MMOL_L), value)
    reasons = [
        _kind_reason(kind),
        _subtype_reason(kind, subtype),
        *(_amount_reasons(kind, subtype, a, amounts[a.column]) for a in _AMOUNTS),
        _glucose_reason(smbg, value, mg_dl, unit, glucose_range),
        _required_reason(kind, amounts, value),
    ]
    values = {
        "kind": kind,
        "subtype": subtype,
        **{name: amounts[name] for name in ("units", "rate_u_h", "duration_min", "carbs_g")},
        "glucose_mg_dl": pc.if_else(smbg, mg_dl, None),
        "original_value": pc.if_else(smbg, value, None),
        "original_unit": pc.if_else(smbg, pc.coalesce(unit, "mg/dL"), _NO_TEXT),
        "ketone_mmol_l": amounts["ketone_mmol_l"],
        "intensity": _intensities(kind, raw["intensity"]),
        "note": _notes(raw["note"], settings.ingest.keep_notes),
    }
    return values, reasons


def _in_line_order(rows: pa.Table) -> pa.Table:
    """The rows by line, then by their place (a record of two events: one line, two rows)."""
    ordered = rows.sort_by([("line", "ascending"), ("pos", "ascending")])
    return ordered.drop_columns(["pos"])


def _empty_checked() -> pa.Table:
    return pa.table(
        {name: pa.array([], type_) for name, type_ in CHECKED_TYPES.items()},
    )


CHECKED_TYPES: Final[dict[str, pa.DataType]] = {
    "line": pa.int64(),
    "reason": pa.string(),
    "dropped": pa.bool_(),
    "patient_key": pa.string(),
    "device_id": pa.string(),
    "source": pa.string(),
    "ts": _INSTANT,
    "tz": pa.string(),
    "kind": pa.string(),
    "subtype": pa.string(),
    "units": pa.float64(),
    "rate_u_h": pa.float64(),
    "duration_min": pa.float64(),
    "carbs_g": pa.float64(),
    "glucose_mg_dl": pa.float64(),
    "original_value": pa.float64(),
    "original_unit": pa.string(),
    "ketone_mmol_l": pa.float64(),
    "intensity": pa.string(),
    "note": pa.string(),
    "raw_time": pa.string(),
    "raw_kind": pa.string(),
    "raw_amount": pa.string(),
    "repeated_local_time": pa.timestamp("us"),
}


# ---- values ---------------------------------------------------------------------------------
def _per_distinct(
    column: pa.ChunkedArray | pa.Array,
    func: Callable[[str], object],
    type_: pa.DataType | None = None,
) -> pa.Array:
    """``func`` of each distinct text (None stays None), worked on once per distinct value."""
    encoded = pc.dictionary_encode(decoded(column))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries().combine_chunks()
    mapped = pa.array([func(v) for v in encoded.dictionary.to_pylist()], type_ or pa.string())
    return pc.take(mapped, encoded.indices)


def _kind_name(text: str) -> str | None:
    name = text.strip().lower()
    return name or None


def _subtype_name(text: str) -> str | None:
    name = "_".join(text.strip().lower().split())
    return name[:MAX_FREE_SUBTYPE_CHARS] or None


def _glucose_unit(text: str) -> str | None:
    name = text.replace(" ", "").lower()
    return _GLUCOSE_UNITS.get(name, "?") if name else None


def _number(text: str) -> float:
    """The number ``text`` writes (spaces around it allowed); NaN: it writes none."""
    stripped = text.strip()
    return float(stripped) if _NUMBER.fullmatch(stripped) else float("nan")


def _numbers(column: pa.ChunkedArray) -> pa.Array:
    """Each text as a number: NULL when empty, NaN when it is no number (``_number``)."""

    def read(text: str) -> float | None:
        return _number(text) if text.strip() else None

    return _per_distinct(column, read, pa.float64())


def _uses(kind: pa.Array, kinds: tuple[str, ...], values: pa.Array) -> pa.Array:
    """``values`` where the row's kind uses them, else NULL (never read)."""
    used = pc.fill_null(pc.is_in(kind, value_set=pa.array(kinds, pa.string())), False)
    return pc.if_else(used, values, pa.scalar(None, values.type))


def _free_names_kept(kind: pa.Array, subtype: pa.Array, keep: bool) -> pa.Array:
    """The subtypes, but a note's or an exercise's free name (not one of ``NOTE_SUBTYPES``)
    dropped unless notes are kept: it may be text a person typed."""
    if keep:
        return subtype
    known = pc.is_in(subtype, value_set=pa.array(NOTE_SUBTYPES, pa.string()))
    free = pc.or_(pc.equal(kind, "exercise"), pc.and_(pc.equal(kind, "note"), pc.invert(known)))
    return pc.if_else(pc.fill_null(free, False), _NO_TEXT, subtype)


def _notes(note: pa.ChunkedArray, keep: bool) -> pa.Array:
    if not keep:
        return pa.nulls(len(note), pa.string())
    text = pc.utf8_trim_whitespace(decoded(note))
    cut = pc.utf8_slice_codeunits(text, 0, MAX_NOTE_CHARS)
    return pc.if_else(pc.equal(cut, ""), _NO_TEXT, cut).combine_chunks()


def _intensities(kind: pa.Array, intensity: pa.ChunkedArray) -> pa.Array:
    """An exercise's intensity as low, medium or high (another word: NULL, the row kept)."""
    named = _per_distinct(intensity, lambda t: _INTENSITIES.get(t.strip().lower()))
    return _uses(kind, ("exercise",), named)


def _first_amount_text(raw: pa.Table) -> pa.Array:
    """The first amount the row was given, as received (clipped): what its quarantine keeps."""
    texts = [decoded(raw[a.raw]) for a in _AMOUNTS] + [decoded(raw["glucose"])]
    blanks_null = [pc.if_else(pc.equal(pc.utf8_trim_whitespace(t), ""), _NO_TEXT, t) for t in texts]
    first = pc.coalesce(*blanks_null)
    return pc.utf8_slice_codeunits(first, 0, _QUARANTINE_TEXT_CHARS)


# ---- reasons --------------------------------------------------------------------------------
def _reason_where(mask: pa.Array, reason: str) -> pa.Array:
    return pc.if_else(pc.fill_null(mask, False), reason, _NO_TEXT)


def _time_reason(reason: pa.ChunkedArray) -> pa.ChunkedArray:
    """``normalise``'s reason: the parser's problem, the patient, the time and zone."""
    about_glucose = pc.is_in(reason, value_set=pa.array(_GLUCOSE_REASONS, pa.string()))
    return pc.if_else(pc.fill_null(about_glucose, False), _NO_TEXT, reason)


def _kind_reason(kind: pa.Array) -> pa.Array:
    missing = _reason_where(pc.is_null(kind), "missing event kind")
    known = pc.is_in(kind, value_set=pa.array(EVENT_KINDS, pa.string()))
    return pc.coalesce(missing, _reason_where(pc.invert(known), "unknown event kind"))


def _subtype_reason(kind: pa.Array, subtype: pa.Array) -> pa.Array:
    reasons = []
    for name, allowed in KIND_SUBTYPES.items():
        unknown = pc.and_(
            pc.equal(kind, name),
            pc.invert(pc.is_in(subtype, value_set=pa.array(allowed, pa.string()))),
        )
        reasons.append(
            _reason_where(pc.and_(unknown, pc.is_valid(subtype)), f"unknown {name} subtype")
        )
    return pc.coalesce(*reasons)


def _amount_reasons(
    kind: pa.Array, subtype: pa.Array, amount: _Amount, values: pa.Array
) -> pa.Array:
    name = amount.column
    if name == "units":  # a basal segment may deliver more than one dose may hold
        not_injection = pc.not_equal(pc.fill_null(subtype, ""), "injection")
        segment = pc.fill_null(pc.and_(pc.equal(kind, "basal"), not_injection), False)
        limit: pa.Array | float = pc.if_else(segment, MAX_SEGMENT_U, MAX_BOLUS_U)
        most = f"{MAX_BOLUS_U:g} U a dose, {MAX_SEGMENT_U:g} U a basal segment"
    else:
        limit = _MOST[name]
        most = f"{limit:g} {amount.unit}"
    return pc.coalesce(
        _reason_where(pc.is_nan(values), f"{name} is not a number"),
        _reason_where(pc.less(values, 0.0), f"{name} is negative"),
        _reason_where(pc.greater(values, limit), f"{name} above the plausible most ({most})"),
    )


def _glucose_reason(
    smbg: pa.Array,
    value: pa.Array,
    mg_dl: pa.Array,
    unit: pa.Array,
    glucose_range: tuple[float, float],
) -> pa.Array:
    """A finger-stick's value read as readings' are (same reasons, same plausible range)."""
    low, high = glucose_range
    return pc.coalesce(
        _reason_where(pc.is_nan(value), "glucose is not a number"),
        _reason_where(
            pc.and_(smbg, pc.equal(unit, "?")), "unknown unit (expected mg/dL or mmol/L)"
        ),
        _reason_where(
            pc.or_(pc.less(mg_dl, low), pc.greater(mg_dl, high)),
            "glucose outside the plausible range",
        ),
    )


def _required_reason(kind: pa.Array, amounts: dict[str, pa.Array], value: pa.Array) -> pa.Array:
    return pc.coalesce(
        _reason_where(
            pc.and_(pc.equal(kind, "bolus"), pc.is_null(amounts["units"])), "bolus without units"
        ),
        _reason_where(
            pc.and_(
                pc.equal(kind, "basal"),
                pc.and_(pc.is_null(amounts["units"]), pc.is_null(amounts["rate_u_h"])),
            ),
            "basal without a rate or units",
        ),
        _reason_where(
            pc.and_(pc.equal(kind, "carbs"), pc.is_null(amounts["carbs_g"])), "carbs without grams"
        ),
        _reason_where(pc.and_(pc.equal(kind, "smbg"), pc.is_null(value)), "smbg without glucose"),
        _reason_where(
            pc.and_(pc.equal(kind, "ketone"), pc.is_null(amounts["ketone_mmol_l"])),
            "ketone without a value",
        ),
    )
