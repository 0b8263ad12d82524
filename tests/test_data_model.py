"""docs/data-model.md's Mermaid diagram lists exactly the columns of the real tables."""

from __future__ import annotations

import re
from pathlib import Path

from glucosestream.lake.metadata_schema import METADATA
from glucosestream.pipeline import table_registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "data-model.md"


def diagram_entities() -> dict[str, list[str]]:
    text = DOC.read_text()
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    entities = {}
    for name, body in re.findall(r"^\s*(\w+) \{\n(.*?)^\s*\}", block, re.S | re.M):
        entities[name] = [line.split()[1] for line in body.strip().splitlines()]
    return entities


def test_diagram_matches_the_real_schemas():
    real = {
        **{spec.identifier[1]: spec.schema.names for spec in table_registry.TABLES},
        **{t.name: [c.name for c in t.columns] for t in METADATA.sorted_tables},
    }
    assert diagram_entities() == real


def test_every_relation_names_known_entities():
    block = DOC.read_text().split("```mermaid", 1)[1].split("```", 1)[0]
    entities = set(diagram_entities())
    for left, right in re.findall(r"^\s*(\w+) \S+ (\w+) :", block, re.M):
        assert {left, right} <= entities
