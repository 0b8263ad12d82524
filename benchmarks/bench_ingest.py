"""Benchmark file ingest: readings/s from Parquet, CSV and JSONL files to a durable raw-zone batch.

For each size, a seeded synthetic cohort is written as Parquet, CSV and JSON lines; each file is
then ingested into a fresh lake (parse, validate, normalise, pseudonymise, dedupe, write the batch).
The baseline, measured in the same run on the same file, is a plain read of it: Arrow's reader
and DuckDB's ``read_parquet``/``read_csv``/``read_json`` (the cost of just getting the bytes into
columns). Targets (issue 4): >= 3,000,000 readings/s for Parquet, >= 1,000,000/s for CSV and JSONL.

With treatments (issue 19): the same cohort is also written as device exports that carry its
logged events (Tidepool: bolus, basal, wizard, insulin, food and activity datums in each
patient's array; Nightscout: each patient's entries and treatments files), and every file is
ingested as a user would upload it (one command per patient: its files, a Nightscout pump's
profile laid over the days of its entries and treatments; one batch per file; the patient and
zone from the manifest): readings/s and events/s over the whole folder, printed beside the
tabular figures; and one patient's treatments over a year as one file (events/s without the
per-file cost).
The figures go to benchmarks/results/ as JSON.

    python benchmarks/bench_ingest.py                   # 10^5 and 10^6 readings
    python benchmarks/bench_ingest.py --sizes 1000      # smoke size
    python benchmarks/bench_ingest.py --large 40000000  # also: peak memory of one large file

Each ingest goes into a lake whose metadata store already exists (a lake is created once).
"""

from __future__ import annotations

import argparse
import csv as csv_module
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import child_peak
import duckdb
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from glucosestream.config import IngestSettings, LakeSettings, Settings
from glucosestream.formats import read_raw_rows
from glucosestream.ingest import ingest_path, ingest_paths
from glucosestream.lake import open_metadata
from glucosestream.synth import CohortSpec, write_cohort

READINGS_PER_PATIENT_DAY = 288  # 5-minute sampling
DAYS = 14
RESULTS = Path(__file__).parent / "results"
SECRET = "bench-secret-0123456789abcdef0123456789"


def timed(func):
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


