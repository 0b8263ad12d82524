"""Benchmark the pipeline at cohort scale: a full run, then an incremental run after one new
day for every patient, on local disk by each executor (one process: `--workers 1`; worker
processes on every core: the default; a running Ray cluster with --cluster ADDRESS), each on
its own copy of the same ingested lake, and (with --s3) on the test S3 server.

Each stage runs as its own `glucosestream` process, so its wall time and peak memory (RSS) are
its own (the child reports its own peak: `child_peak.py` says why ru_maxrss would not do).
The baseline, measured in the same run on the same file, is DuckDB's plain scan-and-aggregate
(mean per patient) straight from the Parquet file. Results are printed
and written as JSON to benchmarks/results/.

    python benchmarks/bench_pipeline.py                    # 10,000 patients x 14 days
    python benchmarks/bench_pipeline.py --patients 100 --days 3        # smoke size
    python benchmarks/bench_pipeline.py --s3               # also on the S3 server of make test
        # (at 10,000 patients start it with a bigger memstore first:
        #  GLUCOSESTREAM_TEST_CEPH_MEMSTORE_BYTES=8589934592 scripts/ceph.sh start)
    python benchmarks/bench_pipeline.py --s3 --only s3     # the S3 lake alone
    python benchmarks/bench_pipeline.py --cluster 127.0.0.1:6379  # also on a running Ray cluster
    python benchmarks/bench_pipeline.py --profile DIR      # the incremental runs under cProfile:
        # DIR/incremental-<lake>.prof (read with `python -m pstats`); slower than unprofiled

Each run stage's per-step timings (plan, merge, transform, audit, stage, publish; the task
steps summed over the tasks) from its report are printed and kept in the JSON beside its wall
time, its own peak and the peak of each worker process that ran bucket tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import child_peak
import duckdb
import pyarrow.parquet as pq

from glucosestream.synth import CohortSpec, write_cohort

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def run_stage(
    args: list[str], env: dict[str, str], profile: Path | None = None
) -> dict[str, object]:
    """Run ``glucosestream *args --json`` in a child process: its wall time, its own peak RSS
    (``child_peak``; None under cProfile) and its JSON report."""
    started = time.perf_counter()
    line = child_peak.command([*args, "--json"], profile)
    done = subprocess.run(line, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    err = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {err[-2000:]}")
    text = done.stdout.decode()
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=0)
    report, _ = json.JSONDecoder().raw_decode(text[start:])  # the JSON report, whatever follows
    return {"s": seconds, "peak_rss_mb": child_peak.peak_rss_mb(err), "report": report}


def split_last_day(
    path: Path, work: Path, history_files: int = 1
) -> tuple[list[Path], Path, int, int]:
    """The cohort without its last UTC day (in ``history_files`` files of whole patients), and
    that day alone; streamed by DuckDB, so a 260-million-reading cohort never sits in memory."""
    con = duckdb.connect()
    source = f"read_parquet('{path}')"
    cut = con.execute(f"SELECT date_trunc('day', max(time)) FROM {source}").fetchone()[0]
    history = [work / f"history-{i}.parquet" for i in range(history_files)]
    last = work / "new-day.parquet"
    jobs = [
        (out, f"time < $cut AND hash(patient_id) % {history_files} = {i}")
        for i, out in enumerate(history)
    ]
    for out, where in [*jobs, (last, "time >= $cut")]:
        con.execute(
            f"COPY (SELECT * FROM {source} WHERE {where}) TO '{out}' "
            "(FORMAT parquet, ROW_GROUP_SIZE 1048576)",
            {"cut": cut},
        )
    con.close()
    history_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in history)
    return history, last, history_rows, pq.ParquetFile(last).metadata.num_rows


def floor_seconds(paths: list[Path]) -> float:
    con = duckdb.connect()
    files = ", ".join(f"'{p}'" for p in paths)
    sql = (
        "SELECT patient_id, avg(glucose_mg_dl), count(*) "
        f"FROM read_parquet([{files}]) GROUP BY patient_id"
    )
    con.execute(sql).fetchall()
    started = time.perf_counter()
    con.execute(sql).fetchall()
    return time.perf_counter() - started


EXECUTORS = {
    "inline": ["--workers", "1"],  # one process, one core's worth of tasks
    "processes": [],  # the default: worker processes on every core
}


def bench_lake(
    name: str,
    lake: str,
    env: dict[str, str],
    data: tuple[list[Path], Path],
    profile_dir: Path | None = None,
    run_args: tuple[str, ...] = (),
    ingested: str | None = None,
) -> dict:
    """Full run, new day, incremental run on ``lake`` (a copy of ``ingested``, a local lake
    the history was ingested into, when given; else the history is ingested here first)."""
    env = {**env, "GLUCOSESTREAM_LAKE": lake}
    first, last = data
    figures: dict[str, object] = {"lake": name, "run_args": list(run_args)}
    stages: list[tuple[str, list[str]]] = [
        ("full_run", ["run", *run_args]),
        ("ingest_new_day", ["ingest", str(last)]),
        ("incremental_run", ["run", *run_args]),
    ]
    if ingested is None:
        stages.insert(0, ("ingest_history", ["ingest", *map(str, first)]))
    else:
        shutil.copytree(ingested, lake)
    for label, args in stages:
        profile = None
        if profile_dir is not None and label == "incremental_run":
            profile = profile_dir / f"incremental-{name}.prof"
        result = run_stage(args, env, profile)
        report = result["report"]
        steps = _step_seconds(report)
        workers = _worker_peaks(report)
        figures[label] = {
            "s": result["s"],
            "peak_rss_mb": result["peak_rss_mb"],
            "steps": steps,
            "buckets": report.get("buckets") if isinstance(report, dict) else None,
            "worker_peak_rss_mb": workers,
        }
        peak = result["peak_rss_mb"]
        peak_text = "n/a (profiled)" if peak is None else f"{peak:6.0f} MB"
        workers_text = ", ".join(f"{mb:.0f}" for mb in workers.values())
        print(
            f"  {name:9} {label:16} {result['s']:7.1f} s  peak {peak_text}"
            + (f"  workers' peaks [{workers_text}] MB" if workers else "")
            + "".join(f"  {step} {seconds:.1f}" for step, seconds in steps.items())
        )
    full = figures["full_run"]["s"]  # type: ignore[index]
    incremental = figures["incremental_run"]["s"]  # type: ignore[index]
    figures["incremental_vs_full"] = incremental / full
    print(f"  {name:9} incremental / full = {incremental / full:.1%} (target <= 15%)")
    return figures


def _worker_peaks(report: object) -> dict[str, float]:
    """Each process's own peak RSS (MB) among those that ran bucket tasks, by host:pid; the
    coordinator's own is the stage's peak when the tasks ran inline."""
    if not isinstance(report, dict):
        return {}
    return {w["worker"]: w["peak_rss_bytes"] / 2**20 for w in report.get("workers", ())}


def bench_executors(
    args: argparse.Namespace,
    local: str,
    env: dict[str, str],
    data: tuple[list[Path], Path],
    profile: Path | None,
    work: Path,
) -> list[dict]:
    """The same lake, history ingested once, run by each executor on a copy of its own."""
    chosen = [e.strip() for e in args.executors.split(",") if e.strip()]
    executors = {name: EXECUTORS[name] for name in chosen if name in EXECUTORS}
    if args.cluster:
        executors["ray"] = ["--cluster", args.cluster]
    ingested = str(work / "ingested")
    result = run_stage(["ingest", *map(str, data[0])], {**env, "GLUCOSESTREAM_LAKE": ingested})
    print(f"  ingest history {result['s']:.1f} s, peak {result['peak_rss_mb']:.0f} MB")
    runs = []
    for number, (name, run_args) in enumerate(executors.items()):
        lake = local if number == 0 else f"{local}-{name}"
        runs.append(bench_lake(name, lake, env, data, profile, tuple(run_args), ingested))
    return runs


def _step_seconds(report: object) -> dict[str, float]:
    """A run report's step timings in seconds (an ingest report has none)."""
    if not isinstance(report, dict):
        return {}
    return {s["step"]: s["duration_ms"] / 1000 for s in report.get("steps", ())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--s3", action="store_true", help="also benchmark an s3:// lake")
    parser.add_argument(
        "--history-files", type=int, default=1, help="write the history as N files of patients"
    )
    parser.add_argument(
        "--keep-lake", type=Path, help="build the local lake in this (new) folder and keep it"
    )
    parser.add_argument(
        "--only", choices=("local", "s3"), help="benchmark one lake only (s3 implies --s3)"
    )
    parser.add_argument(
        "--profile", type=Path, help="run each incremental run under cProfile, into this folder"
    )
    parser.add_argument(
        "--executors",
        default="inline,processes",
        help="comma-separated: inline (--workers 1), processes (every core) [inline,processes]",
    )
    parser.add_argument(
        "--cluster", metavar="ADDRESS", help="also run on this running Ray cluster (--cluster)"
    )
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET}
    record: dict[str, object] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "patients": args.patients,
        "days": args.days,
    }
    with tempfile.TemporaryDirectory(prefix="gs-bench-pipeline-") as tmp:
        work = Path(tmp)
        spec = CohortSpec(patients=args.patients, days=args.days + 1, seed=0)
        started = time.perf_counter()
        cohort = Path(write_cohort(spec, work / "cohort.parquet", "parquet").path)
        print(f"synth {time.perf_counter() - started:.1f} s")
        first, last, history_rows, new_rows = split_last_day(cohort, work, args.history_files)
        cohort.unlink()  # the split files hold it all
        floor = floor_seconds(first)
        print(f"{history_rows:,} readings of history, {new_rows:,} on the new day; "
              f"DuckDB floor {floor:.2f} s")  # fmt: skip
        record.update(history_readings=history_rows, new_day_readings=new_rows, floor_s=floor)
        local = str(args.keep_lake.resolve()) if args.keep_lake else str(work / "lake")
        profile = args.profile.resolve() if args.profile else None
        runs = []
        if args.only != "s3":
            runs += bench_executors(args, local, env, (first, last), profile, work)
        if args.s3 or args.only == "s3":
            runs.append(bench_lake("s3", *s3_lake(env, work), (first, last), profile))
        for figures in runs:
            full = figures["full_run"]["s"]  # type: ignore[index]
            figures["full_run_vs_floor"] = full / floor
            figures["full_run_readings_per_s"] = history_rows / full
            print(
                f"  {figures['lake']:9} full run {full:.1f} s = {full / floor:,.0f}x the floor, "
                f"{history_rows / full:,.0f} readings/s"
            )
        by_name = {f["lake"]: f["full_run"]["s"] for f in runs}  # type: ignore[index]
        if "inline" in by_name and "processes" in by_name:
            speedup = by_name["inline"] / by_name["processes"]
            record["processes_vs_inline"] = speedup
            print(f"  every core vs one process: {speedup:.2f}x (target >= 1.7x on 2 cores)")
        record["runs"] = runs
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_pipeline-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


