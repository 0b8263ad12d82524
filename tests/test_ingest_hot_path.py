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
from dataclasses import dataclass

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
