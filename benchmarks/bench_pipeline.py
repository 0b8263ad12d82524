"""Benchmark the walking skeleton: synth → ingest (Parquet and CSV) → run, on seeded cohorts.

Prints readings/s per stage and the ratio to DuckDB's scan-and-aggregate floor measured in the
same run on the same file (daily mean per patient straight from the Parquet file), plus peak
RSS. Writes the figures as JSON to benchmarks/results/.

    python benchmarks/bench_pipeline.py                 # 10^5 and 10^6 readings
    python benchmarks/bench_pipeline.py --sizes 1000    # smoke size
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.ingest import ingest_path
from glucosestream.pipeline import run_pipeline
from glucosestream.synth import CohortSpec, write_cohort

READINGS_PER_PATIENT_DAY = 288  # 5-minute sampling
DAYS = 14
RESULTS = Path(__file__).parent / "results"


def timed(func):
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


def floor_seconds(parquet: Path) -> float:
    con = duckdb.connect()
    sql = (
        "SELECT patient_id, CAST(time AS DATE) AS d, avg(glucose_mg_dl), count(*) "
        f"FROM read_parquet('{parquet}') GROUP BY ALL"
    )
    con.execute(sql).fetchall()  # warm-up
    _, seconds = timed(lambda: con.execute(sql).fetchall())
    return seconds


def bench(size: int, work: Path) -> dict:
    patients = max(1, round(size / (READINGS_PER_PATIENT_DAY * DAYS)))
    days = (
        DAYS
        if size >= READINGS_PER_PATIENT_DAY * DAYS
        else max(1, size // READINGS_PER_PATIENT_DAY)
    )
    spec = CohortSpec(patients=patients, days=days, profile="mixed", interval_min=5, seed=0)
    parquet = work / f"c{size}.parquet"
    csv = work / f"c{size}.csv"
    synth, synth_s = timed(lambda: write_cohort(spec, parquet, "parquet"))
    write_cohort(spec, csv, "csv")
    n = synth.readings
    figures = {"readings": n, "patients": patients, "days": days}
    floor = floor_seconds(parquet)
    figures["floor_s"] = floor
    for fmt, path in (("parquet", parquet), ("csv", csv)):
        settings = Settings(
            lake=LakeSettings(root=str(work / f"lake-{size}-{fmt}")),
            ingest=IngestSettings(pseudonym_secret="bench-secret-0123456789abcdef0123456789"),
        )
        _, ingest_s = timed(lambda s=settings, p=path: ingest_path(s, p))
        figures[f"ingest_{fmt}_s"] = ingest_s
        if fmt == "parquet":
            report, run_s = timed(lambda s=settings: run_pipeline(s))
            figures["run_s"] = run_s
            figures["run_status"] = report.status
    figures["synth_s"] = synth_s
    for key in ("synth", "ingest_parquet", "ingest_csv", "run"):
        seconds = figures[f"{key}_s"]
        figures[f"{key}_readings_per_s"] = n / seconds
        figures[f"{key}_vs_floor"] = seconds / floor
    return figures


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="gs-bench-") as tmp:
        for size in args.sizes:
            figures = bench(size, Path(tmp))
            results.append(figures)
            print(
                f"{figures['readings']:>9,} readings: "
                f"synth {figures['synth_readings_per_s']:>11,.0f}/s  "
                f"ingest parquet {figures['ingest_parquet_readings_per_s']:>9,.0f}/s  "
                f"ingest csv {figures['ingest_csv_readings_per_s']:>9,.0f}/s  "
                f"run {figures['run_readings_per_s']:>9,.0f}/s  "
                f"(floor {figures['floor_s'] * 1000:.0f} ms; "
                f"run = {figures['run_vs_floor']:.0f}x floor, "
                f"ingest parquet = {figures['ingest_parquet_vs_floor']:.0f}x floor)"
            )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB")
    record = {
        "git_sha": git_sha(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "peak_rss_mb": peak_mb,
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_pipeline-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
