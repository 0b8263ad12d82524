"""HTTP ingest throughput: concurrent clients post 1,000-reading batches to a real uvicorn server.

Starts ``uvicorn`` on 127.0.0.1 (a free port) over a temporary lake, makes an uploader token,
then ``--clients`` asyncio clients post ``--requests`` bodies in total (bounded) and the script
stops the server. Reports readings/s (acknowledged = durable in the raw zone) and p50/p99
request latency as JSON on stdout and in benchmarks/results/. Target: >= 100,000 readings/s.

    .venv/bin/python benchmarks/bench_http.py --requests 200 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from glucosestream.access import create_token
from glucosestream.config import LakeSettings
from glucosestream.ingest.identity import patient_key

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def bodies(n_requests: int, batch: int, patients: int) -> list[bytes]:
    # readings end an hour before now: ingest quarantines any dated after receipt + 10 minutes
    span = dt.timedelta(minutes=5 * n_requests * batch)
    start = (dt.datetime.now(dt.UTC) - span - dt.timedelta(hours=1)).replace(microsecond=0)
    out = []
    for r in range(n_requests):
        patient = f"B{r % patients}"
        rows = [
            {
                "patient_id": patient,
                "device_id": "dev",
                "time": (start + dt.timedelta(minutes=5 * (r * batch + i))).isoformat(),
                "glucose_mg_dl": 80 + (r + i) % 150,
            }
            for i in range(batch)
        ]
        out.append(json.dumps({"readings": rows}).encode())
    return out


async def post_all(url: str, token: str, payloads: list[bytes], clients: int) -> list[float]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(clients)))
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), to tell work from waiting."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_up(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--patients", type=int, default=10)
    args = parser.parse_args()
    lake = Path(tempfile.mkdtemp(prefix="gs-bench-http-")) / "lake"
    keys = [patient_key(SECRET.encode(), f"B{i}") for i in range(args.patients)]
    token = create_token(
        LakeSettings(root=str(lake)),
        "uploader",
        label="bench",
        now=dt.datetime.now(dt.UTC),
        patient_keys=keys,
    )
    port = free_port()
    env = {
        **os.environ,
        "GLUCOSESTREAM_LAKE__ROOT": str(lake),
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
    }
    code = (
        "import uvicorn; from glucosestream.app import create_app; "
        "from glucosestream.config import Settings; "
        f"uvicorn.run(create_app(Settings.from_env()), host='127.0.0.1', port={port}, "
        "log_level='warning')"
    )
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        wait_up(port)
        payloads = bodies(args.requests, args.batch, args.patients)
        url = f"http://127.0.0.1:{port}/v1/readings"
        asyncio.run(post_all(url, token, payloads[: max(1, args.clients)], args.clients))  # warm
        server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
        started = time.perf_counter()
        latencies = asyncio.run(post_all(url, token, payloads[args.clients :], args.clients))
        elapsed = time.perf_counter() - started
        server_cpu = cpu_seconds(server.pid) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    readings = len(latencies) * args.batch
    result = {
        "benchmark": "http_ingest",
        "requests": len(latencies),
        "clients": args.clients,
        "batch": args.batch,
        "readings_per_s": round(readings / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
        "elapsed_s": round(elapsed, 2),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / len(latencies), 2),
        "client_cpu_ms_per_request": round(client_cpu * 1000 / len(latencies), 2),
        "load_average": os.getloadavg(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_http.json").write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
