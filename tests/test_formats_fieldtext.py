"""Every JSON reader writes a field's value as text the same way (``jsontext.field_text``)."""

from __future__ import annotations

import json

from glucosestream.formats.jsontext import field_text
from glucosestream.formats.nightscout import read_nightscout_entries


def test_field_text_writes_each_kind_of_json_value() -> None:
    assert field_text(None) is None
    assert field_text("abc") == "abc"
    assert field_text(120) == "120"
    assert field_text(5.5) == "5.5"
    assert field_text({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert field_text([1]) == "[1]"


def test_field_text_names_a_value_too_deep_to_write() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(5000):
        child: list[object] = []
        node.append(child)
        node = child
    assert field_text(deep) == "(a nested value too deep to write)"


def test_a_nightscout_object_value_arrives_as_json_text_not_python_repr() -> None:
    entry = {"type": "sgv", "sgv": {"mg": 120}, "date": 1_700_000_000_000, "device": ["a"]}
    parsed = read_nightscout_entries([entry], source="test")
    row = parsed.rows.to_pylist()[0]
    assert json.loads(row["glucose"]) == {"mg": 120}
    assert json.loads(row["device_id"]) == ["a"]


def test_a_nightscout_direction_that_is_no_name_is_passed_on_as_nothing_or_text() -> None:
    """Issue 17: a direction is passed on as text only when it is text (ingest then keeps it
    only when it is a Nightscout name); an object, a number or a boolean is no direction, and
    no entry is refused for it. A file without any direction has no trend columns."""
    entries = [
        {"type": "sgv", "sgv": 100, "date": 1775421029000, "direction": {"x": 1}},
        {"type": "sgv", "sgv": 101, "date": 1775421329000, "direction": 3},
        {"type": "sgv", "sgv": 102, "date": 1775421629000, "direction": True, "trend": 5.0},
        {"type": "sgv", "sgv": 103, "date": 1775421929000, "direction": "Up-ish"},
        {"type": "sgv", "sgv": 104, "date": 1775422229000, "trend": "4"},
    ]
    rows = read_nightscout_entries(entries, source="test").rows
    assert rows["direction"].to_pylist() == [None, None, "FortyFiveDown", "Up-ish", None]
    assert rows["problem"].to_pylist() == [None] * 5
    plain = read_nightscout_entries([{"sgv": 100, "date": 1775421029000}], source="test").rows
    assert "direction" not in plain.column_names
