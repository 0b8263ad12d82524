"""The hot path of an uploader's POST: what was cut from it keeps its behaviour.

The group commit's leader is answered when its own group is durable, not when the queue is
empty; a token's last-use bookkeeping failing never fails the request of a valid token (and a
revoked token is still refused on the next request).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from fastapi.testclient import TestClient

from glucosestream.access import create_token
from glucosestream.app import create_app
from glucosestream.errors import LakeError
from glucosestream.ingest.asgi import commit
from glucosestream.ingest.group_commit import GroupCommitter
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import TokenStore, open_access

from .conftest import SECRET

START_MS = 1_775_421_029_000  # 2026-04-05T20:30:29Z


@dataclass
class _Service:
    """What ``asgi.commit`` uses of an ingest service: its committer."""

    committer: GroupCommitter[str, str]


def test_the_leader_is_answered_when_its_group_is_durable_not_when_the_queue_is_empty():
    first_flushing = threading.Event()
    release_first = threading.Event()
    release_second = threading.Event()
    flushed: list[list[str]] = []

    def flush(items: Sequence[str]) -> list[str | Exception]:
        flushed.append(list(items))
        if len(flushed) == 1:
            first_flushing.set()
            assert release_first.wait(10)
        else:
            assert release_second.wait(10)
        return [f"done {item}" for item in items]

    service = _Service(GroupCommitter(flush, max_items=64))

    async def scenario() -> tuple[str, bool, str]:
        leader = asyncio.ensure_future(commit(service, "a"))  # type: ignore[arg-type]
        await asyncio.get_running_loop().run_in_executor(None, first_flushing.wait, 10)
        follower = asyncio.ensure_future(commit(service, "b"))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # queued behind the running flush
        release_first.set()
        answer = await asyncio.wait_for(leader, 10)
        follower_done = follower.done()  # its group is still flushing
        release_second.set()
        return answer, follower_done, await asyncio.wait_for(follower, 10)

    answer, follower_done, follower_answer = asyncio.run(scenario())
    assert answer == "done a"
    assert not follower_done
    assert follower_answer == "done b"
    assert flushed == [["a"], ["b"]]


def test_a_failing_group_is_answered_with_its_failure_and_the_next_leader_drains():
    calls: list[list[str]] = []

    def flush(items: Sequence[str]) -> list[str | Exception]:
        calls.append(list(items))
        if len(calls) == 1:
            raise LakeError("metadata store failed: down")
        return [f"done {item}" for item in items]

    service = _Service(GroupCommitter(flush, max_items=64))

    async def scenario() -> str:
        with pytest.raises(LakeError, match="down"):
            await commit(service, "a")  # type: ignore[arg-type]
        return await commit(service, "b")  # type: ignore[arg-type]

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == "done b"


def _entry(i: int) -> list[dict[str, object]]:
    return [{"type": "sgv", "sgv": 100 + i, "date": START_MS + i * 300_000}]


def _sha1(token: str) -> str:
    return hashlib.sha1(token.encode()).hexdigest()


def test_a_busy_store_for_last_use_fails_no_request_and_revocation_is_seen_next(
    settings, monkeypatch, caplog
):
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    key = patient_key(SECRET.encode(), "N1")
    token = create_token(settings.lake, "uploader", label="u", now=now, patient_keys=[key])

    def busy(self: TokenStore, record: object, *, at: dt.datetime) -> None:
        raise LakeError("metadata store failed: OperationalError: database is locked [x]")

    monkeypatch.setattr(TokenStore, "mark_used", busy)
    headers = {"api-secret": _sha1(token)}
    with TestClient(create_app(settings)) as client:
        with caplog.at_level(logging.WARNING, logger="glucosestream.access"):
            posted = client.post("/api/v1/entries", json=_entry(0), headers=headers)
        assert posted.status_code == 200, posted.text
        assert posted.headers["x-ingest-accepted"] == "1"
        assert "token last use not recorded" in caplog.text
        assert "[x]" not in caplog.text  # the statement's text (its parameters) is not logged
        with_token = client.post(f"/api/v1/entries?token={token}", json=_entry(1))
        assert with_token.status_code == 200, with_token.text

        token_id = hashlib.sha256(token.encode()).hexdigest()[:12]
        open_access(settings.lake).tokens.revoke_token(token_id, at=now)
        refused = client.post("/api/v1/entries", json=_entry(2), headers=headers)
        assert refused.status_code == 401, refused.text
        assert "revoked" in refused.json()["error"]


def test_a_small_and_a_large_body_answer_the_same_echo_and_accounting(settings):
    """A small body is parsed in the event loop, a large one in a worker thread: same answer."""
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    key = patient_key(SECRET.encode(), "N1")
    token = create_token(settings.lake, "uploader", label="u", now=now, patient_keys=[key])
    headers = {"api-secret": _sha1(token)}
    small = [{"type": "sgv", "sgv": 100, "date": START_MS, "x": float("nan")}]
    large = [
        {"type": "sgv", "sgv": 100 + i % 50, "date": START_MS + (i + 1) * 300_000, "pad": "p" * 40}
        for i in range(4_000)
    ]
    with TestClient(create_app(settings)) as client:
        answers = [
            client.post(
                "/api/v1/entries",
                content=json.dumps(body).encode(),
                headers={**headers, "content-type": "application/json"},
            )
            for body in (small, large)
        ]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text + answers[1].text
    assert answers[0].json() == [{**small[0], "x": None}]  # NaN is echoed as null
    assert answers[1].json() == large
    assert [a.headers["x-ingest-accepted"] for a in answers] == ["1", "4000"]


def test_parts_checked_together_are_accounted_as_each_alone(settings):
    """Parts alike are pseudonymised as one table and accounted from one pass over the batch:
    each part's report, quarantine and readings are what it gets checked on its own."""
    from glucosestream.access import Principal
    from glucosestream.ingest.batch import build_batch, check_parts
    from glucosestream.ingest.request_parts import RequestParser, parse_waiting

    parser = RequestParser(settings)
    keys = [patient_key(SECRET.encode(), f"P{i}") for i in range(3)]
    bodies: list[tuple[str, object]] = [
        (keys[0], [{"type": "sgv", "sgv": 101, "date": START_MS, "device": "a"}]),
        (keys[1], [{"type": "sgv", "sgv": 102, "date": START_MS, "direction": "Flat"}]),
        (keys[0], [{"type": "sgv", "sgv": 5, "date": START_MS + 300_000}]),  # quarantined
        ("London", [{"type": "sgv", "sgv": 99, "date": START_MS + 900_000}]),  # not alike: zone
        (keys[2], [{"type": "sgv", "sgv": 140, "date": START_MS}] * 2),  # a repeat inside
        (keys[1], [{"type": "sgv", "sgv": 103, "date": START_MS + 600_000, "device": "b"}]),
    ]
    parts = []
    for owner, body in bodies:
        raw = json.dumps(body).encode()
        bound = keys[2] if owner == "London" else owner
        uploader = Principal("u", "uploader", frozenset({bound}), None, "u")
        part = parser.entries_part(uploader, raw)[0]
        parts.append(replace(part, tz="Europe/London") if owner == "London" else part)
    assert all(p.entries is not None and p.parsed.rows.num_rows == 0 for p in parts)
    parts = parse_waiting(parts)  # the group commit's one parse of the waiting entries

    def clock() -> dt.datetime:
        return dt.datetime(2026, 4, 6, tzinfo=dt.UTC)

    together = build_batch(check_parts(settings, parts, engine=None, now=clock), parts)
    alone = [build_batch(check_parts(settings, [p], engine=None, now=clock), [p]) for p in parts]
    fields = ("received", "accepted", "duplicates", "quarantined", "patients", "top_reasons")
    for joint, single in zip(together.results, alone, strict=True):
        (own,) = single.results
        assert [getattr(joint.report, f) for f in fields] == [
            getattr(own.report, f) for f in fields
        ]
        assert joint.quarantine.to_pylist() == own.quarantine.to_pylist()
    assert [r.report.quarantined for r in together.results] == [0, 0, 1, 0, 0, 0]
    assert [r.report.duplicates for r in together.results] == [0, 0, 0, 0, 1, 0]
    columns = ["patient_key", "device_id", "ts", "glucose_mg_dl", "tz", "direction"]
    joint_rows = together.readings.select(columns).to_pylist()
    single_rows = [row for b in alone for row in b.readings.select(columns).to_pylist()]
    assert joint_rows == single_rows
    assert together.readings["tz"].to_pylist().count("Europe/London") == 1