def s3_lake(env: dict[str, str], work: Path) -> tuple[str, dict[str, str]]:
    values = dict(
        line.split("=", 1) for line in (ROOT / ".services" / "s3.env").read_text().split()
    )
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=values["GLUCOSESTREAM_TEST_S3_ENDPOINT"],
        aws_access_key_id=values["GLUCOSESTREAM_TEST_S3_ACCESS_KEY"],
        aws_secret_access_key=values["GLUCOSESTREAM_TEST_S3_SECRET_KEY"],
        region_name="us-east-1",
    )
    if "glucosestream-bench" not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket="glucosestream-bench")
    lake_env = {
        **env,
        "GLUCOSESTREAM_LAKE__STATE_DIR": str(work / "s3-state"),
        "GLUCOSESTREAM_LAKE__S3_ENDPOINT_URL": values["GLUCOSESTREAM_TEST_S3_ENDPOINT"],
        "GLUCOSESTREAM_LAKE__S3_ACCESS_KEY_ID": values["GLUCOSESTREAM_TEST_S3_ACCESS_KEY"],
        "GLUCOSESTREAM_LAKE__S3_SECRET_ACCESS_KEY": values["GLUCOSESTREAM_TEST_S3_SECRET_KEY"],
    }
    return f"s3://glucosestream-bench/lake-{uuid.uuid4().hex[:8]}", lake_env


if __name__ == "__main__":
    main()
