"""Always on under load: 1,000 uploaders posting one reading each at ~1,000 requests/s for a
minute against a real ``glucosestream serve``, while probes measure what a user sees.

Setup: a temporary lake, ``glucosestream serve`` as a subprocess on 127.0.0.1 with the default
settings, one uploader token per load patient (sent as Nightscout's ``api-secret``: the SHA-1
of the token), and the load from ``load_generator.py`` in a process of its own so its CPU time
is its own. Reports achieved requests/s, answers by status, latency p50/p99/max, the server's
CPU (``/proc/<pid>/stat``) and the generator's, the commit and the load average before and
after, as JSON on stdout and in ``benchmarks/results/bench_always_on.json``.

    .venv/bin/python benchmarks/bench_always_on.py --load-only --duration 60
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the soak's server start-up, reused (tests/soak_uploader.py)

from tests.soak_uploader import free_port, start_serve  # noqa: E402

from glucosestream.access import create_token  # noqa: E402
from glucosestream.config import IngestSettings, LakeSettings, Settings  # noqa: E402
from glucosestream.ingest.identity import patient_key  # noqa: E402
from glucosestream.synth import CohortSpec, generate_chunks  # noqa: E402

SECRET = "bench-always-on-0123456789abcdef0123456789abcdef"
RESULTS = ROOT / "benchmarks" / "results"
GENERATOR = Path(__file__).with_name("load_generator.py")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def synth_values(patients: int, per_patient: int, seed: int) -> list[list[int]]:
    """Each patient's first ``per_patient`` synthetic glucose values (mg/dL), in time order."""
    days = max(1, -(-per_patient * 5 // 1440))
    out: dict[str, list[int]] = {}
    for table in generate_chunks(CohortSpec(patients, days, seed=seed)):
        ids = table["patient_id"].to_pylist()
        for pid, mg_dl in zip(ids, table["glucose_mg_dl"].to_pylist(), strict=True):
            values = out.setdefault(pid, [])
            if len(values) < per_patient:
                values.append(int(mg_dl))
    return list(out.values())


def load_tokens(settings: LakeSettings, n: int, now: dt.datetime) -> list[tuple[str, str]]:
    """(patient id, uploader token) for n load patients, each token bound to its patient."""
    out = []
    for i in range(n):
        pid = f"LOAD-{i:04d}"
        key = patient_key(SECRET.encode(), pid)
        out.append(
            (pid, create_token(settings, "uploader", label=pid, now=now, patient_keys=[key]))
        )
    return out


def run_generator(
    spec: dict[str, object],
    work: Path,
    args: argparse.Namespace,
    *,
    server_pid: int,
    on_start: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run the load in a process of its own; its JSON result with the server's CPU time over
    the measured load (after the warm-up) added. ``on_start``: called when it starts."""
    spec_path, out_path = work / "load-spec.json", work / "load-result.json"
    spec_path.write_text(json.dumps(spec))
    command = [
        sys.executable,
        str(GENERATOR),
        "--spec",
        str(spec_path),
        "--rate",
        str(args.rate),
        "--duration",
        str(args.duration),
        "--connections",
        str(args.connections),
        "--out",
        str(out_path),
    ]
    generator = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert generator.stdout is not None
    if generator.stdout.readline().strip() != "started":
        raise SystemExit(f"the load generator failed: exit {generator.wait()}")
    server_cpu = cpu_seconds(server_pid)
    on_start()
    generator.communicate()
    server_cpu = cpu_seconds(server_pid) - server_cpu
    if generator.returncode != 0:
        raise SystemExit(f"the load generator failed: exit {generator.returncode}")
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["server_cpu_s"] = round(server_cpu, 2)
    result["server_cpu_share"] = round(server_cpu / result["elapsed_s"], 3)
    result["server_cpu_ms_per_request"] = round(1000 * server_cpu / max(1, result["answered"]), 2)
    return result


def _profiler(pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """py-spy (a dev tool, in .venv) sampling the server for the load's duration."""
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "--pid", str(pid), "--duration", str(int(args.duration))]
    command += ["--rate", "100", "--gil", "--format", "raw", "--output", str(args.profile)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploaders", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--load-only", action="store_true", help="no probes: raw ingest only")
    parser.add_argument("--serve-arg", action="append", default=[], help="passed to serve")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the server (GIL holders) during the load: raw stacks"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gs-bench-always-on-"))
    lake = work / "lake"
    settings = Settings(
        lake=LakeSettings(root=str(lake)), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    now = dt.datetime.now(dt.UTC)
    tokens = load_tokens(settings.lake, args.uploaders, now)
    per_patient = -(-int(args.rate * args.duration) // args.uploaders)
    values = synth_values(args.uploaders, per_patient, seed=17)
    env = {**os.environ, "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET}
    port = free_port()
    server = start_serve(lake, env, work / "serve.log", port=port, args=args.serve_arg)
    load_before = os.getloadavg()
    try:
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "uploaders": [
                {"token": token, "values": v} for (_, token), v in zip(tokens, values, strict=True)
            ],
        }
        spies: list[subprocess.Popen[bytes]] = []

        def started() -> None:
            if args.profile:
                spies.append(_profiler(server.pid, args))

        load = run_generator(spec, work, args, server_pid=server.pid, on_start=started)
        for spy in spies:
            spy.wait(timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=60)
    result = {
        "benchmark": "always_on",
        "commit": commit(),
        "uploaders": args.uploaders,
        "load": load,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "lake": str(lake),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_always_on.json").write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
