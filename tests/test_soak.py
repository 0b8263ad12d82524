"""A bounded soak: the real server on a loopback port, several uploaders posting concurrently
(readings and Nightscout entries, each with its own token, one by Nightscout's api-secret
header; some bad readings, some repeats) for about a minute while ``glucosestream run`` is
started and SIGKILLed at random points; then one clean run and the reconciliation: every reading
answered "accepted" is published exactly once, nothing else is published, and no request got a
5xx.

``GLUCOSESTREAM_SOAK_S`` sets the duration (default 60 s); the loops are also bounded in count.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from glucosestream.access import create_token
from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest.identity import patient_key
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES

from .conftest import SECRET, VERIFICATION_COUNTS
from .soak_uploader import RunKiller, Uploader

pytestmark = pytest.mark.soak

SOAK_S = float(os.environ.get("GLUCOSESTREAM_SOAK_S", "60"))
READINGS_PATIENTS = ("SOAK-1", "SOAK-2", "SOAK-3", "SOAK-4")
ENTRIES_PATIENTS = ("SOAK-NS-1", "SOAK-NS-2")
MAX_REQUESTS = 2_000  # per uploader, whatever the duration
MAX_RUNS = 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(lake: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    # --no-pipeline: the RunKiller is this soak's only source of runs; serve's own scheduler
    # would hold the run lock now and then and the killer's runs would find it taken
    command = [sys.executable, "-m", "glucosestream", "serve", "--no-pipeline", "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--lake", str(lake)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise AssertionError(f"serve did not start: {log.read_text()}")
        time.sleep(0.2)


def _published(settings: Settings, patients: tuple[str, ...]) -> dict[tuple[str, int], list[float]]:
    """The published glucose values at each (patient, epoch second)."""
    published = open_metadata(settings.lake).published()
    assert published is not None
    keys = {patient_key(SECRET.encode(), p): p for p in patients}
    table = open_lakehouse(settings.lake, TABLES).read_readings(published.of("readings"), keys)
    out: dict[tuple[str, int], list[float]] = {}
    for key, ts, mg_dl in zip(
        table["patient_key"].to_pylist(),
        table["ts"].to_pylist(),
        table["glucose_mg_dl"].to_pylist(),
        strict=True,
    ):
        out.setdefault((keys[key], int(ts.timestamp())), []).append(mg_dl)
    return out


def test_concurrent_uploads_with_killed_runs_publish_each_accepted_reading_once(tmp_path):
    lake = tmp_path / "lake"
    settings = Settings(
        lake=LakeSettings(root=str(lake)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    tokens = {
        p: create_token(
            settings.lake,
            "uploader",
            label=f"soak {p}",
            now=now,
            patient_keys=[patient_key(SECRET.encode(), p)],
        )
        for p in READINGS_PATIENTS + ENTRIES_PATIENTS
    }
    env = {**os.environ, "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET}
    server, base = _start_server(lake, env, tmp_path / "serve.log")
    deadline = time.monotonic() + SOAK_S
    start = now - dt.timedelta(days=60)  # each uploader walks forward 5 minutes a reading
    uploaders = [
        Uploader(
            base_url=base,
            token=tokens[p],
            patient_id=p,
            kind="entries" if p in ENTRIES_PATIENTS else "readings",
            start=start,
            end=now,
            seed=i,
            deadline=deadline,
            max_requests=MAX_REQUESTS,
            api_secret=p == ENTRIES_PATIENTS[-1],
        )
        for i, p in enumerate(READINGS_PATIENTS + ENTRIES_PATIENTS)
    ]
    killer = RunKiller(lake=lake, env=env, seed=99, max_runs=MAX_RUNS)
    try:
        killer.start()
        for uploader in uploaders:
            uploader.start()
        for uploader in uploaders:
            uploader.join(timeout=SOAK_S + 300)
            assert not uploader.is_alive(), f"{uploader.name} did not finish"
        killer.stop.set()
        killer.join(timeout=180)
        assert not killer.is_alive()
    finally:
        killer.stop.set()
        server.terminate()
        server.wait(timeout=30)

    started = time.monotonic()
    report = run_pipeline(settings)  # the clean run after the storm
    final_run_s = time.monotonic() - started
    assert report.status in ("published", "noop"), report

    tallies = [u.tally for u in uploaders]
    statuses = sum((t.statuses for t in tallies), Counter())
    requests = sum(t.requests for t in tallies)
    accepted = {(t.patient_id, at): mg_dl for t in tallies for at, mg_dl in t.accepted.items()}
    published = _published(settings, READINGS_PATIENTS + ENTRIES_PATIENTS)
    counts = {
        "soak requests": requests,
        "soak readings answered accepted": len(accepted),
        "soak readings answered quarantined": sum(t.quarantined for t in tallies),
        "soak retried bodies": sum(t.repeats for t in tallies),
        "soak runs started": killer.started,
        "soak runs SIGKILLed": killer.kills,
        "soak runs finished": killer.finished,
        "soak readings published": sum(len(v) for v in published.values()),
    }
    VERIFICATION_COUNTS.update(counts)
    print(f"\nsoak: {counts} statuses={dict(statuses)} final run {final_run_s:.1f} s")  # noqa: T201

    assert not [e for t in tallies for e in t.transport_errors]
    assert not any(status >= 500 for status in statuses), statuses
    assert not [e for t in tallies for e in t.wrong_answers]
    assert not killer.failed, killer.failed[:3]
    assert killer.kills > 0
    assert requests > 0
    assert accepted
    twice = {k: v for k, v in published.items() if len(v) > 1}
    assert not twice, f"{len(twice)} readings published more than once"
    missing = accepted.keys() - published.keys()
    assert not missing, f"{len(missing)} accepted readings were not published"
    extra = published.keys() - accepted.keys()
    assert not extra, f"{len(extra)} published readings were never answered accepted"
    changed = [k for k, mg_dl in accepted.items() if published[k] != [mg_dl]]
    assert not changed, f"{len(changed)} readings published with another glucose value"
