"""What makes two events the same event. PURE.

``events.EVENT_KEY`` (patient_key, device_id, kind, subtype, ts) and the amount, the first
non-NULL of ``events.EVENT_AMOUNT``: a bolus of 2 U and one of 3 U at the same second are two
events, as are the two halves of a dual wave, and the same bolus sent twice is one. The identity
holds the subtype as ``subtype_key`` ("" for NULL) and the amount as ``amount`` (-1 for none),
since NULL never matches NULL in a join. The merge keeps one row per identity
(``pipeline.first_arrival``) and the audit checks every incoming event lands
(``checks.check_every_event_lands``).
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from glucosestream.events import EVENT_AMOUNT, EVENT_KEY

__all__ = ["EVENT_IDENTITY", "event_identity"]

EVENT_IDENTITY: Final = (
    *(("subtype_key" if name == "subtype" else name) for name in EVENT_KEY),
    "amount",
)
# The amount of an event with none (a sensor start, a note): no amount is below it (amounts
# are >= 0), and NULL would not match NULL in a join.
_NO_AMOUNT: Final = -1.0


def event_identity(events: pa.Table) -> pa.Table:
    """The events with ``subtype_key`` (the subtype, "" for none) and ``amount`` (the first
    non-NULL of ``EVENT_AMOUNT``, -1 when none)."""
    amounts = [events[name] for name in EVENT_AMOUNT]
    amount = pc.coalesce(*amounts, pa.scalar(_NO_AMOUNT, pa.float64()))
    subtype = pc.coalesce(events["subtype"], pa.scalar("", pa.string()))
    return events.append_column("subtype_key", subtype).append_column("amount", amount)
