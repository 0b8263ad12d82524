"""Nightscout profiles ingested with the data they apply to: the pump's basal schedule as
scheduled basal segments over the days of the same command's readings and treatments.

A profile (``GET /api/v1/profile.json``) holds a basal schedule that repeats every day without
end (``formats.nightscout_profile``). Laid over nothing it says nothing, so ``ingest_paths``
ingests every other file first and then each profile over the **span** of what that command
ingested for the patient: from the earliest to the latest reading or event of their batches
(files already ingested count too, from the batches they were ingested as), at most the newest
``nightscout_profile.MAX_PROFILE_DAYS`` days. A Nightscout site is one person, so a profile
needs ``--patient``; a profile with no span (ingested alone, or with files that hold nothing of
that patient) is refused, naming the command that works.

Each segment starts at the instant the profile's own ``timezone`` shows its time of day, and
is counted in the days of the command's zone (``--tz``, else the default), like the entries
and treatments beside it: a patient's day has one midnight. Pass ``--tz`` with the profile's
zone for local days.

The profile's batch is recorded under a digest of its bytes and its span, so the same command
run again changes nothing, and a later command with more days adds the new days' segments (the
days already covered give the same rows: duplicates, not new events).
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.errors import InvalidInput
from glucosestream.formats import ParsedFile
from glucosestream.formats.jsontext import decode_json
from glucosestream.formats.nightscout_profile import looks_like_profiles, scheduled_basal
from glucosestream.formats.rows import RowBuilder
from glucosestream.ingest.accept import check_source, ingest_parsed, ingest_path
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.ingest.ingest_report import IngestReport
from glucosestream.lake import RawZone, open_storage

__all__ = ["MAX_PROFILE_BYTES", "data_span", "ingest_paths"]

# A profile document is a few kilobytes; a site's whole profile history is rarely a megabyte.
MAX_PROFILE_BYTES: Final = 8 << 20
_HEAD_BYTES: Final = 64 << 10
_PROFILE_FORMATS: Final = ("auto", "nightscout")
# The last segment must start inside the span: the window is [earliest, latest + this).
_LAST_INSTANT: Final = dt.timedelta(seconds=1)


def ingest_paths(
    settings: Settings,
    paths: Sequence[Path],
    *,
    fmt: str = "auto",
    patient_id: str | None = None,
    tz: str | None = None,
    now: Clock = utc_now,
) -> list[IngestReport]:
    """Ingest files as ``ingest_path`` does, one batch each, Nightscout profiles last (over the
    span of the others: see the module's docstring); the reports in the order of ``paths``."""
    for path in paths:
        check_source(path)
    read = ((p, _read_profile(p, fmt)) for p in paths)
    profiles = {p: profile for p, profile in read if profile is not None}
    patient = _profiles_patient(list(profiles), paths, patient_id)
    reports: dict[int, IngestReport] = {}
    for index, path in enumerate(paths):
        if path not in profiles:
            reports[index] = ingest_path(
                settings, path, fmt=fmt, patient_id=patient_id, tz=tz, now=now
            )
    if patient is not None:
        key = patient_key(load_secret(settings), patient)
        span = data_span(settings, list(reports.values()), key)
        for index, path in enumerate(paths):
            if path in profiles:
                reports[index] = _ingest_profile(
                    settings, path, profiles[path], span, patient, tz, now
                )
    return [reports[i] for i in range(len(paths))]


@dataclass(frozen=True, slots=True)
class _Profile:
    """A profile file as read once: its bytes (their digest records the batch) and documents."""

    data: bytes
    documents: list[Any]


def _read_profile(path: Path, fmt: str) -> _Profile | None:
    """The profile in ``path``, or None: it is no Nightscout profile file (read only when its
    first 64 KiB name a ``defaultProfile`` and it is at most ``MAX_PROFILE_BYTES``)."""
    if fmt not in _PROFILE_FORMATS:
        return None
    try:
        if path.stat().st_size > MAX_PROFILE_BYTES:
            return None
        with path.open("rb") as f:
            head = f.read(_HEAD_BYTES).removeprefix(codecs.BOM_UTF8)
        if b'"defaultProfile"' not in head or head.lstrip()[:1] not in (b"[", b"{"):
            return None
        data = path.read_bytes()
        document = decode_json(data.decode("utf-8-sig"), source=str(path))
    except (OSError, ValueError, InvalidInput):
        return None  # not a profile: ingest_path reads it and says what is wrong
    if not looks_like_profiles(document):
        return None
    return _Profile(data, document if isinstance(document, list) else [document])


def _profiles_patient(
    profiles: Sequence[Path], paths: Sequence[Path], patient_id: str | None
) -> str | None:
    """The patient of the ``profiles`` (None: there are none); refused, before anything is
    ingested, profiles that could never be laid over data."""
    if not profiles:
        return None
    example = "glucosestream ingest entries.json treatments.json profile.json --patient ID"
    if patient_id is None:
        raise InvalidInput(
            "a Nightscout profile names no patient (a Nightscout site is one person): pass "
            f"--patient ID, with the entries or treatments it belongs with, e.g. {example}",
            source=str(profiles[0]),
        )
    if len(profiles) == len(paths):
        raise InvalidInput(
            "a Nightscout profile's basal schedule repeats every day, so it is laid over the "
            "days of the readings or treatments ingested in the same command, and this command "
            f"has none; nothing was ingested: pass them together, e.g. {example}",
            source=str(profiles[0]),
        )
    return patient_id


def data_span(
    settings: Settings, reports: Sequence[IngestReport], key: str
) -> tuple[dt.datetime, dt.datetime] | None:
    """The earliest and latest instant of a reading or event of patient ``key`` in the
    batches the ``reports`` landed in (or were already ingested as); None: there is none."""
    zone = RawZone(open_storage(settings.lake))
    keys = pa.array([key])
    lows: list[dt.datetime] = []
    highs: list[dt.datetime] = []
    for report in reports:
        for batch_id in report.batch_ids or (report.batch_id or report.already_ingested_as,):
            if batch_id is None:
                continue
            batch = zone.batch(batch_id)
            events = batch.events()
            times = [
                batch.reading_keys(keys)["ts"],
                events.filter(pc.is_in(events["patient_key"], keys))["ts"],
            ]
            for column in times:
                if len(column) - column.null_count:
                    bounds = pc.min_max(column)
                    lows.append(bounds["min"].as_py())
                    highs.append(bounds["max"].as_py())
    if not lows:
        return None
    return min(lows), max(highs)


def _ingest_profile(
    settings: Settings,
    path: Path,
    profile: _Profile,
    span: tuple[dt.datetime, dt.datetime] | None,
    patient_id: str,
    tz: str | None,
    now: Clock,
) -> IngestReport:
    if span is None:
        raise InvalidInput(
            "a Nightscout profile's basal schedule is laid over the days of the readings or "
            "treatments ingested with it, and the other files of this command hold none of "
            "this patient's (the other files were ingested); pass the profile with the "
            "patient's entries or treatments and the same --patient",
            source=str(path),
        )
    start, end = span[0], span[1] + _LAST_INSTANT
    segments = scheduled_basal(profile.documents, start, end)
    if not segments.num_rows:
        raise InvalidInput(
            f"none of its basal schedules applies from {start:%Y-%m-%d %H:%M} to "
            f"{end:%Y-%m-%d %H:%M} UTC, the span of the data ingested with it (a schedule holds "
            "from its startDate); nothing was ingested from it: pass the profile that was in "
            "use then",
            source=str(path),
        )
    window = f"{start.isoformat()}/{end.isoformat()}".encode()
    sha256 = hashlib.sha256(hashlib.sha256(profile.data).digest() + window).hexdigest()
    # Placed by the profile's zone, counted in the days of the command's zone (--tz, else the
    # default), as the entries and treatments beside it: one patient's day has one midnight.
    zone_column = segments.schema.get_field_index("tz")
    no_zone = pa.nulls(segments.num_rows, pa.string())
    segments = segments.set_column(zone_column, "tz", no_zone)
    parsed = ParsedFile(RowBuilder().table(), events=segments)
    return ingest_parsed(
        settings, parsed, source=str(path), fmt="nightscout", sha256=sha256,
        patient_id=patient_id, tz=tz, now=now,
    )  # fmt: skip
