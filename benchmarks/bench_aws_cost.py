"""Measure what the AWS deployment stores, requests and computes per reading, and price a month.

Each size is a seeded synthetic cohort (PATIENTS x DAYS at 5-minute sampling), taken through
what the deployment does with it, by the project's own code on this machine: the cohort
ingested as one export (`ingest_path`: the "first export") and a full run; one schedule interval
of live uploads (every patient posts ``--uploads`` Nightscout requests of one reading each, as
xDrip+, Loop and AndroidAPS post every 5 minutes, through the Lambda ingest handler with a token
bound to the patient); an incremental run as the state machine drives it (`pipeline.stepwise`:
plan, each bucket task, publish, each timed alone: a Lambda is billed for its wall time); then
another interval and a run planned in 16 buckets (the path of a big lake: batches split into
parts), forced by a small ``pipeline.readings_per_task``.

1. **Local lake** (``--sizes``): sizes on disk are what S3 stores: bytes per reading in each
   zone (raw batches, curated Iceberg readings, results tables), the staging zone's peak
   (sampled every 20 ms during each run); the wall times.
2. **S3 lake** (``--s3-sizes``; needs the test S3 server: `scripts/ceph.sh start`): the same
   stages on the real S3 server (Ceph radosgw), every HTTP request of pyarrow's S3 client
   counted by a forwarding proxy on 127.0.0.1 (method and query string give the class S3 bills:
   PUT/COPY/POST/LIST, GET/HEAD and others, DELETE free); Glue and the DynamoDB run lock on moto
   in this process, each AWS API call counted by a wrapper of botocore's call path. The
   metadata store stays SQLite (PostgreSQL on AWS: not an S3 cost), so are the tokens.
   The run lock's lease is on moto in the local phase too.

Then the monthly bill for 100, 1,000 and 10,000 patients (``--priced``) is computed from those
figures, per-run figures fitted as lines in the patients, with the AWS list prices below
(us-east-1) and the module's defaults (schedule, memory, noncurrent days) read from
deploy/aws/modules/glucosestream. Results go to benchmarks/results/aws_cost-<time>.json and
aws_cost.json (the latest); ``--from-json`` prices an earlier run's figures again.

    python benchmarks/bench_aws_cost.py          # 100, 200 (local), 10, 20 (S3) patients x 14 days
        # (12 minutes on 2 shared cores at load 2.5-3.5, most of it the S3 lake's uploads and runs)
    python benchmarks/bench_aws_cost.py --sizes 6 12 --s3-sizes 4 8 --days 3 --uploads 2  # smoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from glucosestream.access import create_token
from glucosestream.config import IngestSettings, LakeSettings, PipelineSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import patient_key
from glucosestream.ingest.lambda_handler import handle_event
from glucosestream.pipeline import run_pipeline
from glucosestream.synth import CohortSpec, write_cohort

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VARIABLES_TF = ROOT / "deploy" / "aws" / "modules" / "glucosestream" / "variables.tf"
S3_ENV = ROOT / ".services" / "s3.env"
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
BUCKET = "glucosestream-bench-aws"
LOCK_TABLE = "bench-lock"
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
FIVE_MINUTES = dt.timedelta(minutes=5)
READINGS_PER_DAY = 288  # one every 5 minutes
DAYS_PER_MONTH = 30

# AWS list prices, us-east-1, USD, as published on each service's pricing page; taken from
# memory of the pages as of 2025-2026 (this machine has no network): check them before quoting.
PRICES_TAKEN = "2026-12-05 (list prices as published 2025-2026; offline, not re-fetched)"
PRICES: dict[str, tuple[float, str]] = {
    "s3_standard_gb_month": (0.023, "Amazon S3 pricing, Storage, S3 Standard first 50 TB"),
    "s3_put_per_1k": (0.005, "Amazon S3 pricing, Requests, PUT/COPY/POST/LIST"),
    "s3_get_per_1k": (0.0004, "Amazon S3 pricing, Requests, GET/SELECT and all other"),
    "lambda_gb_s": (0.0000166667, "AWS Lambda pricing, x86 duration per GB-second"),
    "lambda_per_1m": (0.20, "AWS Lambda pricing, requests per 1M"),
    "apigw_http_per_1m": (1.00, "Amazon API Gateway pricing, HTTP APIs, first 300M"),
    "sfn_per_1k_transitions": (0.025, "AWS Step Functions pricing, Standard workflows"),
    "athena_per_tb": (5.00, "Amazon Athena pricing, SQL queries per TB scanned (10 MB min)"),
    "glue_requests_per_1m": (1.00, "AWS Glue pricing, Data Catalog requests (first 1M free)"),
    "kms_key_month": (1.00, "AWS KMS pricing, customer managed key per month"),
    "kms_per_10k": (0.03, "AWS KMS pricing, symmetric requests per 10,000"),
    "dynamodb_write_per_1m": (0.625, "Amazon DynamoDB pricing, on-demand write request units"),
    "dynamodb_read_per_1m": (0.125, "Amazon DynamoDB pricing, on-demand read request units"),
    "logs_ingest_gb": (0.50, "Amazon CloudWatch pricing, Logs, ingestion (standard)"),
    "alarm_month": (0.10, "Amazon CloudWatch pricing, standard-resolution metric alarm"),
    "secret_month": (0.40, "AWS Secrets Manager pricing, per secret per month"),
    "secrets_per_10k": (0.05, "AWS Secrets Manager pricing, API calls per 10,000"),
    "ecr_gb_month": (0.10, "Amazon ECR pricing, private repository storage"),
    "xray_per_1m_traces": (5.00, "AWS X-Ray pricing, traces recorded (first 100,000 free)"),
}
FREE_XRAY_TRACES = 100_000
# X-Ray's default sampling rule: the first request each second, then 5% of the rest.
XRAY_RESERVOIR_PER_S, XRAY_RATE = 1, 0.05
# One line of the HTTP API's access log (api.tf's format) as a typical request fills it.
API_ACCESS_LOG_LINE = json.dumps(
    {
        "requestId": "Xyz0AbCdIAMEbQw=",
        "requestTime": "05/Dec/2026:22:05:01 +0000",
        "ip": "203.0.113.17",
        "routeKey": "POST /api/v1/entries",
        "status": "200",
        "responseLength": "171",
        "latencyMs": "312",
        "integrationStatus": "200",
        "integrationError": "-",
        "authorizerError": "-",
        "authorizerStatus": "200",
        "authorizerLatency": "21",
        "userAgent": "xDrip+ 2024.10.26 (Android 14; Pixel 8)",
        "protocol": "HTTP/1.1",
        "integrationLatency": "290",
    }
)
FREE_GLUE_REQUESTS = 1_000_000
LAMBDA_LIMIT_S = 900  # a Lambda invocation's longest timeout
ATHENA_MIN_BYTES = 10 * 1024**2
LAMBDA_LOG_LINES_BYTES = 300  # START, END and REPORT lines of every invocation (approximate)
# Module defaults, used when variables.tf is absent or lacks them (name: default).
FALLBACK_DEFAULTS: dict[str, float] = {
    "schedule_minutes": 60,
    "noncurrent_days": 30,
    "ingest_memory_mb": 1024,
    "authorizer_memory_mb": 512,
    "plan_memory_mb": 2048,
    "bucket_task_memory_mb": 6144,
    "publish_memory_mb": 3008,
}


# --- counting S3 requests: a forwarding proxy in front of the S3 server -----------------------


def request_class(method: str, target: str) -> str:
    """The class S3 bills a request in: PUT (PUT, COPY, POST, LIST), GET (GET, HEAD and all
    others), DELETE (free), from the method and the path-style target ``/bucket/key?query``."""
    path, _, query = target.partition("?")
    params = parse_qs(query, keep_blank_values=True)
    key = path.lstrip("/").partition("/")[2]
    if method == "DELETE" or (method == "POST" and "delete" in params):
        return "DELETE"
    if method == "GET" and (not key or "list-type" in params):
        return "LIST"
    if method in ("GET", "HEAD"):
        return "GET"
    return "PUT"


def zone_of(target: str) -> str:
    """The lake zone of a request: raw, warehouse, staging, _state; "bucket" for none."""
    parts = target.partition("?")[0].strip("/").split("/")
    return parts[2] if len(parts) > 2 else "bucket"


class RequestCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, kind: str, zone: str) -> None:
        with self._lock:
            self._counts[kind] += 1
            self._counts[f"{kind}:{zone}"] += 1

    def take(self) -> dict[str, int]:
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts


def _forwarder(upstream: tuple[str, int], counter: RequestCounter) -> type:
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            counter.add(request_class(self.command, self.path), zone_of(self.path))
            upstream_conn = http.client.HTTPConnection(*upstream, timeout=120)
            upstream_conn.putrequest(
                self.command, self.path, skip_host=True, skip_accept_encoding=True
            )
            for name, value in self.headers.items():
                if name.lower() not in ("expect", "connection"):
                    upstream_conn.putheader(name, value)
            upstream_conn.endheaders(body or None)
            answer = upstream_conn.getresponse()
            data = answer.read()
            self.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                lower = name.lower()
                if lower in ("transfer-encoding", "connection"):
                    continue
                if lower == "content-length" and self.command != "HEAD":
                    continue
                self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            upstream_conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

    return Forward


@contextmanager
def counting_proxy(endpoint: str, counter: RequestCounter) -> Iterator[str]:
    host, _, port = endpoint.removeprefix("http://").partition(":")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _forwarder((host, int(port)), counter))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- counting AWS API calls (Glue, DynamoDB) through botocore -----------------------------------


@contextmanager
def counting_aws_calls(counter: Counter[str]) -> Iterator[None]:
    from botocore.client import BaseClient  # type: ignore[import-untyped]

    original = BaseClient._make_api_call

    def counted(self: Any, operation: str, params: Any) -> Any:
        counter[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return original(self, operation, params)

    BaseClient._make_api_call = counted
    try:
        yield
    finally:
        BaseClient._make_api_call = original


# --- the workload --------------------------------------------------------------------------


def make_cohort(patients: int, days: int, work: Path) -> tuple[Path, list[str], dt.datetime]:
    spec = CohortSpec(patients=patients, days=days, profile="mixed", interval_min=5, seed=0)
    path = Path(write_cohort(spec, work / f"cohort-{patients}.parquet", "parquet").path)
    table = pq.read_table(path, columns=["patient_id", "time"])
    ids = sorted(set(table.column("patient_id").to_pylist()))
    return path, ids, pc.max(table.column("time")).as_py().astimezone(dt.UTC)


def upload_events(
    settings: Settings, ids: list[str], after: dt.datetime, uploads: int
) -> list[dict[str, Any]]:
    """Nightscout POSTs of one reading each, ``uploads`` per patient after ``after``, each with
    the patient's own uploader token in ``?token=`` (as xDrip+ sends it)."""
    events = []
    for number, external_id in enumerate(ids):
        key = patient_key(SECRET.encode(), external_id)
        token = create_token(settings.lake, "uploader", label="b", now=NOW, patient_keys=[key])
        for step in range(1, uploads + 1):
            at = after + step * FIVE_MINUTES
            entry = {
                "type": "sgv",
                "sgv": 100 + (number + step) % 80,
                "date": int(at.timestamp() * 1000),
                "dateString": at.isoformat().replace("+00:00", "Z"),
                "direction": "Flat",
                "device": "xDrip-DexcomG6",
            }
            events.append(_nightscout_event(json.dumps([entry]), token))
    events.sort(key=lambda e: e["body"])  # interleave patients as their uploads arrive
    return events


