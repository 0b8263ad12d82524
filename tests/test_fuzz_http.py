"""Fuzzing of both HTTP ingest bodies: ``POST /v1/readings`` (``{"readings": [...]}``) and the
Nightscout ``POST /api/v1/entries``, through ``RequestParser.readings_part``/``entries_part``
(many inputs), through ingest's checks of the parts they make, and end to end through the
in-process ASGI app (fewer: each accepted request commits a batch).

Inputs are valid bodies (synth's readings and Nightscout entries) mutated with hostile values,
types, nesting, bytes and structure, and random bytes. The oracle: a body is parsed or refused
with the project's own error (never another exception); every posted reading is accounted for;
over HTTP, no 5xx, every 4xx in the one error shape, and a 200 whose counts add up.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.config import EngineSettings, IngestSettings, LakeSettings, Settings
from glucosestream.engines import DuckDBEngine
from glucosestream.errors import GlucoseStreamError
from glucosestream.ingest.batch import Part
from glucosestream.ingest.identity import patient_key
from glucosestream.ingest.request_parts import RequestParser, parse_waiting
from glucosestream.lake import open_access
from glucosestream.request_credentials import bearer_principal
from glucosestream.synth import CohortSpec, write_cohort

from .conftest import SECRET, VERIFICATION_COUNTS
from .hostile import FUZZ, byte_mutation, json_mutation
from .test_fuzz_formats import assert_raw_rows, check_accounting

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.filterwarnings(
        "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
    ),
]

NOW = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
SPEC = CohortSpec(1, 1, "t1d", 15, 11, dt.date(2026, 3, 28))
KEEP = 8
PATIENT = "P00001"  # synth's first patient: the uploader token is bound to it


def _settings(root: Path) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(root / "lake")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )


@pytest.fixture(scope="module")
def bodies(tmp_path_factory) -> dict[str, Any]:
    """A valid body of each kind: synth readings as ``{"readings": [...]}``, its Nightscout
    entries as an array."""
    folder = tmp_path_factory.mktemp("bodies")
    write_cohort(SPEC, folder / "c.jsonl", "jsonl")
    records = [json.loads(line) for line in (folder / "c.jsonl").read_text().splitlines()]
    readings = [
        {k: r[k] for k in ("patient_id", "device_id", "time", "glucose_mg_dl", "tz")}
        for r in records[:KEEP]
    ]
    write_cohort(SPEC, folder / "ns", "nightscout")
    entries_file = next(p for p in (folder / "ns").iterdir() if p.name.endswith("_entries.json"))
    entries = json.loads(entries_file.read_text())[:KEEP]
    return {"readings": {"readings": readings}, "entries": entries}


def _tokens(settings_) -> dict[str, str]:
    """An admin token and an uploader token bound to PATIENT."""
    return {
        "admin": create_token(settings_.lake, "admin", label="fuzz-a", now=NOW),
        "uploader": create_token(
            settings_.lake,
            "uploader",
            label="fuzz-u",
            now=NOW,
            patient_keys=[patient_key(SECRET.encode(), PATIENT)],
        ),
    }


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    settings_ = _settings(tmp_path_factory.mktemp("service"))
    tokens = _tokens(settings_)
    svc = RequestParser(settings_)
    store = open_access(settings_.lake)
    principals = {role: bearer_principal(store, f"Bearer {t}") for role, t in tokens.items()}
    engine = DuckDBEngine(EngineSettings())
    yield svc, principals, settings_, engine
    engine.close()


@st.composite
def body(draw: st.DrawFn, document: Any) -> bytes:
    """A mutated body: JSON values edited (perhaps then bytes), or random bytes (1 in 8)."""
    if draw(st.integers(0, 7)) == 0:
        return draw(st.binary(max_size=512))
    data = draw(json_mutation(document))
    if draw(st.booleans()):
        data = draw(byte_mutation(data))
    return data


def _items(data: bytes, key: str | None) -> int | None:
    """How many items the body posts, if it is JSON of the expected shape (else None)."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if key is not None:
        document = document.get(key) if isinstance(document, dict) else None
    elif isinstance(document, dict):
        document = [document]
    return len(document) if isinstance(document, list) else None