def cohort(size: int, work: Path) -> tuple[Path, Path, Path, int]:
    per_patient = READINGS_PER_PATIENT_DAY * DAYS
    patients = max(1, round(size / per_patient))
    days = DAYS if size >= per_patient else max(1, size // READINGS_PER_PATIENT_DAY)
    spec = CohortSpec(patients=patients, days=days, profile="mixed", interval_min=5, seed=0)
    parquet, csv, jsonl = (work / f"c{size}.{ext}" for ext in ("parquet", "csv", "jsonl"))
    readings = write_cohort(spec, parquet, "parquet").readings
    write_cohort(spec, csv, "csv")
    write_cohort(spec, jsonl, "jsonl")
    return parquet, csv, jsonl, readings


def baselines(parquet: Path, csv: Path, jsonl: Path) -> dict[str, float]:
    con = duckdb.connect()
    plain = {
        "arrow_read_parquet_s": lambda: pq.read_table(parquet),
        "arrow_read_csv_s": lambda: pa_csv.read_csv(csv),
        "arrow_read_jsonl_s": lambda: pa_json.read_json(jsonl),
        "duckdb_read_parquet_s": lambda: con.execute(
            f"SELECT * FROM read_parquet('{parquet}')"
        ).to_arrow_table(),
        "duckdb_read_csv_s": lambda: con.execute(
            f"SELECT * FROM read_csv('{csv}')"
        ).to_arrow_table(),
        "duckdb_read_jsonl_s": lambda: con.execute(
            f"SELECT * FROM read_json('{jsonl}', format='newline_delimited')"
        ).to_arrow_table(),
    }
    figures = {}
    for name, read in plain.items():
        read()  # warm the page cache and the allocator
        figures[name] = timed(read)[1]
    return figures


def bench(size: int, work: Path) -> dict:
    parquet, csv, jsonl, n = cohort(size, work)
    figures: dict = {"readings": n, **baselines(parquet, csv, jsonl)}
    for fmt, path in (("parquet", parquet), ("csv", csv), ("jsonl", jsonl)):
        figures[f"parse_{fmt}_s"] = timed(lambda p=path: read_raw_rows(p))[1]
        settings = Settings(
            lake=LakeSettings(root=str(work / f"lake-{size}-{fmt}")),
            ingest=IngestSettings(pseudonym_secret=SECRET),
        )
        open_metadata(settings.lake)  # a lake is made once: its store is not part of an ingest
        cpu_started = time.process_time()
        report, seconds = timed(lambda s=settings, p=path: ingest_path(s, p))
        figures[f"ingest_{fmt}_cpu_s"] = time.process_time() - cpu_started  # all threads
        if report.accepted != n:
            raise SystemExit(f"{fmt}: accepted {report.accepted} of {n} readings")
        figures[f"ingest_{fmt}_s"] = seconds
        figures[f"ingest_{fmt}_readings_per_s"] = n / seconds
        figures[f"ingest_{fmt}_vs_arrow_read"] = seconds / figures[f"arrow_read_{fmt}_s"]
    return figures


def bench_devices(size: int, work: Path) -> dict:
    """Ingest the cohort of ``size`` readings as Tidepool and as Nightscout exports, events
    included: every file of the folder, one batch each."""
    per_patient = READINGS_PER_PATIENT_DAY * DAYS
    patients = max(1, round(size / per_patient))
    days = DAYS if size >= per_patient else max(1, size // READINGS_PER_PATIENT_DAY)
    spec = CohortSpec(patients=patients, days=days, profile="mixed", interval_min=5, seed=0)
    figures: dict = {}
    for fmt in ("tidepool", "nightscout"):
        folder = work / f"{fmt}-{size}"
        synth = write_cohort(spec, folder, fmt)
        with (folder / "manifest.tsv").open(newline="") as f:
            manifest = list(csv_module.DictReader(f, delimiter="\t"))
        # One command per patient, as a user uploads a site's export: the entries, the
        # treatments and a pump's profile (laid over the days of the other two).
        uploads = [
            ([folder / n for n in (m["file"], m["treatments"], m["basal_profile"]) if n], m)
            for m in manifest
        ]
        settings = Settings(
            lake=LakeSettings(root=str(work / f"lake-{size}-{fmt}")),
            ingest=IngestSettings(pseudonym_secret=SECRET),
        )
        open_metadata(settings.lake)
        readings = events = 0
        cpu_started, started = time.process_time(), time.perf_counter()
        for paths, entry in uploads:
            reports = ingest_paths(settings, paths, patient_id=entry["patient_id"], tz=entry["tz"])
            readings += sum(r.accepted for r in reports)
            events += sum(r.events_accepted for r in reports)
        seconds = time.perf_counter() - started
        if readings != synth.readings or events != synth.events:
            raise SystemExit(
                f"{fmt}: accepted {readings} of {synth.readings} readings, "
                f"{events} of {synth.events} events"
            )
        figures[f"ingest_{fmt}_files"] = sum(len(paths) for paths, _ in uploads)
        figures[f"ingest_{fmt}_readings"] = readings
        figures[f"ingest_{fmt}_events"] = events
        figures[f"ingest_{fmt}_s"] = seconds
        figures[f"ingest_{fmt}_cpu_s"] = time.process_time() - cpu_started
        figures[f"ingest_{fmt}_readings_per_s"] = readings / seconds
        figures[f"ingest_{fmt}_events_per_s"] = events / seconds
    return figures


def bench_treatments_file(days: int, work: Path) -> dict:
    """One type 1 patient's Nightscout treatments over ``days`` days, one file: events/s of
    reading, checking and writing events without the per-file cost of many small uploads."""
    spec = CohortSpec(patients=1, days=days, profile="t1d", interval_min=5, seed=0)
    folder = work / f"treatments-{days}"
    write_cohort(spec, folder, "nightscout")
    with (folder / "manifest.tsv").open(newline="") as f:
        entry = next(csv_module.DictReader(f, delimiter="\t"))
    settings = Settings(
        lake=LakeSettings(root=str(work / f"lake-treatments-{days}")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )
    open_metadata(settings.lake)
    path = folder / entry["treatments"]
    parsed, parse_s = timed(lambda: read_raw_rows(path)[1])
    cpu_started = time.process_time()
    report, seconds = timed(
        lambda: ingest_path(settings, path, patient_id=entry["patient_id"], tz=entry["tz"])
    )
    return {
        "days": days,
        "events": report.events_accepted,
        "parse_s": parse_s,
        "ingest_s": seconds,
        "cpu_s": time.process_time() - cpu_started,
        "events_per_s": report.events_accepted / seconds,
        "raw_event_rows": 0 if parsed.events is None else parsed.events.num_rows,
    }


def bench_large(readings: int, work: Path) -> dict:
    """One Parquet file of about ``readings`` readings ingested by the command line in a child
    process: its wall time and peak resident memory (the file is read in chunks)."""
    patients = max(1, round(readings / (READINGS_PER_PATIENT_DAY * DAYS)))
    path = work / f"large-{readings}.parquet"
    spec = CohortSpec(patients=patients, days=DAYS, profile="mixed", interval_min=5, seed=1)
    n = write_cohort(spec, path, "parquet").readings
    command = child_peak.command(["ingest", str(path), "--json"])
    env = {**os.environ, "GLUCOSESTREAM_LAKE": str(work / "lake-large")}
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, env=env, text=True)
    seconds = time.perf_counter() - started
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "readings": n,
        "ingest_s": seconds,
        "readings_per_s": n / seconds,
        "cpu_s": child.ru_utime + child.ru_stime,
        "peak_rss_mb": child_peak.peak_rss_mb(done.stderr),
    }


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--large",
        type=int,
        default=0,
        help="also ingest one Parquet file of this many readings in a child process and "
        "report its peak memory (e.g. 40000000; 0: skip)",
    )
    parser.add_argument(
        "--device-sizes",
        type=int,
        nargs="*",
        default=[100_000],
        help="sizes (readings) also ingested as Tidepool and Nightscout exports with their "
        "events (one file per patient; none: skip)",
    )
    parser.add_argument(
        "--treatments-days",
        type=int,
        default=365,
        help="also ingest one patient's Nightscout treatments over this many days as one file "
        "(0: skip)",
    )
    args = parser.parse_args()
    results = []
    large = treatments = None
    with tempfile.TemporaryDirectory(prefix="gs-bench-ingest-") as tmp:
        warm_up = Path(tmp) / "warm-up"
        warm_up.mkdir()
        bench(1_000, warm_up)  # imports, DuckDB start, first-touch memory
        bench_devices(1_000, warm_up)
        for size in args.sizes:
            f = bench(size, Path(tmp))
            if size in args.device_sizes:
                f.update(bench_devices(size, Path(tmp)))
            results.append(f)
            print(f"{f['readings']:>9,} readings:")
            for fmt in ("parquet", "csv", "jsonl"):
                print(
                    f"  {fmt:<8} ingest {f[f'ingest_{fmt}_readings_per_s']:>10,.0f}/s "
                    f"({f[f'ingest_{fmt}_s']:.2f} s, CPU {f[f'ingest_{fmt}_cpu_s']:.2f} s; "
                    f"parse alone {f[f'parse_{fmt}_s']:.2f} s; "
                    f"plain Arrow read {f[f'arrow_read_{fmt}_s']:.3f} s, "
                    f"DuckDB {f[f'duckdb_read_{fmt}_s']:.3f} s)"
                )
            for fmt in ("tidepool", "nightscout"):
                if f"ingest_{fmt}_s" in f:
                    print(
                        f"  {fmt:<10} ingest {f[f'ingest_{fmt}_readings_per_s']:>10,.0f} "
                        f"readings/s and {f[f'ingest_{fmt}_events_per_s']:,.0f} events/s "
                        f"({f[f'ingest_{fmt}_readings']:,} readings and "
                        f"{f[f'ingest_{fmt}_events']:,} events in {f[f'ingest_{fmt}_files']} "
                        f"files, {f[f'ingest_{fmt}_s']:.2f} s, "
                        f"CPU {f[f'ingest_{fmt}_cpu_s']:.2f} s)"
                    )
        if args.treatments_days:
            treatments = bench_treatments_file(args.treatments_days, Path(tmp))
            print(
                f"{treatments['events']:>9,} events in one Nightscout treatments file "
                f"({treatments['days']} days of a type 1 patient): "
                f"{treatments['events_per_s']:,.0f} events/s ({treatments['ingest_s']:.2f} s, "
                f"CPU {treatments['cpu_s']:.2f} s; parse alone {treatments['parse_s']:.2f} s)"
            )
        if args.large:
            large = bench_large(args.large, Path(tmp))
            print(
                f"{large['readings']:>9,} readings in one Parquet file: "
                f"{large['readings_per_s']:,.0f}/s ({large['ingest_s']:.1f} s, "
                f"CPU {large['cpu_s']:.1f} s), peak RSS {large['peak_rss_mb']:,.0f} MB"
            )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:,.0f} MB")
    record = {
        "git_sha": git_sha(),
        "load_average": os.getloadavg(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "peak_rss_mb": peak_mb,
        "results": results,
        "large": large,
        "treatments_file": treatments,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench_ingest-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
