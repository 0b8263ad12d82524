"""A patient's canonical events as Nightscout treatments, newest first. PURE.

The shape is that of Nightscout's ``GET /api/v1/treatments`` (cgm-remote-monitor
``lib/api/treatments/index.js``, fields as in ``docs/data-schemas/treatments-schema.md``):
``_id``, ``eventType``, ``created_at`` (ISO 8601, UTC, ms), ``enteredBy`` (the device
pseudonym, as entries give ``device``), ``utcOffset`` (minutes, the event's zone), and always
``insulin`` and ``carbs`` (null when the treatment has none: Nightscout's GET writes
``Number(undefined)`` for them); ``duration`` (minutes), ``absolute``/``rate`` (U/h), ``glucose``,
``notes`` when the event has them.

Each canonical event is one amount; Nightscout joins amounts given together. So at one instant
of one device: a normal bolus and a meal's carbs are one ``Meal Bolus``; a normal and an extended
bolus (and a meal's carbs) are one ``Combo Bolus`` (``insulin`` the part given at once,
``enteredinsulin`` the whole, ``relative`` the extended part's U/h, ``splitNow``/``splitExt``
in %), which is how ingest (``formats.nightscout_treatments``) reads them back. The rest, one
event each:

    bolus normal          Correction Bolus (insulin)
    bolus automatic       Correction Bolus (insulin, isSMB: true)
    bolus extended        Combo Bolus (insulin 0, the whole extended)
    basal (not injection) Temp Basal (absolute = rate = U/h, duration; automated:
                          automatic: true; suspended: 0 U/h). Nightscout keeps the scheduled
                          basal in its profile; a scheduled segment is given as a Temp Basal at
                          its rate, so a reader's basal is the one delivered.
    basal injection       Note ("Long-acting insulin 20 U"): Nightscout has no long-acting
                          insulin treatment, and an ``insulin`` amount would count in
                          insulin on board, which long-acting insulin must not.
    carbs meal            Meal Bolus (carbs); carbs correction: Carb Correction (carbs)
    exercise              Exercise (duration)
    device                Sensor Start, Sensor Stop, Site Change, Insulin Change, Suspend Pump
                          (duration when known), Resume Pump
    smbg                  BG Check (glucose in its original unit, units mg/dl or mmol,
                          glucoseType Finger)
    ketone                Note ("Blood ketones 1.2 mmol/L")
    note                  Note (the kept text, else its subtype in words)
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.published.nightscout_entries import EPOCH, epoch_ms_of, iso_utc

__all__ = ["DEVICE_EVENT_TYPES", "treatments_from_events"]

DEVICE_EVENT_TYPES: Final = {
    "sensor_start": "Sensor Start",
    "sensor_stop": "Sensor Stop",
    "site_change": "Site Change",
    "cartridge_change": "Insulin Change",
    "pump_suspend": "Suspend Pump",
    "pump_resume": "Resume Pump",
}
_CARBS_EVENT_TYPES: Final = {"meal": "Meal Bolus", "correction": "Carb Correction"}

Event = dict[str, Any]  # one EVENT_SCHEMA row as a dict


def treatments_from_events(
    events: pa.Table,
    *,
    count: int,
    since_ms: int | None = None,
    until_ms: int | None = None,
    event_type: str | None = None,
) -> list[dict[str, Any]]:
    """Events (EVENT_SCHEMA, any order) as Nightscout treatments, newest first, at most
    ``count``, those dated ``since_ms`` to ``until_ms`` (both included) of ``event_type``
    (None: every type)."""
    if event_type is None:  # every instant gives a treatment at least: the newest suffice
        events = _newest_instants(events, count, until_ms)
    documents = [
        doc
        for group in _same_instant(events.to_pylist())
        for doc in _documents(group)
        if (since_ms is None or doc["date"] >= since_ms)
        and (until_ms is None or doc["date"] <= until_ms)
        and (event_type is None or doc["eventType"] == event_type)
    ]
    documents.sort(key=lambda d: d["date"], reverse=True)  # stable: one instant keeps its order
    for doc in documents:
        del doc["date"]
    return documents[:count]


def _newest_instants(events: pa.Table, count: int, until_ms: int | None) -> pa.Table:
    """The events of the ``count`` newest instants up to ``until_ms`` (and any later ones):
    each instant of each device is one treatment at least, so no newer treatment is left
    out. Converting a patient's whole history to rows for ten treatments was most of a GET."""
    ts = events["ts"]
    if until_ms is not None:
        until = EPOCH + dt.timedelta(milliseconds=until_ms)
        ts = ts.filter(pc.less_equal(ts, pa.scalar(until, ts.type)))
    instants = pc.unique(ts)
    if len(instants) <= count:
        return events
    newest = pc.select_k_unstable(instants, count, [("dummy", "descending")])
    oldest_kept = pc.min(pc.take(instants, newest))
    return events.filter(pc.greater_equal(events["ts"], oldest_kept))


def _same_instant(rows: Iterable[Event]) -> list[list[Event]]:
    """The events grouped by (device, instant), in a fixed order within a group."""
    groups: dict[tuple[str, dt.datetime], list[Event]] = {}
    for row in sorted(rows, key=_order):
        groups.setdefault((row["device_id"], row["ts"]), []).append(row)
    return list(groups.values())


def _order(row: Event) -> tuple[Any, ...]:
    amount = next((row[c] for c in ("units", "carbs_g", "rate_u_h") if row[c] is not None), 0.0)
    return (row["device_id"], row["ts"], row["kind"], row["subtype"] or "", amount)