def _nightscout_event(body: str, token: str) -> dict[str, Any]:
    path = "/api/v1/entries"
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": {"content-type": "application/json"},
        "queryStringParameters": {"token": token},
        "requestContext": {"http": {"method": "POST", "path": path}, "stage": "$default"},
        "body": body,
        "isBase64Encoded": False,
    }


def post_all(settings: Settings, events: list[dict[str, Any]]) -> list[float]:
    handle_event(settings, events[0])  # a warm container: the first call opens the stores
    seconds = []
    for event in events[1:]:
        started = time.perf_counter()
        answer = handle_event(settings, event)
        seconds.append(time.perf_counter() - started)
        if answer["statusCode"] != 200:
            raise SystemExit(f"upload answered {answer['statusCode']}: {answer['body'][:300]}")
    return seconds


# --- sizes ---------------------------------------------------------------------------------


def zone_bytes(fs: pafs.FileSystem, base: str) -> dict[str, int]:
    """Bytes stored under each zone and table of the lake (``raw``, ``staging``,
    ``warehouse/<ns>/<table>/data`` and ``.../metadata``), objects counted too."""
    sizes: Counter[str] = Counter()
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        parts = info.path[len(base) :].strip("/").split("/")
        zone = "/".join(parts[:4]) if parts[0] == "warehouse" else parts[0]
        sizes[zone] += info.size
        sizes[f"objects:{parts[0]}"] += 1
        if parts[0] == "raw" and len(parts) > 3:
            sizes[f"raw:{parts[-1]}"] += info.size
    return dict(sizes)


