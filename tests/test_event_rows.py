"""The raw event-row contract (formats/event_rows.py) and the canonical event schema."""

from __future__ import annotations

import pyarrow as pa
import pytest

from glucosestream.events import EVENT_AMOUNT, EVENT_KEY, EVENT_KINDS, EVENT_SCHEMA
from glucosestream.formats.event_rows import RAW_EVENT_SCHEMA, EventBuilder, no_events

pytestmark = pytest.mark.fast


def test_builder_keeps_each_value_in_its_column_and_reverses_newest_first() -> None:
    events = EventBuilder()
    events.add(3, kind="bolus", time="2026-01-02T08:00:00", units="4.5", subtype="normal")
    events.add(2, kind="carbs", time="2026-01-02T07:55:00", carbs_g="45", tz="Europe/Lisbon")
    table = events.table(newest_first=True)
    assert table.schema == RAW_EVENT_SCHEMA
    rows = table.to_pylist()
    assert [r["line"] for r in rows] == [2, 3]
    assert rows[0]["carbs_g"] == "45"
    assert rows[0]["units"] is None
    assert rows[0]["tz"] == "Europe/Lisbon"
    assert rows[1]["units"] == "4.5"
    assert rows[1]["subtype"] == "normal"
    assert rows[1]["instant"] is None
    assert rows[1]["problem"] is None


def test_builder_refuses_a_column_the_contract_does_not_have() -> None:
    with pytest.raises(TypeError, match="glucose_mg_dl"):
        EventBuilder().add(1, kind="smbg", time="x", glucose_mg_dl="100")


def test_text_no_utf8_can_hold_becomes_a_problem_not_an_exception() -> None:
    events = EventBuilder()
    events.add(1, kind="note", time="2026-01-02T08:00:00", note="bad \udc80 text")
    row = events.table().to_pylist()[0]
    assert row["problem"] == "text is not valid UTF-8"
    assert "\udc80" not in row["note"]


def test_the_canonical_schema_names_every_amount_and_key_column() -> None:
    assert no_events().num_rows == 0
    names = set(EVENT_SCHEMA.names)
    assert set(EVENT_AMOUNT) <= names
    assert set(EVENT_KEY) <= names
    assert EVENT_SCHEMA.field("ts").type == pa.timestamp("us", tz="UTC")
    assert "bolus" in EVENT_KINDS
    assert "basal" in EVENT_KINDS
    assert "carbs" in EVENT_KINDS
