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
             as a caller holding the cohort in memory does
  families   (only with --tasks families) compute_metrics for each metric family alone on the
             table already read, one JSON line per family, in one process: where the time goes
Each task runs 1 + RUNS times in its process: "cold_seconds" is the first run (it includes
loading the compiled kernels from numba's cache), "seconds" the median of the other RUNS (9)
and "slowest_seconds" the slowest of them: one run of a tenth of a second moved by 2x between
repeats on this machine, so the spread is printed, not only the middle.

Usage:
  python benchmarks/bench_metrics.py                 # 1,000 and 10,000 patients
  python benchmarks/bench_metrics.py --patients 1000
  python benchmarks/bench_metrics.py --smoke         # 20 patients, for CI
  python benchmarks/bench_metrics.py --patients 1000 --tasks families
Prints one JSON object per size and measurement (seconds, readings/s, peak RSS MB, x floor).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
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
TASKS = ("floor", "pandas", "consensus", "all", "consensus-whole", "all-whole")
EXTRA_TASKS = ("families",)


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


def run_task(task: str, path: Path) -> float:
    """Run one measurement; imports happen before the clock starts."""
    import duckdb
    import pandas as pd

    from glucosestream.metrics.calculator import compute_metrics, parquet_stream

    start = time.perf_counter()
    if task == "floor":
        duckdb.sql(f"SELECT id, count(*), avg(gl) FROM '{path}' GROUP BY id").fetchall()
    elif task == "pandas":
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
    elif task.endswith("-whole"):
        compute_metrics(pq.read_table(path, read_dictionary=["id"]), task.removesuffix("-whole"))
    else:
        compute_metrics(parquet_stream(path), task)
    return time.perf_counter() - start


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


def measure(task: str, path: Path) -> dict[str, float]:
    """Run one task 1 + RUNS times in a fresh interpreter and read its peak RSS (VmHWM: unlike
    ru_maxrss, it is not inherited from the forking benchmark process)."""
    here = str(Path(__file__).parent)
    code = (
        f"import sys, json; sys.path.insert(0, {here!r});"
        "import bench_metrics as b; from pathlib import Path;"
        f"p = Path({str(path)!r}); c = b.run_task({task!r}, p);"
        f"r = sorted(b.run_task({task!r}, p) for _ in range({RUNS})); s = r[{RUNS} // 2];"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1];"
        "print(json.dumps({'seconds': s, 'slowest_seconds': r[-1], 'cold_seconds': c,"
        " 'peak_rss_mb': int(hwm) / 1024}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--smoke", action="store_true", help="20 patients only")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), choices=TASKS + EXTRA_TASKS)
    args = parser.parse_args()
    sizes = [20] if args.smoke else args.patients
    for patients in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cohort.parquet"
            readings = write_cohort(patients, path)
            floor = None
            if "families" in args.tasks:
                for family, seconds in family_seconds(path).items():
                    line = {"patients": patients, "family": family, "seconds": round(seconds, 3)}
                    print(json.dumps(line), flush=True)
            for task in (t for t in args.tasks if t in TASKS):
                m = measure(task, path)
                floor = m["seconds"] if task == "floor" else floor
                result = {
                    "patients": patients,
                    "readings": readings,
                    "task": task,
                    "seconds": round(m["seconds"], 3),
                    "slowest_seconds": round(m["slowest_seconds"], 3),
                    "cold_seconds": round(m["cold_seconds"], 3),
                    "readings_per_s": round(readings / m["seconds"]),
                    "peak_rss_mb": round(m["peak_rss_mb"]),
                    "x_floor": round(m["seconds"] / floor, 1) if floor else None,
                }
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