@contextmanager
def staging_peak(path: Path | None) -> Iterator[dict[str, int]]:
    """Sample the bytes under ``path`` every 20 ms while the block runs: the peak (0 for
    None: an S3 lake's staging is not sampled)."""
    peak = {"bytes": 0}
    done = threading.Event()
    if path is None:
        yield peak
        return

    def sample() -> None:
        while not done.is_set():
            peak["bytes"] = max(peak["bytes"], _folder_bytes(path))
            done.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def _folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (os.walk skips folders removed while it looks)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:  # removed while we looked
                continue
    return total


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


class LogBytes:
    """Bytes of the log lines the project writes at INFO while counting (what CloudWatch Logs
    would ingest from the functions' own logging)."""

    def __init__(self) -> None:
        import logging

        self._logging = logging
        self.bytes = 0
        self._handler = logging.Handler(logging.INFO)
        self._handler.emit = self._emit  # type: ignore[method-assign]

    def _emit(self, record: Any) -> None:
        self.bytes += len(self._handler.format(record).encode()) + 80  # + time, level, ids

    @contextmanager
    def counting(self) -> Iterator[None]:
        root = self._logging.getLogger()
        level = root.level
        root.addHandler(self._handler)
        root.setLevel(self._logging.INFO)
        try:
            yield
        finally:
            root.removeHandler(self._handler)
            root.setLevel(level)


def run_figures(report: Any, seconds: float, peak_staging: int) -> dict[str, Any]:
    """A run's wall time split as the Lambda functions split it: plan (recover, discover,
    plan), bucket tasks (merge, transform, stage), publish (audit, publish)."""
    steps = {s.step: s.duration_ms / 1000 for s in report.steps}
    parts = {
        "plan": ("recover", "discover", "plan"),
        "bucket_task": ("merge", "transform", "stage"),
        "publish": ("audit", "publish"),
    }
    return {
        "status": report.status,
        "s": seconds,
        "steps_s": steps,
        "lambda_s": {name: sum(steps.get(s, 0.0) for s in names) for name, names in parts.items()},
        "buckets": report.buckets,
        "batches": report.batches,
        "readings_new": report.readings_new,
        "planned_readings": report.planned_readings,
        "patient_days": report.patient_days,
        "staging_peak_bytes": peak_staging,
        "task_seconds": [w.seconds for w in report.workers],
        "task_peak_rss_mb": [w.peak_rss_bytes / 2**20 for w in report.workers],
    }


