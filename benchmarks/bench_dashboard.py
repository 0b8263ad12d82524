"""Patient page and triage page latency (p50/p95) with N patients x D days of daily metrics.

The lake is built fast by writing synthetic ``results.daily_metrics`` rows straight through the
lake API (``Lakehouse.replace_rows``) and recording them as a published run; no readings are
written, so the patient page's daily traces are empty (its trend charts, sufficiency and audit
record are all exercised). Usage: python benchmarks/bench_dashboard.py [--patients N] [--days D]
Prints JSON; writes it to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from fastapi.testclient import TestClient

from glucosestream.access import hash_token
from glucosestream.app import create_app
from glucosestream.config import LakeSettings, Settings
from glucosestream.lake import PublishedSnapshots, Scope, open_access, open_lakehouse, open_metadata
from glucosestream.metrics import DAILY_METRICS_SCHEMA
from glucosestream.pipeline.table_registry import TABLES


def _daily(patients: int, days: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = patients * days
    keys = np.repeat([f"{i:032x}" for i in rng.integers(0, 2**63, patients)], days)
    start = dt.date(2026, 1, 1)
    mean = np.repeat(rng.normal(150, 25, patients), days) + rng.normal(0, 10, n)
    below70 = np.clip(rng.gamma(1.0, 2.0, n), 0, 30)
    below54 = below70 * rng.uniform(0, 0.4, n)
    above180 = np.clip((mean - 100) * 0.5 + rng.normal(0, 5, n), 0, 100 - below70)
    above250 = above180 * rng.uniform(0, 0.3, n)
    now = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    return pa.table(
        {
            "patient_key": keys,
            "date": pa.array(
                [start + dt.timedelta(days=int(d)) for d in np.tile(np.arange(days), patients)]
            ),
            "tz": ["UTC"] * n,
            "readings": rng.integers(200, 289, n).astype(np.int32),
            "mean_mg_dl": mean,
            "sd_mg_dl": mean * 0.3,
            "cv_pct": np.full(n, 30.0),
            "gmi_pct": 3.31 + 0.02392 * mean,
            "pct_below_54": below54,
            "pct_below_70": below70,
            "pct_70_180": 100 - below70 - above180,
            "pct_above_180": above180,
            "pct_above_250": above250,
            "pct_active": rng.uniform(60, 100, n),
            "run_id": ["bench"] * n,
            "computed_at": [now] * n,
        }
    ).cast(DAILY_METRICS_SCHEMA)


def build(settings: Settings, patients: int, days: int) -> list[str]:
    rows = _daily(patients, days)
    lake = open_lakehouse(settings.lake, TABLES)
    snapshot = lake.replace_rows("daily", [(rows, Scope(everything=True))])
    meta = open_metadata(settings.lake)
    at = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    meta.start_run("bench", at)
    meta.finish_run(
        "bench",
        status="published",
        finished_at=at,
        report={},
        published=PublishedSnapshots("bench", {"daily": snapshot}),
    )
    store = open_access(settings.lake)
    store.add_token(hash_token("gs_bench_admin"), "admin", label="bench", created_at=at)
    return sorted(set(rows["patient_key"].to_pylist()))


def _times(client: TestClient, urls: list[str]) -> dict[str, float]:
    ms = []
    for url in urls:
        t0 = time.perf_counter()
        response = client.get(url)
        ms.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {response.text[:200]}")
    ms.sort()
    return {"n": len(ms), "p50_ms": statistics.median(ms), "p95_ms": ms[int(0.95 * (len(ms) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--lake",
        type=Path,
        help="an existing lake with readings (e.g. from bench_pipeline.py --keep-lake): pages "
        "then also read and chart each patient's readings",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        t0 = time.perf_counter()
        if args.lake:
            settings = Settings(lake=LakeSettings(root=str(args.lake)))
            keys = open_metadata(settings.lake).patient_keys()
            at = dt.datetime.now(dt.UTC)
            open_access(settings.lake).add_token(
                hash_token(f"gs_bench_admin_{at.timestamp()}"),
                "admin",
                label="bench",
                created_at=at,
            )
            token = f"gs_bench_admin_{at.timestamp()}"
        else:
            settings = Settings(lake=LakeSettings(root=str(Path(tmp) / "lake")))
            keys = build(settings, args.patients, args.days)
            token = "gs_bench_admin"
        build_s = time.perf_counter() - t0
        with TestClient(create_app(settings)) as client:
            client.post("/login", data={"token": token})
            t0 = time.perf_counter()
            client.get(f"/patients/{keys[0]}")  # first request: reads and indexes the table
            first_s = time.perf_counter() - t0
            rng = np.random.default_rng(1)
            picks = [keys[i] for i in rng.integers(0, len(keys), args.requests)]
            patient = _times(client, [f"/patients/{k}" for k in picks])
            triage = _times(
                client, ["/"] * (args.requests // 4) + ["/?zone=C"] * (args.requests // 4)
            )
        result = {
            "lake": str(args.lake) if args.lake else "synthetic daily metrics, no readings",
            "patients": len(keys),
            "days": args.days,
            "build_s": build_s,
            "first_request_s": first_s,
            "patient_page": patient,
            "triage_page": triage,
        }
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_dashboard.json").write_text(json.dumps(result, indent=2))
    json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
