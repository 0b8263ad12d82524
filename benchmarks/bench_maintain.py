"""Benchmark `glucosestream maintain`'s compaction on a lake whose every readings partition is
fragmented: each day's readings arrive in two halves (minutes 0-29, then 30-59), each ingested
and run on its own, so every (key digit, day) partition holds two files.

The stages run as their own `glucosestream` processes (wall time and peak RSS their own). The
baseline, in the same run on the same data, is DuckDB reading the lake's readings files, sorting
them in the table's write order and writing them as one Parquet file: the work a compaction does.

    python benchmarks/bench_maintain.py                    # 10,000 patients x 14 days
    python benchmarks/bench_maintain.py --patients 200 --days 3   # smoke size
    python benchmarks/bench_maintain.py --keep-lake DIR   # build the lake in DIR and keep it
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import duckdb
from bench_pipeline import RESULTS, SECRET, run_stage

from glucosestream.synth import CohortSpec, write_cohort


def halves(cohort: Path, work: Path) -> list[Path]:
    """The cohort as two files: minutes 0-29 of every hour, then 30-59 (DuckDB streams it)."""
    con = duckdb.connect()
    out = []
    for name, where in (("first", "minute(time) < 30"), ("second", "minute(time) >= 30")):
        path = work / f"{name}-halves.parquet"
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{cohort}') WHERE {where}) TO '{path}' "
            "(FORMAT parquet, ROW_GROUP_SIZE 1048576)"
        )
        out.append(path)
    con.close()
    return out


def floor_seconds(lake: Path, work: Path) -> float:
    """DuckDB: read the readings' data files, sort them in write order, write one file."""
    files = f"'{lake}/warehouse/curated/readings/data/**/*.parquet'"
    started = time.perf_counter()
    duckdb.execute(
        f"COPY (SELECT * FROM read_parquet({files}) ORDER BY patient_key, device_id, ts) "
        f"TO '{work / 'floor.parquet'}' (FORMAT parquet)"
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--keep-lake", type=Path, help="build the lake in this (new) folder")
    parser.add_argument("--build-only", action="store_true", help="build the lake, no maintain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gs-bench-maintain-") as tmp:
        work = Path(tmp)
        lake = args.keep_lake.resolve() if args.keep_lake else work / "lake"
        env = {
            **os.environ,
            "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
            "GLUCOSESTREAM_LAKE": str(lake),
        }
        spec = CohortSpec(patients=args.patients, days=args.days, seed=0)
        cohort = Path(write_cohort(spec, work / "cohort.parquet", "parquet").path)
        parts = halves(cohort, work)
        cohort.unlink()
        for part in parts:
            for stage in (["ingest", str(part)], ["run"]):
                result = run_stage(stage, env)
                print(f"  {' '.join(stage)[:40]:40} {result['s']:7.1f} s")
        if args.build_only:
            return
        floor = floor_seconds(lake, work)
        result = run_stage(["maintain"], env)
        compacted = result["report"]["compacted_files"]  # type: ignore[index]
        record = {
            "patients": args.patients,
            "days": args.days,
            "maintain_s": result["s"],
            "maintain_peak_rss_mb": result["peak_rss_mb"],
            "compacted_files": compacted,
            "floor_s": floor,
            "maintain_vs_floor": result["s"] / floor,
        }
        print(
            f"maintain {result['s']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB; "
            f"DuckDB read-sort-write floor {floor:.1f} s; ratio {result['s'] / floor:.1f}x"
        )
        print(f"compacted (files before, after): {json.dumps(compacted)}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_maintain-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
