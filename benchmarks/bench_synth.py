"""Benchmark the synthetic generator: readings/s writing a cohort to Parquet, and peak memory.

Each size runs in its own process (so its peak RSS is its own), after a small warm-up cohort
in that process (freshly allocated memory is slow the first time it is touched, PLATFORM.md).
Prints one line per size and writes the figures as JSON to benchmarks/results/.

    python benchmarks/bench_synth.py                          # 1,000 and 10,000 patients x 14 days
    python benchmarks/bench_synth.py --patients 100 --days 2  # smoke size
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from glucosestream.synth import CohortSpec, write_cohort

RESULTS = Path(__file__).parent / "results"


def run_one(patients: int, days: int, interval_min: int) -> dict[str, float | int | str]:
    """Generate and write one cohort in this process; return its figures."""
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        warm = CohortSpec(64, days, "mixed", interval_min, seed=1)
        write_cohort(warm, Path(tmp) / "warm.parquet", "parquet")
        spec = CohortSpec(patients, days, "mixed", interval_min, seed=0)
        out = Path(tmp) / "cohort.parquet"
        started, cpu = time.perf_counter(), time.process_time()
        report = write_cohort(spec, out, "parquet")
        wall_s = time.perf_counter() - started
        cpu_s = time.process_time() - cpu
        size = out.stat().st_size
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "patients": patients,
        "days": days,
        "interval_min": interval_min,
        "readings": report.readings,
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "readings_per_s": round(report.readings / wall_s),
        "readings_per_cpu_s": round(report.readings / cpu_s),
        "peak_rss_mib": round(peak_kib / 1024),
        "parquet_mib": round(size / 2**20, 1),
        "bytes_per_reading": round(size / report.readings, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--interval-min", type=int, default=5)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.patients[0], args.days, args.interval_min)))
        return
    figures = []
    for patients in args.patients:
        command = [
            sys.executable, __file__, "--one", "--patients", str(patients),
            "--days", str(args.days), "--interval-min", str(args.interval_min),
        ]  # fmt: skip
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        result = json.loads(done.stdout)
        figures.append(result)
        print(
            f"{result['patients']:>6} patients x {result['days']} days: "
            f"{result['readings']:>11,} readings in {result['wall_s']:6.1f} s wall "
            f"({result['readings_per_s']:>10,}/s; {result['readings_per_cpu_s']:>10,}/cpu-s), "
            f"peak RSS {result['peak_rss_mib']} MiB, {result['bytes_per_reading']} B/reading"
        )
    RESULTS.mkdir(exist_ok=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    record = {
        "benchmark": "synth",
        "git_sha": sha,
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": __import__("os").cpu_count(),
        "figures": figures,
    }
    path = RESULTS / f"synth-{int(time.time())}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
