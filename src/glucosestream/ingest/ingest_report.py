"""What ingest answers for one input (a file, a request, a part of a group batch): how its
readings and events were accounted for (``IngestReport``), and its quarantined rows
(``PartResult``). PURE."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pyarrow as pa

from glucosestream.ingest.event_batch import EventCounts

__all__ = ["IngestReport", "PartResult"]


@dataclass(frozen=True, slots=True)
class IngestReport:
    source: str
    format: str
    received: int
    accepted: int
    duplicates: int
    quarantined: int
    patients: int
    top_reasons: tuple[tuple[str, int], ...]
    batch_id: str | None
    already_ingested_as: str | None
    duration_ms: int
    batch_ids: tuple[str, ...] = ()  # every batch the input landed in (a large file: several)
    # Events (insulin, carbs, ...): received = accepted + duplicates + quarantined + notes
    # dropped (a note whose text is not kept and that has no subtype: nothing left to keep).
    events_received: int = 0
    events_accepted: int = 0
    events_duplicates: int = 0
    events_quarantined: int = 0
    events_notes_dropped: int = 0
    events_top_reasons: tuple[tuple[str, int], ...] = ()
    devicestatus: int = 0  # Nightscout devicestatus documents kept (raw, never curated)

    def with_events(self, counts: EventCounts) -> IngestReport:
        """This report with ``counts`` as its events' accounting."""
        return dataclasses.replace(
            self,
            events_received=counts.received,
            events_accepted=counts.accepted,
            events_duplicates=counts.duplicates,
            events_quarantined=counts.quarantined,
            events_notes_dropped=counts.notes_dropped,
            events_top_reasons=counts.top_reasons,
        )

    def event_counts(self) -> EventCounts:
        """The events' accounting of this report."""
        return EventCounts(
            self.events_received,
            self.events_accepted,
            self.events_duplicates,
            self.events_quarantined,
            self.events_notes_dropped,
            self.events_top_reasons,
        )


@dataclass(frozen=True, slots=True)
class PartResult:
    """How one part was accounted for, and its quarantined rows and events (line = index in
    the part + 1)."""

    report: IngestReport
    quarantine: pa.Table
    event_quarantine: pa.Table | None = None