def test_waiting_entries_are_parsed_by_the_group_as_each_request_alone(settings):
    """Small bodies of sgv entries wait for the group's one parse; other bodies are parsed when
    they arrive. Either way each part holds the rows and lines its own parse gives."""
    from glucosestream.access import Principal
    from glucosestream.formats.nightscout import read_nightscout_entries
    from glucosestream.ingest.request_parts import WAITING_ENTRIES, RequestParser, parse_waiting

    parser = RequestParser(settings)
    uploader = Principal("u", "uploader", frozenset({"k" * 32}), None, "u")
    sgv = {"type": "sgv", "sgv": 120, "date": START_MS, "device": "d", "direction": "Flat"}
    bodies = [
        [sgv],
        [{**sgv, "sgv": "x"}, {**sgv, "date": START_MS + 300_000, "trend": 4}],  # waits
        [{"type": "mbg", "mbg": 100, "date": START_MS}, sgv],  # not all sgv: parsed at once
        [{**sgv, "date": START_MS + i * 300_000} for i in range(WAITING_ENTRIES + 1)],  # too many
        [{**sgv, "date": "not a date", "sgv": None}],  # waits: quarantined later, not refused
    ]
    parts = [parser.entries_part(uploader, json.dumps(b).encode())[0] for b in bodies]
    assert [p.entries is not None for p in parts] == [True, True, False, False, True]
    parsed = parse_waiting(parts)
    for body, part in zip(bodies, parsed, strict=True):
        own = read_nightscout_entries(body, source="request")
        assert part.entries is None
        assert part.parsed.rows.to_pylist() == own.rows.to_pylist()
        assert part.parsed.skipped == own.skipped
        assert part.sha256 == parts[bodies.index(body)].sha256