def _part(result: Part | tuple[Part, Any]) -> Part:
    """The part a body makes, its rows made as the group commit makes them (a small Nightscout
    body's entries wait for the group's parse: ``request_parts.parse_waiting``)."""
    part = result[0] if isinstance(result, tuple) else result
    return parse_waiting([part])[0]


def parse_or_refuse(service, kind: str, role: str, data: bytes) -> Part | None:
    """The oracle of the parsing step: a part of raw rows, or the project's own error."""
    svc, principals, *_ = service
    parse = svc.readings_part if kind == "readings" else svc.entries_part
    try:
        part = _part(parse(principals[role], data))
    except GlucoseStreamError:
        return None
    assert_raw_rows(part.parsed.rows)
    items = _items(data, "readings" if kind == "readings" else None)
    if items is not None:  # every posted item is a raw row, or (Nightscout) a skipped entry
        assert part.parsed.rows.num_rows + part.parsed.skipped == items
    return part


@pytest.mark.parametrize(
    ("kind", "role"),
    # entries need a token bound to one patient (admin is refused before the body is read)
    [("readings", "admin"), ("readings", "uploader"), ("entries", "uploader")],
)
@settings(FUZZ, max_examples=1000)
@given(data=st.data())
def test_bodies_are_parsed_or_refused(bodies, service, kind, role, data):
    content = data.draw(body(bodies[kind]), label="body")
    VERIFICATION_COUNTS[f"fuzz inputs http, {kind} parsed"] += 1
    parse_or_refuse(service, kind, role, content)


@pytest.mark.parametrize("kind", ["readings", "entries"])
@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_parsed_bodies_pass_ingest_checks_row_by_row(bodies, service, kind, data):
    content = data.draw(body(bodies[kind]), label="body")
    VERIFICATION_COUNTS[f"fuzz inputs http, {kind} through ingest checks"] += 1
    part = parse_or_refuse(service, kind, "admin" if kind == "readings" else "uploader", content)
    if part is not None:
        _, _, settings_, engine = service
        check_accounting(settings_, engine, part.parsed, part.fmt)


# end to end, in process -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings_ = _settings(tmp_path_factory.mktemp("asgi"))
    tokens = _tokens(settings_)
    with TestClient(create_app(settings_), raise_server_exceptions=False) as c:
        yield c, tokens


def assert_answer(response, posted: int | None) -> None:
    """No 5xx; a 4xx in the one error shape; a 200 whose accounting adds up."""
    assert response.status_code < 500, response.text[:500]
    payload = response.json()
    if response.status_code >= 400:
        assert payload["ok"] is False
        assert payload["status"] == response.status_code
        assert payload["errors"]
        assert payload["error"] == "; ".join(payload["errors"])
        return
    assert response.status_code == 200
    if isinstance(payload, dict) and "received" in payload:
        counts = payload
    else:  # Nightscout answers with the entries; the accounting is in headers
        counts = {
            name: int(response.headers[f"x-ingest-{name}"])
            for name in ("received", "accepted", "duplicates", "quarantined")
        }
    assert counts["received"] == counts["accepted"] + counts["duplicates"] + counts["quarantined"]
    if posted is not None and "skipped" not in counts:
        assert counts["received"] <= posted


@pytest.mark.parametrize("kind", ["readings", "entries"])
@settings(FUZZ, max_examples=100)
@given(data=st.data())
def test_posted_bodies_get_an_answer_not_a_server_error(bodies, client, kind, data):
    http, tokens = client
    content = data.draw(body(bodies[kind]), label="body")
    role = data.draw(st.sampled_from(["admin", "uploader"]), label="role")
    if kind == "entries":
        role = "uploader"
    VERIFICATION_COUNTS[f"fuzz inputs http, {kind} posted to the app"] += 1
    path = "/v1/readings" if kind == "readings" else "/api/v1/entries"
    response = http.post(
        path,
        content=content,
        headers={"Authorization": f"Bearer {tokens[role]}", "Content-Type": "application/json"},
    )
    assert_answer(response, _items(content, "readings" if kind == "readings" else None))
