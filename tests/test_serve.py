"""`glucosestream serve` as a user runs it: a real process on a loopback port."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from glucosestream.access import create_token
from glucosestream.ingest import ingest_records
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import open_metadata
from glucosestream.pipeline import run_pipeline

from .conftest import SECRET


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


OPENER = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())


def _get(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    origin = {"Origin": f"{parts.scheme}://{parts.netloc}"}  # a form post comes from this site
    request = urllib.request.Request(url, data=data, headers=origin if data else {})
    with OPENER.open(request, timeout=5) as response:
        return response.status, response.read()


def _start_serve(settings, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """`glucosestream serve` on a free loopback port, once it answers /healthz."""
    port = _free_port()
    env = {**os.environ, "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET, **env}
    command = [sys.executable, "-m", "glucosestream", "serve", "--port", str(port), *args]
    log = Path(settings.lake.root).parent / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--lake", settings.lake.root], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if _get(f"{base}/healthz")[0] == 200:
                return server, base
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError(f"serve did not start: {log.read_text()}") from None
            time.sleep(0.2)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(timeout=30)


def test_serve_answers_on_a_real_socket(settings):
    records = [
        {"patient_id": "S1", "time": f"2026-01-01T{h:02d}:00:00Z", "glucose_mg_dl": 120}
        for h in range(24)
    ]
    ingest_records(settings, records)
    assert run_pipeline(settings).status == "published"
    token = create_token(settings.lake, "admin", label="serve test", now=dt.datetime.now(dt.UTC))
    server, base = _start_serve(settings)
    try:
        key = patient_key(SECRET.encode(), "S1")
        status, page = _get(f"{base}/patients/{key}")
        assert b"chart-mean" not in page  # the page asks for a login first
        _get(f"{base}/login", data=urllib.parse.urlencode({"token": token}).encode())
        status, page = _get(f"{base}/patients/{key}")
        assert status == 200
        assert b"chart-mean" in page
        status, script = _get(f"{base}/static/plotly.min.js")
        assert status == 200
        assert len(script) > 1_000_000
    finally:
        _stop(server)


def _ingest_pending(settings) -> str:
    records = [
        {"patient_id": "S2", "time": f"2026-01-01T{h:02d}:00:00Z", "glucose_mg_dl": 100 + h}
        for h in range(6)
    ]
    return ingest_records(settings, records).batch_id


def test_serve_publishes_pending_batches_by_itself(settings):
    batch_id = _ingest_pending(settings)
    server, _ = _start_serve(settings)
    meta = open_metadata(settings.lake)
    try:
        deadline = time.monotonic() + 60
        while not _published_runs(meta) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        _stop(server)
    [run_id] = _published_runs(meta)
    assert meta.run_batch_ids(run_id) == [batch_id]


def _published_runs(meta) -> list[str]:
    return [r["run_id"] for r in meta.run_history() if r["status"] == "published"]


def test_serve_no_pipeline_starts_no_runs(settings):
    _ingest_pending(settings)
    server, base = _start_serve(settings, "--no-pipeline")
    try:
        time.sleep(3)  # a scheduler would have started its first run at once
        assert _get(f"{base}/healthz")[0] == 200
    finally:
        _stop(server)
    assert open_metadata(settings.lake).run_history() == []


def test_an_uploader_token_registers_its_patients_for_webhooks(cli, settings):
    import glucosestream.cli.alerts  # noqa: F401 - registers `alerts` on main
    from glucosestream.cli import main

    Path(settings.lake.root).mkdir(parents=True)  # a new lake (token create needs one)
    env = {
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE": settings.lake.root,
    }
    made = cli.invoke(main, ["token", "create", "--role", "uploader", "--patient", "P7"], env=env)
    assert made.exit_code == 0, made.output
    key = patient_key(SECRET.encode(), "P7")
    assert open_metadata(settings.lake).patient_keys() == [key]  # before any reading arrives
    added = cli.invoke(
        main, ["alerts", "webhook", "add", "https://x.example/h", "--patient", "P7"], env=env
    )
    assert added.exit_code == 0, added.output


def test_serve_debounces_a_burst_of_uploads_into_few_runs(settings):
    key = patient_key(SECRET.encode(), "B1")
    now = dt.datetime.now(dt.UTC)
    token = create_token(settings.lake, "uploader", label="burst", now=now, patient_keys=[key])
    server, base = _start_serve(settings, GLUCOSESTREAM_PIPELINE__MIN_INTERVAL="2")
    meta = open_metadata(settings.lake)
    try:
        _wait_for(lambda: meta.run_history(1), "serve's first run")
        burst_at = dt.datetime.now(dt.UTC)
        for n in range(20):
            at = (now - dt.timedelta(minutes=60 - n)).isoformat()
            body = {"readings": [{"patient_id": "B1", "time": at, "glucose_mg_dl": 100 + n}]}
            request = urllib.request.Request(
                f"{base}/v1/readings",
                data=json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status in (200, 201, 202)
        _wait_for(lambda: not meta.pending_batch_ids(), "the burst published")
    finally:
        _stop(server)
    runs = [r for r in meta.run_history(50) if r["run_id"].startswith("run-")]
    after = [r for r in runs if _aware(r["started_at"]) >= burst_at]
    assert 1 <= len(after) <= 3  # 20 uploads, not 20 runs
    published = sum(r["report"]["readings_new"] for r in after if r["status"] == "published")
    assert published == 20


def _aware(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