def _take(group: list[Event], kind: str, subtype: str) -> Event | None:
    """The first event of this kind and subtype in the group, removed from it."""
    for i, row in enumerate(group):
        if row["kind"] == kind and row["subtype"] == subtype:
            return group.pop(i)
    return None


def _documents(group: list[Event]) -> list[dict[str, Any]]:
    """One instant's treatments: the joined boluses and meal first, then one per event."""
    rest = list(group)
    normal = _take(rest, "bolus", "normal")
    extended = _take(rest, "bolus", "extended")
    meal = _take(rest, "carbs", "meal")
    docs: list[dict[str, Any]] = []
    if extended is not None:
        docs.append(_combo(extended, normal, meal))
    elif normal is not None:
        name = "Correction Bolus" if meal is None else "Meal Bolus"
        carbs = None if meal is None else meal["carbs_g"]
        docs.append(_doc(normal, name, insulin=normal["units"], carbs=carbs))
    elif meal is not None:
        docs.append(_doc(meal, "Meal Bolus", carbs=meal["carbs_g"]))
    docs.extend(_single(row) for row in rest)
    return docs


def _combo(extended: Event, normal: Event | None, meal: Event | None) -> dict[str, Any]:
    now_u = 0.0 if normal is None else float(normal["units"] or 0.0)
    later_u = float(extended["units"] or 0.0)
    whole = now_u + later_u
    minutes = extended["duration_min"]
    doc = _doc(
        extended,
        "Combo Bolus",
        insulin=now_u,
        carbs=None if meal is None else meal["carbs_g"],
        enteredinsulin=round(whole, 3),
        splitNow=round(100 * now_u / whole) if whole else 0,
        splitExt=round(100 * later_u / whole) if whole else 100,
    )
    if minutes:
        doc["duration"] = minutes
        doc["relative"] = round(later_u * 60 / minutes, 3)
    return doc


def _single(row: Event) -> dict[str, Any]:
    kind, subtype = row["kind"], row["subtype"]
    if kind == "bolus":
        extra = {"isSMB": True} if subtype == "automatic" else {}
        if subtype == "extended":
            return _combo(row, None, None)
        return _doc(row, "Correction Bolus", insulin=row["units"], **extra)
    if kind == "basal":
        return _basal(row)
    if kind == "carbs":
        return _doc(row, _CARBS_EVENT_TYPES.get(subtype or "", "Meal Bolus"), carbs=row["carbs_g"])
    if kind == "exercise":
        return _doc(row, "Exercise", duration=row["duration_min"], notes=row["note"])
    if kind == "device":
        name = DEVICE_EVENT_TYPES.get(subtype or "", "Note")
        notes = None if subtype in DEVICE_EVENT_TYPES else _words(subtype)
        return _doc(row, name, duration=row["duration_min"], notes=notes)
    if kind == "smbg":
        return _bg_check(row)
    if kind == "ketone":
        value = row["ketone_mmol_l"]
        return _doc(
            row, "Note", notes=f"{(subtype or 'blood').capitalize()} ketones {value:g} mmol/L"
        )
    return _doc(row, "Note", notes=row["note"] or _words(subtype))


def _basal(row: Event) -> dict[str, Any]:
    subtype = row["subtype"]
    if subtype == "injection":
        return _doc(row, "Note", notes=f"Long-acting insulin {row['units']:g} U")
    rate = 0.0 if subtype == "suspended" else row["rate_u_h"]
    extra = {"automatic": True} if subtype == "automated" else {}
    return _doc(row, "Temp Basal", absolute=rate, rate=rate, duration=row["duration_min"], **extra)


def _bg_check(row: Event) -> dict[str, Any]:
    mmol = (row["original_unit"] or "").lower().startswith("mmol")
    value = row["original_value"] if mmol and row["original_value"] is not None else None
    if value is None:
        mmol, value = False, round(row["glucose_mg_dl"])
    return _doc(
        row, "BG Check", glucose=value, glucoseType="Finger", units="mmol" if mmol else "mg/dl"
    )


def _words(subtype: str | None) -> str | None:
    return None if not subtype else subtype.replace("_", " ")


def _doc(row: Event, event_type: str, **fields: Any) -> dict[str, Any]:
    """A treatment: the common fields, ``insulin`` and ``carbs`` always, others when not None."""
    ts: dt.datetime = row["ts"]
    date_ms = epoch_ms_of(ts)
    doc: dict[str, Any] = {
        "_id": _object_id(row["device_id"], date_ms, event_type, fields),
        "eventType": event_type,
        "created_at": iso_utc(ts),
        "enteredBy": row["device_id"],
        "utcOffset": _utc_offset_min(ts, row["tz"]),
        "insulin": fields.pop("insulin", None),
        "carbs": fields.pop("carbs", None),
        "date": date_ms,  # for the caller's filter and order; removed before returning
    }
    doc.update({k: v for k, v in fields.items() if v is not None})
    return doc


def _object_id(device_id: str, date_ms: int, event_type: str, fields: dict[str, Any]) -> str:
    """A stable id shaped as a MongoDB ObjectId (24 hex digits): the same event has the same
    id on every GET and every run."""
    amounts = ",".join(f"{k}={fields[k]}" for k in sorted(fields) if fields[k] is not None)
    text = f"{device_id}|{date_ms}|{event_type}|{amounts}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:24]


def _utc_offset_min(ts: dt.datetime, zone: str) -> int:
    try:
        offset = ts.astimezone(ZoneInfo(zone)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return 0 if offset is None else int(offset.total_seconds() // 60)
