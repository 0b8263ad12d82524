"""`glucosestream serve` as a user runs it: a real process on a loopback port."""

from __future__ import annotations

import datetime as dt
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


def test_serve_answers_on_a_real_socket(settings):
    records = [
        {"patient_id": "S1", "time": f"2026-01-01T{h:02d}:00:00Z", "glucose_mg_dl": 120}
        for h in range(24)
    ]
    ingest_records(settings, records)
    assert run_pipeline(settings).status == "published"
    token = create_token(settings.lake, "admin", label="serve test", now=dt.datetime.now(dt.UTC))
    port = _free_port()
    env = {**os.environ, "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET}
    command = [sys.executable, "-m", "glucosestream", "serve", "--port", str(port)]
    log = Path(settings.lake.root).parent / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--lake", settings.lake.root], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError(f"serve did not start: {log.read_text()}") from None
                time.sleep(0.2)
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
        server.terminate()
        server.wait(timeout=10)