def lake_stages(
    settings: Settings,
    cohort: tuple[Path, list[str], dt.datetime],
    uploads: int,
    checkpoint: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
    """First export and its run (in one process), one interval of live uploads, then the
    incremental run as Step Functions runs it (``stepwise``): what each stage took and
    (through ``checkpoint(stage)``) what the lake held or was asked after it."""
    path, ids, end = cohort
    staging = None if settings.lake.is_s3 else Path(settings.lake.root) / "staging"
    figures: dict[str, Any] = {}
    report, seconds = timed(lambda: ingest_path(settings, path))
    figures["export_ingest"] = {"s": seconds, "readings": report.accepted, **checkpoint("export")}
    with staging_peak(staging) as peak:
        report, seconds = timed(lambda: run_pipeline(settings))
    figures["full_run"] = {**run_figures(report, seconds, peak["bytes"]), **checkpoint("full")}
    events = upload_events(settings, ids, end, uploads)
    logs = LogBytes()
    with logs.counting():
        seconds_each = post_all(settings, events)
    figures["uploads"] = {
        "requests": len(events),
        "readings_per_request": 1,
        "payload_bytes_mean": sum(len(e["body"]) for e in events) / len(events),
        "handler_s": sorted(seconds_each),
        "log_bytes": logs.bytes,
        **checkpoint("uploads"),
    }
    # A run's buckets are sized on what it typically reads, twice its new readings (run_plan):
    # a quarter of the new readings per task gives 16 buckets.
    forced = max(1, len(ids) * uploads // 4)
    for label, readings_per_task in (("incremental_run", 0), ("incremental_run_16", forced)):
        if readings_per_task:  # another interval, run in 16 buckets (as from 1,000 patients)
            post_all(settings, upload_events(settings, ids, end + uploads * FIVE_MINUTES, uploads))
            checkpoint("uploads again")
        with staging_peak(staging) as peak:
            steps = stepwise_run(split_into_buckets(settings, readings_per_task))
        figures[label] = {**steps, "staging_peak_bytes": peak["bytes"], **checkpoint(label)}
    figures["maintain"] = {**maintain_lake(settings), **checkpoint("maintain")}
    return figures


def maintain_lake(settings: Settings) -> dict[str, Any]:
    """What the maintain function does (aws.handlers.maintain): compact the tables' small
    files, expire snapshots older than a week; timed."""
    from glucosestream.lake import maintain
    from glucosestream.pipeline.table_registry import TABLES

    report, seconds = timed(lambda: maintain(settings.lake, TABLES))
    return {"s": seconds, "report": str(report)}


def split_into_buckets(settings: Settings, readings_per_task: int) -> Settings:
    """Settings whose runs plan buckets of about ``readings_per_task`` readings (0: as set):
    a small cohort's run then takes the path of a big one (16 buckets, batches split)."""
    if not readings_per_task:
        return settings
    return replace(
        settings, pipeline=replace(settings.pipeline, readings_per_task=readings_per_task)
    )


def stepwise_run(settings: Settings) -> dict[str, Any]:
    """One run as the state machine drives it: plan, each bucket task, publish (a Lambda
    invocation each, timed alone), until it is done."""
    from glucosestream.pipeline import stepwise

    started = time.perf_counter()
    answer = stepwise.begin(settings)
    invocations: dict[str, list[float]] = {"plan": [time.perf_counter() - started]}
    invocations.update(bucket_task=[], publish=[])
    buckets = 0
    while "buckets" in answer:
        run_id, attempt = answer["run_id"], answer["attempt"]
        results = []
        for number in answer["buckets"]:
            started = time.perf_counter()
            results.append(stepwise.bucket(settings, run_id, attempt, number))
            invocations["bucket_task"].append(time.perf_counter() - started)
        buckets += len(results)
        started = time.perf_counter()
        answer = stepwise.conclude(settings, run_id, attempt, results)
        invocations["publish"].append(time.perf_counter() - started)
    if answer.get("status") != "published":
        raise SystemExit(f"the stepwise run ended {answer}")
    return {
        "status": answer["status"],
        "invocations_s": invocations,
        "lambda_s": {name: sum(each) for name, each in invocations.items()},
        "buckets": buckets,
        "s": sum(sum(each) for each in invocations.values()),
    }


def measure_local(
    patients: int, days: int, uploads: int, work: Path, task_memory_mb: int
) -> dict[str, Any]:
    """The stages on a local lake (its sizes on disk); the run lock's lease on moto."""
    lake = work / f"local-{patients}"
    settings = Settings(
        lake=LakeSettings(root=str(lake), lock_url=f"dynamodb://{LOCK_TABLE}"),
        ingest=IngestSettings(pseudonym_secret=SECRET),
        pipeline=PipelineSettings(task_memory_mb=task_memory_mb),
    )
    fs = pafs.LocalFileSystem()
    cohort = make_cohort(patients, days, work)
    with lock_table():
        figures = lake_stages(
            settings, cohort, uploads, lambda stage: {"zones": zone_bytes(fs, str(lake))}
        )
    figures["authorizer_s"] = authorizer_seconds(settings, cohort[1][:50])
    return figures


@contextmanager
def lock_table() -> Iterator[None]:
    """moto in this process with the run lock's table (the module's schema: orchestration.tf)."""
    import boto3  # type: ignore[import-untyped]
    from moto import mock_aws

    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName=LOCK_TABLE,
            KeySchema=[{"AttributeName": "lake", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "lake", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def authorizer_seconds(settings: Settings, ids: list[str]) -> float:
    """Mean time to check a Nightscout token (what the Lambda authorizer does per request)."""
    from glucosestream.lake import open_access
    from glucosestream.request_credentials import nightscout_principal

    store = open_access(settings.lake)
    tokens = [
        create_token(
            settings.lake,
            "uploader",
            label="a",
            now=NOW,
            patient_keys=[patient_key(SECRET.encode(), i)],
        )
        for i in ids
    ]
    nightscout_principal(store, None, tokens[0], None)
    started = time.perf_counter()
    for token in tokens:
        nightscout_principal(store, None, token, None)
    return (time.perf_counter() - started) / len(tokens)


def measure_s3(
    patients: int, days: int, uploads: int, work: Path, server: dict[str, str], task_memory_mb: int
) -> dict[str, Any]:
    """The same stages on the S3 server through the counting proxy, Glue and DynamoDB on moto."""
    endpoint = server["GLUCOSESTREAM_TEST_S3_ENDPOINT"]
    keys = {
        "access_key": server["GLUCOSESTREAM_TEST_S3_ACCESS_KEY"],
        "secret_key": server["GLUCOSESTREAM_TEST_S3_SECRET_KEY"],
    }
    direct = pafs.S3FileSystem(
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
        allow_bucket_creation=True,
        region="us-east-1",
        **keys,
    )
    direct.create_dir(BUCKET)
    base = f"{BUCKET}/lake-{patients}-{int(time.time())}"
    requests, calls = RequestCounter(), Counter[str]()
    cohort = make_cohort(patients, days, work)

    def checkpoint(stage: str) -> dict[str, Any]:
        aws = dict(calls)
        calls.clear()
        return {"s3_requests": requests.take(), "aws_calls": aws, "zones": zone_bytes(direct, base)}

    with counting_proxy(endpoint, requests) as proxy, lock_table(), counting_aws_calls(calls):
        lake = LakeSettings(
            root=f"s3://{base}",
            state_dir=str(work / f"s3-state-{patients}"),
            catalog_url="glue://us-east-1",
            namespace_prefix="gs_",
            s3_region="us-east-1",
            s3_endpoint_url=proxy,
            s3_access_key_id=keys["access_key"],
            s3_secret_access_key=keys["secret_key"],
            lock_url=f"dynamodb://{LOCK_TABLE}",
        )
        settings = Settings(
            lake=lake,
            ingest=IngestSettings(pseudonym_secret=SECRET),
            pipeline=PipelineSettings(task_memory_mb=task_memory_mb),
        )
        requests.take()
        return lake_stages(settings, cohort, uploads, checkpoint)


# --- from measured figures to unit figures -------------------------------------------------


def unit_figures(patients: int, local: dict[str, Any]) -> dict[str, Any]:
    """Per reading, per request, per run figures of one size on the local lake."""
    z = {stage: local[stage]["zones"] for stage in ("export_ingest", "full_run", "uploads")}
    z["incremental_run"] = local["incremental_run"]["zones"]
    readings = local["export_ingest"]["readings"]
    requests = local["uploads"]["requests"]
    full = local["full_run"]
    results = {k: v for k, v in z["full_run"].items() if k.startswith("warehouse/results/")}
    upload_s = local["uploads"]["handler_s"]
    return {
        "patients": patients,
        "readings": readings,
        "raw_bytes_per_reading_export": z["export_ingest"]["raw"] / readings,
        "raw_bytes_per_upload_request": (z["uploads"]["raw"] - z["full_run"]["raw"]) / requests,
        "raw_objects_per_upload_request": (
            z["uploads"]["objects:raw"] - z["full_run"]["objects:raw"]
        )
        / requests,
        "curated_bytes_per_reading": _table_bytes(z["full_run"], "curated/readings") / readings,
        "curated_live_bytes_per_reading": (
            _table_bytes(z["incremental_run"], "curated/readings")
            - _table_bytes(z["uploads"], "curated/readings")
        )
        / requests,
        "results_bytes_per_patient_day": {
            k.removeprefix("warehouse/results/"): v / full["patient_days"]
            for k, v in results.items()
        },
        "warehouse_growth_per_run_bytes": _sum(z["incremental_run"], "warehouse")
        - _sum(z["uploads"], "warehouse"),
        "warehouse_bytes_before_maintain": _sum(local["incremental_run_16"]["zones"], "warehouse"),
        "warehouse_bytes_after_maintain": _sum(local["maintain"]["zones"], "warehouse"),
        "upload_handler_s_median": upload_s[len(upload_s) // 2],
        "upload_handler_s_mean": sum(upload_s) / len(upload_s),
        "authorizer_s": local["authorizer_s"],
        "log_bytes_per_upload_request": local["uploads"]["log_bytes"] / requests,
        "payload_bytes_per_upload_request": local["uploads"]["payload_bytes_mean"],
        "runs": {
            label: {
                "buckets": local[label]["buckets"],
                "s": local[label]["s"],
                "lambda_s": local[label]["lambda_s"],
                "staging_peak_bytes": local[label]["staging_peak_bytes"],
            }
            for label in RUNS
        },
    }


def _table_bytes(zones: dict[str, int], table: str) -> int:
    return sum(v for k, v in zones.items() if k.startswith(f"warehouse/{table}/"))


def _sum(zones: dict[str, int], zone: str) -> int:
    return sum(v for k, v in zones.items() if k == zone or k.startswith(f"{zone}/"))


def request_figures(patients: int, s3: dict[str, Any]) -> dict[str, Any]:
    """Requests per upload and per run on the S3 lake, and the upload handler's time there."""
    requests = s3["uploads"]["requests"]
    upload_s = s3["uploads"]["handler_s"]
    per_request = s3["uploads"]["s3_requests"]
    return {
        "patients": patients,
        "upload_requests": requests,
        "batches_per_run": requests,  # one batch per upload request
        "upload_handler_s_median": upload_s[len(upload_s) // 2],
        "upload_handler_s_mean": sum(upload_s) / len(upload_s),
        "s3_per_upload_request": {k: per_request.get(k, 0) / requests for k in _CLASSES},
        "s3_per_upload_request_by_zone": {k: v / requests for k, v in per_request.items()},
        "s3_per_export_ingest": s3["export_ingest"]["s3_requests"],
        "s3_per_full_run": s3["full_run"]["s3_requests"],
        "aws_calls_per_upload_request": {
            k: v / requests for k, v in s3["uploads"]["aws_calls"].items()
        },
        "runs": {label: _run_requests(s3[label]) for label in RUNS},
        "maintain_s": s3["maintain"]["s"],
        "s3_per_maintain": {k: s3["maintain"]["s3_requests"].get(k, 0) for k in _CLASSES},
    }


def _run_requests(run: dict[str, Any]) -> dict[str, Any]:
    s3, aws = run["s3_requests"], run["aws_calls"]
    return {
        "buckets": run["buckets"],
        "s3": {k: s3.get(k, 0) for k in _CLASSES},
        "s3_by_zone": s3,
        "aws_calls": aws,
        "glue": sum(v for k, v in aws.items() if k.startswith("glue:")),
        "dynamodb_writes": sum(v for k, v in aws.items() if k.split(":")[-1] in _DYNAMODB_WRITES),
        "dynamodb_reads": sum(v for k, v in aws.items() if k.split(":")[-1] in _DYNAMODB_READS),
    }


RUNS = ("incremental_run", "incremental_run_16")  # one bucket; 16 buckets, batches split
_CLASSES = ("PUT", "LIST", "GET", "DELETE")
_DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem")
_DYNAMODB_READS = ("GetItem", "Query", "Scan")


def fit(points: list[tuple[int, float]]) -> Callable[[int], float]:
    """A line through (x, value) points (least squares; through the origin with one point;
    their mean where all share one x), with neither slope nor intercept below 0."""
    if len(points) == 1:
        ((x, y),) = points
        return lambda n: y * n / x
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:  # every point at one x: a constant
        return lambda n: mean_y
    slope = max(sum((x - mean_x) * (y - mean_y) for x, y in points) / spread, 0.0)
    intercept = max(mean_y - slope * mean_x, 0.0)
    return lambda n: intercept + slope * n


# --- the monthly bill ------------------------------------------------------------------------

Row = tuple[str, str, str, float]


def module_defaults(overrides: dict[str, float]) -> dict[str, Any]:
    """Schedule, memory sizes and noncurrent-version days as the module sets them by default
    (variables.tf, compute.tf's memory_mb), else FALLBACK_DEFAULTS; then the overrides."""
    found: dict[str, float] = {}
    variables = VARIABLES_TF.read_text() if VARIABLES_TF.exists() else ""
    schedule = re.search(r'"rate\((\d+) (minute|minutes|hour|hours)\)"', variables)
    if schedule:
        found["schedule_minutes"] = int(schedule.group(1)) * (60 if "hour" in schedule[2] else 1)
    noncurrent = re.search(r'"noncurrent_version_days".*?default\s*=\s*(\d+)', variables, re.S)
    if noncurrent:
        found["noncurrent_days"] = int(noncurrent.group(1))
    compute = MODULE / "compute.tf"
    block = re.search(
        r"memory_mb = merge\(\{(.*?)\}", compute.read_text() if compute.exists() else "", re.S
    )
    for name, mb in re.findall(r"(\w+)\s*=\s*(\d+)", block.group(1) if block else ""):
        if f"{name}_memory_mb" in FALLBACK_DEFAULTS:
            found[f"{name}_memory_mb"] = int(mb)
    merged = {**FALLBACK_DEFAULTS, **found, **overrides}
    return {"values": merged, "from_module": sorted(found), "overridden": sorted(overrides)}


def estimated_buckets(patients: int, uploads: int, task_memory_mb: float) -> int:
    """The buckets the planner chooses for an incremental run (run_plan.plan_run): sized on
    twice the new readings, within a task's memory for the new readings and 15 days of
    history (what a task may read when a fortnight closes)."""
    from glucosestream.config import PipelineSettings
    from glucosestream.pipeline.run_plan import choose_width

    new = patients * uploads
    most = new + patients * 15 * READINGS_PER_DAY
    budget = int(task_memory_mb * 2**20)
    return int(16 ** choose_width(2 * new, most, budget, PipelineSettings().readings_per_task))


def month_quantities(
    patients: int,
    lines: dict[str, Callable[[int], float]],
    units: tuple[dict[str, Any], dict[str, Any]],
    setup: dict[str, Any],
    readings_per_request: int = 1,
) -> dict[str, float]:
    """Each billed quantity in a month at ``patients`` (``lines``: run figures fitted over the
    measured sizes; ``units``: per-reading figures of the largest local size and per-request
    figures of the largest S3 size). A request's S3 work and time do not depend on how many
    readings it carries (one batch per request)."""
    unit, on_s3 = units
    v = setup["values"]
    runs = DAYS_PER_MONTH * 24 * 60 / v["schedule_minutes"]
    buckets = estimated_buckets(
        patients, int(v["schedule_minutes"] // 5), v["bucket_task_memory_mb"]
    )
    suffix = "@1" if buckets == 1 else "@16"  # the run measured with as many buckets

    def per_run(name: str) -> float:
        return lines[f"{name}{suffix}"](patients)

    def per_bucket(name: str) -> float:  # Glue and lock calls grow with the tasks
        return lines[f"{name}{suffix}"](buckets)

    requests = patients * READINGS_PER_DAY * DAYS_PER_MONTH / readings_per_request
    daily = DAYS_PER_MONTH  # the maintain function's calls (maintenance_schedule: daily)
    # ingest and authorizer per request; plan, the tasks and publish per run; maintain daily
    invocations = 2 * requests + runs * (2 + buckets) + daily
    s3 = on_s3["s3_per_upload_request"]
    put = requests * s3["PUT"] + runs * (per_run("PUT") + per_run("LIST"))
    put += daily * lines["maintain_put"](patients)
    get = requests * s3["GET"] + runs * per_run("GET") + daily * lines["maintain_get"](patients)
    kept = (lines["warehouse_growth"](patients), per_run("staging_peak"))
    storage = storage_gb_after_a_year(patients, kept, unit, setup, runs, readings_per_request)
    steps = {f"{name}_s": per_run(f"{name}_s") for name in ("plan", "bucket_task", "publish")}
    return {
        "runs": runs,
        "buckets": buckets,
        "api_requests": requests,
        "invocations": invocations,
        "ingest_gb_s": requests * on_s3["upload_handler_s_mean"] * v["ingest_memory_mb"] / 1024,
        "authorizer_gb_s": requests
        * max(unit["authorizer_s"], 0.001)
        * v["authorizer_memory_mb"]
        / 1024,
        "pipeline_gb_s": runs * sum(t * v[f"{k[:-2]}_memory_mb"] / 1024 for k, t in steps.items()),
        "maintain_gb_s": daily * lines["maintain_s"](patients) * v["bucket_task_memory_mb"] / 1024,
        **steps,
        "bucket_task_s": steps["bucket_task_s"] / buckets,  # one task's
        "s3_put": put,
        "s3_get": get,
        "storage_gb": sum(storage.values()),
        **{f"storage_gb:{part}": gb for part, gb in storage.items()},
        # state_machine.asl.json, one attempt: begin, work_left, buckets (Map), a bucket state
        # per bucket, conclude, work_left, done
        "transitions": runs * (6 + buckets),
        "glue_billed": max(0.0, runs * per_bucket("glue") - FREE_GLUE_REQUESTS),
        "dynamodb_writes": runs * per_bucket("dynamodb_writes"),
        "dynamodb_reads": runs * per_bucket("dynamodb_reads"),
        "kms_requests": 0.01 * (put + get),  # bucket keys: "up to 99% fewer" KMS requests
        **service_quantities(patients, requests, invocations, unit, setup),
    }


def service_quantities(
    patients: int, requests: float, invocations: float, unit: dict[str, Any], setup: dict[str, Any]
) -> dict[str, float]:
    """Keys, secrets, alarms and the image (fixed); logs, traces and Athena's scans."""
    logged = invocations * LAMBDA_LOG_LINES_BYTES + requests * (
        unit["log_bytes_per_upload_request"] + len(API_ACCESS_LOG_LINE) + 1
    )
    queries, scanned = athena_month(patients, unit, setup)
    return {
        "kms_keys": setup["kms_keys"],
        "secrets": 1,
        "log_gb": logged / 2**30,
        "xray_billed": max(0.0, xray_traces(invocations) - FREE_XRAY_TRACES),
        "alarms": setup["alarms"],
        "athena_queries": queries,
        "athena_tb": scanned / 1e12,
        "image_gb": setup["image_gb"],
    }


# component, quantity (key, scale, label), price key, price scale (quantity units per price)
BILL: tuple[tuple[str, str, str, str, float], ...] = (
    ("API Gateway HTTP API", "api_requests", "requests", "apigw_http_per_1m", 1e6),
    ("Lambda requests", "invocations", "invocations", "lambda_per_1m", 1e6),
    ("Lambda ingest duration", "ingest_gb_s", "GB-s", "lambda_gb_s", 1),
    ("Lambda authorizer duration", "authorizer_gb_s", "GB-s", "lambda_gb_s", 1),
    ("Lambda pipeline duration", "pipeline_gb_s", "GB-s", "lambda_gb_s", 1),
    ("Lambda maintain duration (daily)", "maintain_gb_s", "GB-s", "lambda_gb_s", 1),
    ("S3 PUT/COPY/POST/LIST", "s3_put", "requests", "s3_put_per_1k", 1e3),
    ("S3 GET/HEAD", "s3_get", "requests", "s3_get_per_1k", 1e3),
    ("S3 Standard storage, month 12", "storage_gb", "GB", "s3_standard_gb_month", 1),
    ("Step Functions", "transitions", "transitions", "sfn_per_1k_transitions", 1e3),
    ("Glue Data Catalog (over 1M free)", "glue_billed", "requests", "glue_requests_per_1m", 1e6),
    ("DynamoDB lock writes", "dynamodb_writes", "WRU", "dynamodb_write_per_1m", 1e6),
    ("DynamoDB lock reads", "dynamodb_reads", "RRU", "dynamodb_read_per_1m", 1e6),
    ("KMS keys", "kms_keys", "keys", "kms_key_month", 1),
    ("KMS requests (estimate)", "kms_requests", "requests", "kms_per_10k", 1e4),
    ("Secrets Manager", "secrets", "secrets", "secret_month", 1),
    ("CloudWatch Logs ingestion", "log_gb", "GB", "logs_ingest_gb", 1),
    ("X-Ray traces (over 100k free)", "xray_billed", "traces", "xray_per_1m_traces", 1e6),
    ("CloudWatch alarms", "alarms", "alarms", "alarm_month", 1),
    ("Athena (assumed query count)", "athena_tb", "TB scanned", "athena_per_tb", 1),
    ("ECR image storage", "image_gb", "GB", "ecr_gb_month", 1),
)


def xray_traces(invocations: float) -> float:
    """Traces a month under X-Ray's default sampling, invocations spread evenly (the functions
    trace in Active mode: compute.tf)."""
    seconds = DAYS_PER_MONTH * 86_400
    rate = invocations / seconds
    sampled = min(rate, XRAY_RESERVOIR_PER_S) + XRAY_RATE * max(0.0, rate - XRAY_RESERVOIR_PER_S)
    return sampled * seconds


def bill_rows(quantities: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for component, key, label, price_key, per in BILL:
        price = PRICES[price_key][0]
        quantity = quantities[key]
        rows.append(
            {
                "component": component,
                "quantity": quantity,
                "unit": label,
                "unit_price_usd": price,
                "price_per": per,
                "monthly_usd": quantity / per * price,
            }
        )
    return rows


def storage_gb_after_a_year(
    patients: int,
    per_run_bytes: tuple[float, float],
    unit: dict[str, Any],
    setup: dict[str, Any],
    runs: float,
    readings_per_request: int = 1,
) -> dict[str, float]:
    """GB in S3 Standard in month 12: a year of uploads in the raw zone (batches under 128 KB
    are not moved by lifecycle rules: S3's default since September 2024), the curated readings
    and results (compacted), a week of overwritten warehouse files (snapshot expiry by
    `glucosestream maintain`, 7 days) plus noncurrent versions of those and of staging."""
    readings = patients * READINGS_PER_DAY * DAYS_PER_MONTH * 12
    patient_days = patients * DAYS_PER_MONTH * 12
    runs_a_day = runs / DAYS_PER_MONTH
    kept_days = setup["values"]["noncurrent_days"]
    parts = {
        "raw": readings / readings_per_request * unit["raw_bytes_per_upload_request"],
        "curated": readings * unit["curated_bytes_per_reading"],
        "results": patient_days * sum(unit["results_bytes_per_patient_day"].values()),
        "warehouse_churn": per_run_bytes[0] * runs_a_day * (7 + kept_days),
        "staging_noncurrent": per_run_bytes[1] * runs_a_day * kept_days,
    }
    return {k: v / 2**30 for k, v in parts.items()}


def athena_month(patients: int, unit: dict[str, Any], setup: dict[str, Any]) -> tuple[int, float]:
    """Queries a month (an assumption: ``--athena-queries``, spread over the views) and the
    bytes they are billed for: each view scans the whole results table it reads at month 12
    (an upper bound: Parquet reads only the columns asked for), at least 10 MB a query."""
    per_day = unit["results_bytes_per_patient_day"]
    views = setup["views"]
    queries = setup["athena_queries"]
    billed = 0.0
    for tables in views.values():
        table_bytes = sum(per_day.get(f"{t}/data", 0.0) for t in tables)
        scanned = table_bytes * patients * DAYS_PER_MONTH * 12
        billed += queries / len(views) * max(scanned, ATHENA_MIN_BYTES)
    return queries, billed


# --- main ------------------------------------------------------------------------------------

MODULE = VARIABLES_TF.parent
DEFAULT_VIEWS = {  # view: results tables it reads (read from athena/*.sql when present)
    "daily_metrics": ["daily_metrics"],
    "period_summaries": ["period_metrics"],
    "triage_list": ["period_metrics"],
}


def deployment_setup(args: argparse.Namespace) -> dict[str, Any]:
    """What the bill needs from the module: defaults, alarm and key counts, the views' tables."""
    overrides = {k: v for k, v in vars(args).items() if k in FALLBACK_DEFAULTS and v is not None}
    setup = module_defaults(overrides)
    tf = " ".join(p.read_text() for p in MODULE.glob("*.tf")) if MODULE.exists() else ""
    setup["alarms"] = args.alarms
    setup["kms_keys"] = len(re.findall(r'resource\s+"aws_kms_key"', tf)) or 1
    setup["views"] = {
        p.stem: sorted(set(re.findall(r"\bresults\.(\w+)", p.read_text())) - {p.stem})
        for p in sorted((MODULE / "athena").glob("*.sql"))
    } or DEFAULT_VIEWS
    setup["athena_queries"] = args.athena_queries
    setup["image_gb"] = args.image_gb
    return setup


def fitted_lines(
    units: list[dict[str, Any]], s3_units: list[dict[str, Any]]
) -> dict[str, Callable[[int], float]]:
    """Per-run figures as lines in the patients (Glue and lock calls: in the buckets), for a run
    of one bucket ("<name>@1") and of 16 ("<name>@16"): bytes from the local sizes, requests and
    wall times from the S3 sizes (each request there is a real HTTP round trip, as on S3; on
    local disk a run is ~20x faster)."""

    def line(
        get: Callable[[dict[str, Any]], float], over: list[dict[str, Any]]
    ) -> Callable[[int], float]:
        return fit([(u["patients"], get(u)) for u in over])

    lines = {"warehouse_growth": line(_at("warehouse_growth_per_run_bytes"), units)}
    lines["maintain_s"] = line(_at("maintain_s"), s3_units)
    lines["maintain_put"] = line(
        lambda u: u["s3_per_maintain"]["PUT"] + u["s3_per_maintain"]["LIST"], s3_units
    )
    lines["maintain_get"] = line(_at("s3_per_maintain", "GET"), s3_units)
    for label, suffix in zip(RUNS, ("@1", "@16"), strict=True):
        for name in ("plan", "bucket_task", "publish"):  # wall times on the S3 lake
            lines[f"{name}_s{suffix}"] = line(_at("measured", label, "lambda_s", name), s3_units)
        lines[f"staging_peak{suffix}"] = line(_at("runs", label, "staging_peak_bytes"), units)
        for kind in ("PUT", "LIST", "GET"):
            lines[f"{kind}{suffix}"] = line(_at("runs", label, "s3", kind), s3_units)
        for key in ("glue", "dynamodb_writes", "dynamodb_reads"):  # in the buckets
            get = _at("runs", label, key)
            lines[f"{key}{suffix}"] = fit([(u["runs"][label]["buckets"], get(u)) for u in s3_units])
    return lines


def _at(*keys: str) -> Callable[[dict[str, Any]], float]:
    """A getter of the number at ``keys`` in a size's figures."""

    def get(figures: dict[str, Any]) -> float:
        value: Any = figures
        for key in keys:
            value = value[key]
        return float(value)

    return get


def print_units(where: str, unit: dict[str, Any]) -> None:
    print(f"\n{where}: {unit['patients']} patients")
    rows = [(k, v) for k, v in unit.items() if k != "runs"]
    rows += [(f"{label} ({run['buckets']} bucket(s))", run) for label, run in unit["runs"].items()]
    for key, value in rows:
        if isinstance(value, float):
            print(f"  {key:40} {value:14,.4f}")
        elif isinstance(value, dict):
            flat = {k: x for k, x in value.items() if isinstance(x, int | float) or k in _SHOWN}
            print(f"  {key:40} {json.dumps(flat, default=_rounded)}")


_SHOWN = ("lambda_s", "s3", "aws_calls")


def _rounded(value: object) -> object:
    return round(value, 3) if isinstance(value, float) else str(value)


def print_bill(patients: int, rows: list[dict[str, Any]], quantities: dict[str, float]) -> float:
    total = float(sum(r["monthly_usd"] for r in rows))
    print(
        f"\n{patients:,} patients: {quantities['api_requests']:,.0f} uploads/month of 1 reading, "
        f"{quantities['runs']:,.0f} runs/month of {quantities['buckets']} bucket(s), "
        f"invocations of plan {quantities['plan_s']:,.0f} s, bucket task "
        f"{quantities['bucket_task_s']:,.0f} s, publish {quantities['publish_s']:,.0f} s"
    )
    over = [k for k in ("plan_s", "bucket_task_s", "publish_s") if quantities[k] > LAMBDA_LIMIT_S]
    if over:
        print(f"  WARNING: {', '.join(over)} over Lambda's {LAMBDA_LIMIT_S} s limit: runs fail")
    print(f"  {'component':34} {'quantity':>24} {'unit price':>22} {'USD/month':>10}")
    for r in rows:
        price = f"${r['unit_price_usd']:.10f}".rstrip("0").rstrip(".")
        quantity = f"{r['quantity']:,.1f} {r['unit']}"
        print(
            f"  {r['component']:34} {quantity:>24} {price + '/' + _per(r['price_per']):>22} "
            f"{r['monthly_usd']:>10,.2f}"
        )
    print(f"  {'total':34} {'':>24} {'':>22} {total:>10,.2f}")
    parts = ", ".join(
        f"{k.split(':')[1]} {v:,.1f}" for k, v in quantities.items() if k.startswith("storage_gb:")
    )
    print(f"  storage in month 12 (GB): {parts}")
    return total


def _per(scale: float) -> str:
    return {1: "each", 1e3: "1k", 1e4: "10k", 1e6: "1M"}[scale]


def measure(
    args: argparse.Namespace, work: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each local size's unit figures, then each S3 size's request figures."""
    if not S3_ENV.exists():
        raise SystemExit("no test S3 server (scripts/ceph.sh start): request counts need it")
    server = dict(line.split("=", 1) for line in S3_ENV.read_text().split())
    units, requests = [], []
    for patients in args.sizes:
        started = time.perf_counter()
        local = measure_local(patients, args.days, args.uploads, work, args.task_memory_mb)
        unit = {**unit_figures(patients, local), "measure_s": time.perf_counter() - started}
        print_units("local lake", unit)
        units.append({**unit, "measured": local})
    for patients in args.s3_sizes:
        started = time.perf_counter()
        s3 = measure_s3(patients, args.days, args.uploads, work, server, args.task_memory_mb)
        unit = {**request_figures(patients, s3), "measure_s": time.perf_counter() - started}
        print_units("S3 lake (Ceph), Glue and DynamoDB on moto", unit)
        requests.append({**unit, "measured": s3})
    return units, requests


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200], help="patients")
    parser.add_argument(
        "--s3-sizes", type=int, nargs="+", default=[10, 20], help="patients on the S3 lake"
    )
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument(
        "--uploads",
        type=int,
        default=None,
        help="1-reading uploads per patient between runs [default: the schedule's minutes / 5]",
    )
    parser.add_argument("--priced", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--athena-queries", type=int, default=3_000, help="a month, all views")
    parser.add_argument(
        "--from-json", help="price the measured figures of an earlier run's JSON (no measuring)"
    )
    parser.add_argument("--alarms", type=int, default=12, help="monitoring.tf: 5 + 1 a function")
    parser.add_argument("--image-gb", type=float, default=1.5, help="the container image")
    for name in FALLBACK_DEFAULTS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=None)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    for name in ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"):
        os.environ.setdefault(name, "WHEN_REQUIRED")  # the Ceph gateway (lake.storage)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(name, value)  # moto's Glue and DynamoDB
    load = os.getloadavg()
    setup = deployment_setup(args)
    if args.uploads is None:
        args.uploads = int(setup["values"]["schedule_minutes"] // 5)
    args.task_memory_mb = int(setup["values"]["bucket_task_memory_mb"])
    print(
        f"load {load}; module defaults {setup['values']} (from the module: {setup['from_module']})"
    )
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())["sizes"]
        units, s3_units = saved["local"], saved["s3"]
    else:
        with tempfile.TemporaryDirectory(prefix="bench-aws-") as tmp:
            units, s3_units = measure(args, Path(tmp))
    lines = fitted_lines(units, s3_units)
    fits = most_patients_per_run(lines)
    print(f"\nmost patients whose hourly-run steps fit Lambda's {LAMBDA_LIMIT_S} s: {fits}")
    bills = {p: bill(p, lines, (units[-1], s3_units[-1]), setup) for p in args.priced}
    write_results(args, setup, {"local": units, "s3": s3_units, "fits": fits}, bills, load)


def bill(
    patients: int,
    lines: dict[str, Callable[[int], float]],
    units: tuple[dict[str, Any], dict[str, Any]],
    setup: dict[str, Any],
) -> dict[str, Any]:
    """The month at ``patients``, printed: quantities, rows, total, and the variants' totals."""
    quantities = month_quantities(patients, lines, units, setup)
    rows = bill_rows(quantities)
    total = print_bill(patients, rows, quantities)
    return {
        "quantities": quantities,
        "rows": rows,
        "total_usd": total,
        "variants": variants(patients, lines, units, setup),
    }


def most_patients_per_run(lines: dict[str, Callable[[int], float]]) -> dict[str, int]:
    """For each step of a one-bucket run, the most patients whose invocation stays within
    Lambda's limit (the measured upload pattern and schedule)."""
    most = {}
    for name in ("plan", "bucket_task", "publish"):
        line, low, high = lines[f"{name}_s@1"], 0, 10**7
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if line(middle) <= LAMBDA_LIMIT_S else (low, middle - 1)
        most[name] = low
    return most


VARIANTS = {  # name: (readings per request, S3 requests per upload request or None: measured)
    "uploads of 1 reading without the empty quarantine file and the LIST (proposed: 2 PUT + "
    "1 HEAD a request)": (1, {"PUT": 2, "LIST": 0, "GET": 1}),
    "uploads of 12 readings (hourly): ingest as measured per request, runs as measured (an "
    "over-estimate: a twelfth of the batches)": (12, None),
}


def variants(
    patients: int,
    lines: dict[str, Callable[[int], float]],
    units: tuple[dict[str, Any], dict[str, Any]],
    setup: dict[str, Any],
) -> dict[str, float]:
    """The month's total under other upload patterns or S3 request counts (the runs as
    measured: an over-estimate where fewer batches would be read)."""
    totals = {}
    for name, (per_request, s3) in VARIANTS.items():
        unit, on_s3 = units
        changed = on_s3 if s3 is None else {**on_s3, "s3_per_upload_request": s3}
        quantities = month_quantities(patients, lines, (unit, changed), setup, per_request)
        totals[name] = sum(r["monthly_usd"] for r in bill_rows(quantities))
        print(f"  variant: {name}: {totals[name]:,.2f} USD/month")
    return totals


def write_results(
    args: argparse.Namespace,
    setup: dict[str, Any],
    units: dict[str, Any],
    bills: dict[str, Any],
    load: tuple[float, ...],
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    document = {
        "git_sha": sha or "unknown",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_before": load,
            "load_after": os.getloadavg(),
        },
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "days": args.days,
        "uploads_per_patient_per_run": args.uploads,
        "prices": {k: {"usd": v, "source": s} for k, (v, s) in PRICES.items()},
        "prices_taken": PRICES_TAKEN,
        "setup": setup,
        "sizes": {"local": units["local"], "s3": units["s3"]},
        "most_patients_within_lambda_limit": units["fits"],
        "bills": bills,
        "priced_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "priced_by": sha or "unknown",
    }
    if args.from_json:  # the figures' provenance is the measuring run's
        measured = json.loads(Path(args.from_json).read_text())
        for key in ("git_sha", "machine", "measured_at", "days", "uploads_per_patient_per_run"):
            document[key] = measured[key]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    text = json.dumps(document, indent=1, default=str)
    (RESULTS / f"aws_cost-{stamp}.json").write_text(text)
    (RESULTS / "aws_cost.json").write_text(text)
    print(f"\nwritten: benchmarks/results/aws_cost-{stamp}.json (and aws_cost.json)")


if __name__ == "__main__":
    main()
