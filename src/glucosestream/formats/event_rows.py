"""Raw event rows: the contract between the format parsers and ``ingest`` for everything that is
not a sensor glucose reading (see ``glucosestream.events`` for the canonical event). PURE.

A parser that finds treatments, meals, exercise, device events, finger-sticks or ketones puts
them in ``ParsedFile.events``: an Arrow table with the columns of ``RAW_EVENT_SCHEMA``, one row
per received event, every value as received (text), in the order of the source. Values are
validated by ``ingest`` (a bad one quarantines the row with its reason), not here.

    line         int64   the 1-based line (text) or record index (JSON) it came from
    patient_id   string  the external patient id as received (ingest makes the pseudonym)
    device_id    string  the device or serial as received
    time         string  as ``rows.RAW_SCHEMA.time``: ISO 8601, or local time in one of the
                         file's ``time_formats``, local to ``tz`` when it has no offset
    instant      timestamp[us, UTC]  the instant when the source has it typed; ``time`` empty
    tz           string  IANA zone of the device (empty: --tz, else the configured default)
    kind         string  one of ``events.EVENT_KINDS`` (the parser maps the source's names)
    subtype      string  one of the kind's subtypes (``events``), or empty
    units        string  insulin units (a bolus; a basal segment's delivered units; an injection)
    rate_u_h     string  a basal rate in U/h
    duration_min string  minutes (basal segment, extended bolus, exercise, suspension)
    carbs_g      string  grams of carbohydrate
    glucose      string  a finger-stick glucose, in ``unit``
    unit         string  mg/dL or mmol/L (empty: mg/dL), for ``glucose``
    ketone       string  mmol/L
    intensity    string  exercise intensity as received (ingest maps it to low/medium/high)
    note         string  free text; ingest keeps it only when the user opted in
    problem      string  why the parser already knows this row is bad (quarantined as the reason)

``EventBuilder`` collects rows one at a time (exports are small). A record the parser knows to
be neither a reading nor an event it maps (an alert, a temporary target) is counted in
``ParsedFile.skipped``, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import pyarrow as pa

from glucosestream.formats.rows import text_array

__all__ = ["EVENT_TEXT_COLUMNS", "RAW_EVENT_SCHEMA", "EventBuilder", "EventSite", "no_events"]

EVENT_TEXT_COLUMNS: Final = (
    "patient_id",
    "device_id",
    "time",
    "tz",
    "kind",
    "subtype",
    "units",
    "rate_u_h",
    "duration_min",
    "carbs_g",
    "glucose",
    "unit",
    "ketone",
    "intensity",
    "note",
)

RAW_EVENT_SCHEMA: Final = pa.schema(
    [
        pa.field("line", pa.int64()),
        *(pa.field(name, pa.string()) for name in EVENT_TEXT_COLUMNS[:3]),
        pa.field("instant", pa.timestamp("us", tz="UTC")),
        *(pa.field(name, pa.string()) for name in EVENT_TEXT_COLUMNS[3:]),
        pa.field("problem", pa.string()),
    ]
)


def no_events() -> pa.Table:
    """An empty ``RAW_EVENT_SCHEMA`` table."""
    return RAW_EVENT_SCHEMA.empty_table()


@dataclass(slots=True)
class EventBuilder:
    """Collects raw event rows one at a time. Every value is given as text (or None); a
    number the source typed is passed as ``str(number)``."""

    lines: list[int] = field(default_factory=list)
    columns: dict[str, list[str | None]] = field(
        default_factory=lambda: {name: [] for name in EVENT_TEXT_COLUMNS}
    )
    problems: list[str | None] = field(default_factory=list)

    def add(
        self,
        line: int,
        *,
        kind: str,
        time: str | None,
        problem: str | None = None,
        **values: str | None,
    ) -> None:
        """One event: ``values`` are other ``EVENT_TEXT_COLUMNS`` (unknown names raise
        TypeError: a parser's bug, not the input's)."""
        unknown = set(values) - set(EVENT_TEXT_COLUMNS)
        if unknown:
            raise TypeError(f"not raw event columns: {sorted(unknown)}")
        self.lines.append(line)
        given = {**values, "kind": kind, "time": time}
        for name in EVENT_TEXT_COLUMNS:
            self.columns[name].append(given.get(name))
        self.problems.append(problem)

    def __len__(self) -> int:
        return len(self.lines)

    def table(self, *, newest_first: bool = False) -> pa.Table:
        """The rows as a ``RAW_EVENT_SCHEMA`` table (reversed when the source listed newest
        first). Text no UTF-8 can hold is mended and its row gets a problem (``rows``)."""
        step = -1 if newest_first else 1
        problems = self.problems[::step]
        texts = {name: text_array(v[::step], problems) for name, v in self.columns.items()}
        data = {
            "line": pa.array(self.lines[::step], pa.int64()),
            "instant": pa.nulls(len(self.lines), pa.timestamp("us", tz="UTC")),
            **texts,
            "problem": pa.array(problems, pa.string()),
        }
        return pa.table(
            {name: data[name] for name in RAW_EVENT_SCHEMA.names}, schema=RAW_EVENT_SCHEMA
        )


@dataclass(frozen=True, slots=True)
class EventSite:
    """Where one source record's events go, and what they share: its line, time, device and
    (where the record names them) patient and zone. A record may give several events."""

    events: EventBuilder
    line: int
    time: str | None
    device_id: str | None
    patient_id: str | None = None
    tz: str | None = None

    def add(self, kind: str, subtype: str | None, **values: str | None) -> None:
        self.events.add(
            self.line,
            kind=kind,
            time=self.time,
            device_id=self.device_id,
            patient_id=self.patient_id,
            tz=self.tz,
            subtype=subtype,
            **values,
        )
