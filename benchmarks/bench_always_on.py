"""Always on under load: 1,000 uploaders posting one reading each at ~1,000 requests/s for a
minute against a real ``glucosestream serve``, while probes measure what a user sees.

Setup: a temporary lake; one uploader token per load patient (sent as Nightscout's
``api-secret``: the SHA-1 of the token) with ``stale_data`` turned off for each (their readings
are time-compressed into the past, so every one would be stale against the clock); 20 probe
patients and a few "daily" patients with tokens of their own, an admin token; a webhook for all
patients to a receiver in this process (``tests/webhook_receiver.py``); then ``glucosestream
serve`` as a subprocess on 127.0.0.1 with the default settings (pipeline on, a run at most every
30 s). The load comes from ``load_generator.py`` in a process of its own, so its CPU time is its
own; the probes (``bench_probes.py``) start with it:

1. POST -> reading in ``GET /api/v1/entries``: target p99 <= 1 s;
2. POST of a low -> its ``urgent_low`` webhook received: target p99 <= 2 s;
3. POST -> the patient's published daily metrics, no command run: target max <= 60 s;

and the load's own row: every ingest request answered 2xx (the warm-up round included), at the
rate offered.

After the load, the probes finish, the outbox settles, and the report is made: the three
figures, the load (achieved requests/s, answers by status, latency), the runs (durations,
batches), the deliveries, the CPU of the server, of its run children, of the generator and of
this process, the commit, and the load average before and after; JSON on stdout and in
``benchmarks/results/bench_always_on.json``. A benchmark, not a timed test.

    .venv/bin/python benchmarks/bench_always_on.py                 # the issue's load
    .venv/bin/python benchmarks/bench_always_on.py --rate 150      # what one core sustains
    .venv/bin/python benchmarks/bench_always_on.py --load-only     # raw ingest, no probes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the soak's server start-up and the webhook receiver (tests/)

from bench_probes import DailyProbe, EntryProbe, ProbeSamples, webhook_latencies  # noqa: E402
from load_generator import percentiles_ms  # noqa: E402
from tests.soak_uploader import free_port, start_serve  # noqa: E402
from tests.webhook_receiver import WebhookReceiver  # noqa: E402

from glucosestream.access import create_token  # noqa: E402
from glucosestream.alerts import open_alert_store, open_outbox  # noqa: E402
from glucosestream.alerts.rules import RuleRow  # noqa: E402
from glucosestream.config import IngestSettings, LakeSettings, Settings  # noqa: E402
from glucosestream.ingest.identity import patient_key  # noqa: E402
from glucosestream.synth import CohortSpec, generate_chunks  # noqa: E402

SECRET = "bench-always-on-0123456789abcdef0123456789abcdef"
RESULTS = ROOT / "benchmarks" / "results"
GENERATOR = Path(__file__).with_name("load_generator.py")
PROGRAM = (sys.executable, "-m", "glucosestream")
TARGETS = {"entries_p99_s": 1.0, "webhook_p99_s": 2.0, "daily_max_s": 60.0}


@dataclass
class Setup:
    """The lake and everyone's tokens (patient id, token)."""

    work: Path
    settings: Settings
    load: list[tuple[str, str]]
    probes: list[tuple[str, str]] = field(default_factory=list)
    daily: list[tuple[str, str]] = field(default_factory=list)
    admin: str = ""

    @property
    def lake(self) -> Path:
        return Path(self.settings.lake.root)


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time of a process so far, or of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


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


def key_of(patient_id: str) -> str:
    return patient_key(SECRET.encode(), patient_id)


def uploader_tokens(settings: LakeSettings, ids: Sequence[str]) -> list[tuple[str, str]]:
    """(patient id, uploader token) for each id, each token bound to its patient."""
    now = dt.datetime.now(dt.UTC)
    return [
        (pid, create_token(settings, "uploader", label=pid, now=now, patient_keys=[key_of(pid)]))
        for pid in ids
    ]


