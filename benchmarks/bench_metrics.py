"""Benchmark of the metric catalog on synthetic cohorts (5-minute sampling, 14 days).

Each measurement runs in a fresh Python process so its peak RSS is its own:
  floor      DuckDB scan-and-aggregate: SELECT id, count(*), avg(gl) ... GROUP BY id
  pandas     a straightforward pandas groupby of the consensus core (mean, SD, CV, GMI, bands)
  consensus  glucosestream compute_metrics(parquet_stream(path), "consensus"): the Parquet file
             streamed a slice of whole patients at a time, as `glucosestream metrics` reads it
             (ids read as dictionary codes)
  all        glucosestream compute_metrics(parquet_stream(path), "all")
  consensus-whole, all-whole
             the same on the table read whole first (pq.read_table, ids as dictionary codes),
             the read inside the clock
  floor-table
             DuckDB's count, mean and SD per id over the table already in memory (the Arrow
             table of the -table tasks, read before the clock), on every core
  consensus-table, all-table
             compute_metrics on that in-memory table: the computation alone
  families   (only with --tasks families) compute_metrics for each metric family alone on the
             table already read, one JSON line per family, in one process: where the time goes
The glucosestream tasks run once per thread count of --threads (default: 1 and every core;
compute_metrics(threads=...)). Each task runs 1 + RUNS times in its process: "cold_seconds" is
the first run (it includes loading the compiled kernels from numba's cache), "seconds" the
median of the other RUNS (9), "slowest_seconds" the slowest of them and "cpu_seconds" the
median CPU time of the process (all its threads): one run of a tenth of a second moved by 2x
between repeats on this machine, so the spread is printed, not only the middle, with the load
average when the task started ("load_1min": other work on the machine). "x_floor" is seconds
over the floor measured in the same run: "floor-table" for the -table tasks, "floor" otherwise.

Usage:
  python benchmarks/bench_metrics.py                 # 1,000 and 10,000 patients
  python benchmarks/bench_metrics.py --patients 1000
  python benchmarks/bench_metrics.py --patients 1000 --tasks floor-table consensus-table all-table
  python benchmarks/bench_metrics.py --smoke         # 20 patients, for CI
  python benchmarks/bench_metrics.py --patients 1000 --tasks families
Prints one JSON object per size, measurement and thread count (seconds, readings/s, peak RSS MB,
x floor).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Every column required (not nullable), as in the lake's READING_SCHEMA and synth's own
# schema: a nullable column carries definition levels that cost as much to decode as the values.
COHORT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("gl", pa.float64(), nullable=False),
    ]
)
RUNS = 9  # timed runs after the cold one; "seconds" is their median
FLOORS = ("floor", "floor-table")
OURS = ("consensus", "all", "consensus-whole", "all-whole", "consensus-table", "all-table")
TASKS = ("floor", "floor-table", "pandas", *OURS)
EXTRA_TASKS = ("families",)
TABLE_FLOOR_SQL = "SELECT id, count(*), avg(gl), stddev_samp(gl) FROM cohort GROUP BY id"


def write_cohort(patients: int, path: Path) -> int:
    """The cohort as one Parquet file, written by the same writer as `glucosestream synth`
    (timestamps DELTA_BINARY_PACKED, other columns dictionary-encoded, every column required,
    as the lake stores readings); with pyarrow's default encodings the timestamps alone are 6x
    bigger."""
    from glucosestream.synth import CohortSpec, generate_chunks
    from glucosestream.synth.exporters.tabular import TabularWriter

    rows = 0
    with TabularWriter(path, "parquet") as writer:
        spec = CohortSpec(patients=patients, days=14, interval_min=5, seed=0)
        for chunk in generate_chunks(spec):
            columns = [
                chunk["patient_id"].cast(pa.string()),
                chunk["time"],
                chunk["glucose_mg_dl"].cast(pa.float64()),
            ]
            table = pa.Table.from_arrays(columns, schema=COHORT_SCHEMA)
            writer.write(table)
            rows += table.num_rows
    return rows


def _pandas_core(path: Path) -> None:
    import pandas as pd

    df = pd.read_parquet(path)
    g = df.groupby("id")["gl"]
    out = pd.DataFrame({"mean": g.mean(), "sd": g.std()})
    out["cv"] = 100 * out["sd"] / out["mean"]
    out["gmi"] = 3.31 + 0.02392 * out["mean"]
    for name, mask in {
        "below_54": df["gl"] < 54,
        "below_70": df["gl"] < 70,
        "in_range": df["gl"].between(70, 180),
        "above_180": df["gl"] > 180,
        "above_250": df["gl"] > 250,
    }.items():
        out[name] = 100 * mask.groupby(df["id"]).mean()


def task_runner(task: str, path: Path, threads: int | None) -> Callable[[], object]:
    """One measurement as a call; what is outside the clock (imports, and the table for the
    -table tasks) is done here, before it is returned."""
    import duckdb

    from glucosestream.metrics.calculator import compute_metrics, parquet_stream

    if task == "floor":
        return lambda: duckdb.sql(
            f"SELECT id, count(*), avg(gl) FROM '{path}' GROUP BY id"
        ).fetchall()
    if task == "pandas":
        return lambda: _pandas_core(path)
    if task.endswith("-whole"):
        metric_set = task.removesuffix("-whole")
        return lambda: compute_metrics(
            pq.read_table(path, read_dictionary=["id"]), metric_set, threads=threads
        )
    table = pq.read_table(path, read_dictionary=["id"])
    if task == "floor-table":
        con = duckdb.connect()  # every core: DuckDB's default thread count
        con.register("cohort", table)
        return lambda: con.sql(TABLE_FLOOR_SQL).fetchall()
    if task.endswith("-table"):
        metric_set = task.removesuffix("-table")
        return lambda: compute_metrics(table, metric_set, threads=threads)
    return lambda: compute_metrics(parquet_stream(path), task, threads=threads)


def time_task(task: str, path: Path, threads: int | None) -> dict[str, float]:
    """Run one measurement 1 + RUNS times: wall and CPU seconds (median, slowest, cold)."""
    run = task_runner(task, path, threads)
    walls, cpus = [], []
    for _ in range(1 + RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    timed, timed_cpu = sorted(walls[1:]), sorted(cpus[1:])
    return {
        "seconds": timed[RUNS // 2],
        "slowest_seconds": timed[-1],
        "cold_seconds": walls[0],
        "cpu_seconds": timed_cpu[RUNS // 2],
    }


def family_seconds(path: Path) -> dict[str, float]:
    """Seconds of compute_metrics for each metric family alone (the second of two runs), on a
    table read once; every family includes building the grid, which they all share."""
    from glucosestream.metrics.calculator import compute_metrics
    from glucosestream.metrics.spec import GROUPS

    table = pq.read_table(path, read_dictionary=["id"])
    seconds: dict[str, float] = {}
    for group, names in GROUPS:
        for _ in range(2):
            start = time.perf_counter()
            compute_metrics(table, names)
            seconds[group] = time.perf_counter() - start
    return seconds


def measure(task: str, path: Path, threads: int | None) -> dict[str, float]:
    """Run one task in a fresh interpreter and read its peak RSS (VmHWM: unlike ru_maxrss, it
    is not inherited from the forking benchmark process)."""
    here = str(Path(__file__).parent)
    code = (
        f"import sys, json; sys.path.insert(0, {here!r});"
        "import bench_metrics as b; from pathlib import Path;"
        f"m = b.time_task({task!r}, Path({str(path)!r}), {threads!r});"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1];"
        "m['peak_rss_mb'] = int(hwm) / 1024; print(json.dumps(m))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _thread_counts(asked: list[int] | None) -> list[int]:
    import numba

    every_core = int(numba.config.NUMBA_NUM_THREADS)
    return sorted(set(asked or [1, every_core]))


def _line(
    task: str,
    threads: int | None,
    m: dict[str, float],
    *,
    patients: int,
    readings: int,
    floors: dict[str, float],
    load: float,
) -> dict[str, object]:
    floor_task = "floor-table" if task.endswith("-table") else "floor"
    floor = floors.get(floor_task)
    return {
        "patients": patients,
        "readings": readings,
        "task": task,
        "threads": threads,
        "seconds": round(m["seconds"], 3),
        "slowest_seconds": round(m["slowest_seconds"], 3),
        "cold_seconds": round(m["cold_seconds"], 3),
        "cpu_seconds": round(m["cpu_seconds"], 3),
        "readings_per_s": round(readings / m["seconds"]),
        "peak_rss_mb": round(m["peak_rss_mb"]),
        "floor_task": floor_task if task not in FLOORS else None,
        "x_floor": round(m["seconds"] / floor, 2) if floor and task not in FLOORS else None,
        "load_1min": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--smoke", action="store_true", help="20 patients only")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=TASKS + EXTRA_TASKS)
    parser.add_argument(
        "--threads", type=int, nargs="*", help="thread counts of our tasks (1 and every core)"
    )
    args = parser.parse_args()
    sizes = [20] if args.smoke else args.patients
    thread_counts = _thread_counts(args.threads)
    for patients in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cohort.parquet"
            readings = write_cohort(patients, path)
            floors: dict[str, float] = {}
            if "families" in args.tasks:
                for family, seconds in family_seconds(path).items():
                    line = {"patients": patients, "family": family, "seconds": round(seconds, 3)}
                    print(json.dumps(line), flush=True)
            for task in (t for t in TASKS if t in args.tasks):  # the floors first
                for threads in thread_counts if task in OURS else [None]:
                    load = os.getloadavg()[0]
                    m = measure(task, path, threads)
                    if task in FLOORS:
                        floors[task] = m["seconds"]
                    line = _line(
                        task,
                        threads,
                        m,
                        patients=patients,
                        readings=readings,
                        floors=floors,
                        load=load,
                    )
                    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
