"""Benchmark the exports on a cohort lake: bytes and seconds of `export --all` in each format.

Synthesises patients x days (seed 0), ingests them, runs the pipeline (the run's time is the
baseline, measured in the same run on the same machine), then exports every patient in each
format, each as its own `glucosestream export` process (wall time, the child's own peak RSS
as `child_peak` reads it, files and bytes on disk, rows of each kind from its report). The FHIR
export runs without the AGP PDFs by default (`--no-pdf`: Chromium prints one report in about a
second or more, so 1,000 of them would measure Chromium); `--pdf-sample N` times N patients'
bundles with their PDF, to scale from. Results are printed and written as JSON to
benchmarks/results/bench_exports.json.

    nice python benchmarks/bench_exports.py                        # 1,000 patients x 14 days
    python benchmarks/bench_exports.py --patients 20 --days 3      # smoke size
    python benchmarks/bench_exports.py --formats fhir,csv --keep   # some formats; keep the lake
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
from pathlib import Path

import child_peak

from glucosestream.synth import CohortSpec, write_cohort

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
FORMATS = ("fhir", "omop", "csv", "parquet")


def stage(args: list[str], env: dict[str, str]) -> dict[str, object]:
    """``glucosestream *args --json`` in a child process: wall seconds, own peak RSS, report."""
    started = time.perf_counter()
    done = subprocess.run(
        child_peak.command([*args, "--json"]),
        env=env,
        capture_output=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    err = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {err[-2000:]}")
    text = done.stdout.decode()
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=0)
    report, _ = json.JSONDecoder().raw_decode(text[start:])
    return {"s": seconds, "peak_rss_mb": child_peak.peak_rss_mb(err), "report": report}


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_format(fmt: str, out: Path, env: dict[str, str], extra: list[str]) -> dict[str, object]:
    result = stage(["export", "--all", "--format", fmt, "--out", str(out), *extra], env)
    report = result["report"]
    assert isinstance(report, dict)
    figures = {
        "format": fmt,
        "s": result["s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "files": len(report["files"]),
        "bytes": report["bytes"],
        "bytes_on_disk": disk_bytes(out),
        "rows": report["rows"],
        "notes": report.get("notes", []),
    }
    print(
        f"  export {fmt:8} {result['s']:8.1f} s  {report['bytes'] / 2**20:9.1f} MiB in "
        f"{len(report['files']):5} files  peak {result['peak_rss_mb'] or 0:6.0f} MB  "
        + ", ".join(f"{k} {v:,}" for k, v in report["rows"].items())
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--pdf-sample", type=int, default=0, help="FHIR with PDF for N patients")
    parser.add_argument("--keep", action="store_true", help="Keep the lake and the exports.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    env = {
        **os.environ,
        "GLUCOSESTREAM_INGEST__PSEUDONYM_SECRET": SECRET,
        "GLUCOSESTREAM_LAKE": str(work / "lake"),
    }
    load_before = os.getloadavg()
    figures: dict[str, object] = {
        "patients": args.patients,
        "days": args.days,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "git_sha": _git_sha(),
        "load_avg_before": load_before,
    }
    try:
        started = time.perf_counter()
        spec = CohortSpec(patients=args.patients, days=args.days, seed=0)
        synth = write_cohort(spec, work / "cohort.parquet", "parquet")
        figures["readings"] = synth.readings
        figures["synth_s"] = time.perf_counter() - started
        ingest = stage(["ingest", str(work / "cohort.parquet")], env)
        run = stage(["run"], env)
        figures["ingest_s"], figures["run_s"] = ingest["s"], run["s"]
        print(
            f"{args.patients} patients x {args.days} days: {synth.readings:,} readings; "
            f"ingest {ingest['s']:.1f} s, run {run['s']:.1f} s (the baseline)"
        )
        exports = []
        for fmt in [f.strip() for f in args.formats.split(",") if f.strip()]:
            extra = ["--no-pdf"] if fmt == "fhir" else []
            exports.append(bench_format(fmt, work / f"out-{fmt}", env, extra))
        figures["exports"] = exports
        if args.pdf_sample:
            figures["fhir_with_pdf"] = _pdf_sample(args.pdf_sample, work, env)
    finally:
        figures["load_avg_after"] = os.getloadavg()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    print(f"load average before {load_before}, after {figures['load_avg_after']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_exports.json").write_text(json.dumps(figures, indent=2, default=str))


def _pdf_sample(patients: int, work: Path, env: dict[str, str]) -> list[dict[str, object]]:
    """FHIR bundles with their AGP PDF for the first ``patients`` patients, one at a time."""
    sample = []
    for number in range(1, patients + 1):
        out = work / f"pdf-{number}.json"
        result = stage(
            ["export", "--patient", f"P{number:05d}", "--format", "fhir", "--out", str(out)], env
        )
        sample.append({"s": result["s"], "bytes": disk_bytes(out)})
        print(f"  export fhir with PDF, 1 patient: {result['s']:.1f} s, {disk_bytes(out):,} bytes")
    return sample


def _git_sha() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, check=False
    )
    return done.stdout.decode().strip()


if __name__ == "__main__":
    main()