def make_setup(args: argparse.Namespace) -> Setup:
    work = Path(tempfile.mkdtemp(prefix="gs-bench-always-on-"))
    settings = Settings(
        lake=LakeSettings(root=str(work / "lake")), ingest=IngestSettings(pseudonym_secret=SECRET)
    )
    load_ids = [f"LOAD-{i:04d}" for i in range(args.uploaders)]
    setup = Setup(work, settings, uploader_tokens(settings.lake, load_ids))
    if args.load_only:
        return setup
    setup.probes = uploader_tokens(settings.lake, [f"PROBE-{i:02d}" for i in range(args.probes)])
    n_daily = int(args.duration // args.daily_every) + 1
    setup.daily = uploader_tokens(settings.lake, [f"DAILY-{i:02d}" for i in range(n_daily)])
    now = dt.datetime.now(dt.UTC)
    setup.admin = create_token(settings.lake, "admin", label="bench admin", now=now)
    store = open_alert_store(settings.lake)
    for pid in load_ids:  # time-compressed readings: all of them would be stale by the clock
        row = RuleRow(key_of(pid), "stale_data", False, None, None)
        store.set_rule(row, actor="bench", at=now)
    return setup


def add_webhook(setup: Setup, url: str) -> str:
    """``glucosestream alerts webhook add URL --json`` (the command line is the contract)."""
    out = subprocess.run(
        [*PROGRAM, "alerts", "webhook", "add", url, "--lake", str(setup.lake), "--json"],
        check=True,
        capture_output=True,
        text=True,
        env=serve_env(),
    ).stdout
    webhook_id: str = json.loads(out)["webhook_id"]
    return webhook_id


def serve_env() -> dict[str, str]:
    return {**os.environ, "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET}


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
    command = [sys.executable, str(GENERATOR), "--spec", str(spec_path), "--out", str(out_path)]
    command += ["--rate", str(args.rate), "--duration", str(args.duration)]
    command += ["--connections", str(args.connections)]
    generator = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert generator.stdout is not None  # for mypy: stdout=PIPE
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


class Probes:
    """The probe threads, started when the measured load starts."""

    def __init__(self, setup: Setup, base_url: str, args: argparse.Namespace) -> None:
        self.setup, self.base_url, self.args = setup, base_url, args
        self.samples = ProbeSamples()
        self.stop = threading.Event()
        self.entry: list[EntryProbe] = []
        self.daily: DailyProbe | None = None

    def start(self) -> None:
        first = time.monotonic()
        step = self.args.probe_period / max(1, len(self.setup.probes))
        for i, (pid, token) in enumerate(self.setup.probes):
            probe = EntryProbe(
                base_url=self.base_url,
                token=token,
                patient_id=pid,
                patient_key=key_of(pid),
                first_at=first + i * step,
                period_s=self.args.probe_period,
                stop=self.stop,
                samples=self.samples,
            )
            probe.start()
            self.entry.append(probe)
        patients = [(pid, key_of(pid), token) for pid, token in self.setup.daily]
        self.daily = DailyProbe(
            base_url=self.base_url,
            admin_token=self.setup.admin,
            patients=patients,
            period_s=self.args.daily_every,
            stop=self.stop,
            samples=self.samples,
            timeout_s=self.args.settle,
        )
        self.daily.start()

    def finish(self) -> None:
        """No new probe readings; wait for those in flight (bounded by ``--settle``)."""
        self.stop.set()
        for probe in self.entry:
            probe.join(60)
        if self.daily is not None:
            self.daily.join(60)
            self.daily.join_pollers(self.args.settle)


def wait_outbox_settled(settings: Settings, timeout_s: float) -> int:
    """Wait until no outbox row is pending or being delivered; how many still are."""
    outbox = open_outbox(settings.lake)
    deadline = time.monotonic() + timeout_s
    while (left := outbox.unsettled()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def runs_report(lake: Path, since: dt.datetime) -> dict[str, Any]:
    """The scheduled runs started since ``since``: count, statuses, durations and batches."""
    out = subprocess.run(
        [*PROGRAM, "runs", "--lake", str(lake), "--json", "--limit", "10000"],
        check=True,
        capture_output=True,
        text=True,
        env=serve_env(),
    ).stdout
    runs = [r for r in json.loads(out)["runs"] if r["run_id"].startswith("run-")]
    durations: list[float] = []
    finished_at: list[float] = []
    batches: list[int | None] = []
    statuses: dict[str, int] = {}
    for run in reversed(runs):
        started = dt.datetime.fromisoformat(run["started_at"]).replace(tzinfo=dt.UTC)
        if started < since:
            continue
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
        if run["finished_at"]:
            finished = dt.datetime.fromisoformat(run["finished_at"]).replace(tzinfo=dt.UTC)
            durations.append(round((finished - started).total_seconds(), 1))
            finished_at.append(finished.timestamp())
        batches.append((run.get("report") or {}).get("batches"))
    return {
        "count": sum(statuses.values()),
        "statuses": statuses,
        "durations_s": durations,
        "batches": batches,
        "finished_at_epoch_s": finished_at,
    }


def slowest_entries(samples: ProbeSamples, finished_at: Sequence[float]) -> list[dict[str, Any]]:
    """The five slowest POST -> GET samples, each with how long after a run's finish its POST
    was sent (a read just after a publish may pay for reading the new run)."""
    slowest = sorted(zip(samples.entries_s, samples.entries_sent_at, strict=True))[-5:]
    out = []
    for seconds, sent_at in reversed(slowest):
        before = [f for f in finished_at if f <= sent_at]
        since = round(sent_at - max(before), 1) if before else None
        out.append({"s": round(seconds, 3), "sent_after_run_finished_s": since})
    return out


def _seconds(values: Sequence[float]) -> dict[str, float | None]:
    ms = percentiles_ms(sorted(values))
    return {k: (v if k == "n" or v is None else round(v / 1000, 3)) for k, v in ms.items()}


def probes_report(probes: Probes, receiver: WebhookReceiver) -> dict[str, Any]:
    samples = probes.samples
    alerts = open_alert_store(probes.setup.settings.lake).list_alerts(limit=1_000_000)
    patient_of = {a.alert_id: a.patient_key for a in alerts}
    webhook_s, webhook_missed = webhook_latencies(samples.lows, receiver.receipts, patient_of)
    entries, webhook = _seconds(samples.entries_s), _seconds(webhook_s)
    daily = sorted(samples.daily_s)
    met = {
        "entries_p99_s": entries["p99"] is not None and entries["p99"] <= TARGETS["entries_p99_s"],
        "webhook_p99_s": webhook["p99"] is not None and webhook["p99"] <= TARGETS["webhook_p99_s"],
        "daily_max_s": bool(daily) and daily[-1] <= TARGETS["daily_max_s"],
    }
    return {
        "post_to_entries_s": {**entries, "missed": samples.entries_missed},
        "post_low_to_webhook_s": {**webhook, "missed": webhook_missed, "lows": len(samples.lows)},
        "post_to_daily_metrics_s": {
            "samples": [round(s, 1) for s in daily],
            "max": round(daily[-1], 1) if daily else None,
            "missed": samples.daily_missed,
        },
        "probe_errors": dict(samples.errors),
        "targets": TARGETS,
        "targets_met": met,
    }


def load_targets(load: dict[str, Any]) -> dict[str, bool]:
    """The issue's load row: ingest answered every request 2xx (warm-up included, no lost
    connection), at the rate offered (within 5 %)."""
    answers = Counter({int(k): v for k, v in load["statuses"].items()})
    answers.update({int(k): v for k, v in load["warmup_statuses"].items()})
    errors = sum(n for status, n in answers.items() if not 200 <= status < 300)
    errors += sum(load["transport_errors"].values())
    return {
        "ingest_errors_0": errors == 0,
        "offered_rate_achieved": load["achieved_rate"] >= 0.95 * load["offered_rate"],
    }


def main() -> None:
    args = parse_args()
    setup = make_setup(args)
    receiver = WebhookReceiver().start()
    try:
        webhook_id = "" if args.load_only else add_webhook(setup, receiver.url)
        measured = measure(setup, args)
    finally:
        receiver.stop()
    result = measured.result
    if not args.load_only:
        result |= probes_report(measured.probes, receiver)
        result["runs"] = runs_report(setup.lake, measured.started_at)
        finished = result["runs"].pop("finished_at_epoch_s")
        result["post_to_entries_s"]["slowest"] = slowest_entries(measured.probes.samples, finished)
        result["webhook"] = {
            "receipts": len(receiver.receipts),
            "outbox": open_outbox(setup.settings.lake).counts().get(webhook_id, {}),
            "unsettled_after_wait": measured.unsettled,
        }
        result["targets_met"] |= load_targets(result["load"])
    if args.keep:
        result["lake"] = str(setup.lake)
    else:
        shutil.rmtree(setup.work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_always_on.json").write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result) + "\n")


@dataclass
class Measured:
    result: dict[str, Any]  # the report's figures so far
    probes: Probes
    started_at: dt.datetime
    unsettled: int  # outbox rows still pending after --settle


def measure(setup: Setup, args: argparse.Namespace) -> Measured:
    """Serve, the load and the probes; until the probes are done and the outbox has settled."""
    per_patient = -(-int(args.rate * args.duration) // args.uploaders) + 1
    values = synth_values(args.uploaders, per_patient, seed=17)
    port = free_port()
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "uploaders": [
            {"token": token, "values": v} for (_, token), v in zip(setup.load, values, strict=True)
        ],
    }
    log = setup.work / "serve.log"
    serve = start_serve(setup.lake, serve_env(), log, port=port, args=args.serve_arg)
    before = {"uptime": uptime(), "load_average": os.getloadavg()}
    started_at = dt.datetime.now(dt.UTC)
    probes = Probes(setup, f"http://127.0.0.1:{port}", args)
    spies: list[subprocess.Popen[bytes]] = []
    children_cpu, own_cpu = cpu_seconds(serve.pid, children=True), time.process_time()

    def on_start() -> None:
        if not args.load_only:
            probes.start()
        if args.profile:
            spies.append(_profiler(serve.pid, args))

    try:
        load = run_generator(spec, setup.work, args, server_pid=serve.pid, on_start=on_start)
        after_load = {"uptime": uptime(), "load_average": os.getloadavg()}
        probes.finish()
        unsettled = 0 if args.load_only else wait_outbox_settled(setup.settings, args.settle)
        children_cpu = cpu_seconds(serve.pid, children=True) - children_cpu
        own_cpu = time.process_time() - own_cpu
        for spy in spies:
            spy.wait(timeout=120)
    finally:
        serve.terminate()
        serve.wait(timeout=60)
    result = {
        "benchmark": "always_on",
        "commit": commit(),
        "uploaders": args.uploaders,
        "probes": len(setup.probes),
        "load": load,
        "server_run_children_cpu_s": round(children_cpu, 2),
        "bench_process_cpu_s": round(own_cpu, 2),
        "before": before,
        "after_load": after_load,
        "after": {"uptime": uptime(), "load_average": os.getloadavg()},
        "cpus": os.cpu_count(),
    }
    return Measured(result, probes, started_at, unsettled)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploaders", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered requests/s")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--probes", type=int, default=20, help="probe patients")
    parser.add_argument("--probe-period", type=float, default=10.0, help="s between a probe's")
    parser.add_argument("--daily-every", type=float, default=10.0, help="s between daily probes")
    parser.add_argument("--settle", type=float, default=240.0, help="max s to wait afterwards")
    parser.add_argument("--load-only", action="store_true", help="no probes: raw ingest only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary lake and log")
    parser.add_argument("--serve-arg", action="append", default=[], help="e.g. --no-pipeline")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the server (GIL holders) during the load: raw stacks"
    )
    return parser.parse_args()


if __name__ == "__main__":
    main()
