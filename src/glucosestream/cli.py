"""The ``glucosestream`` command. Thin: parse → Settings → call a stage → print its report.

Every command prints a short human report, or the report as JSON with ``--json``. Errors are
one line with the next step and exit code 1 (2 for usage errors); ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from glucosestream.access import ROLES, create_token
from glucosestream.config import Settings
from glucosestream.errors import (
    BatchesRejected,
    ConfigError,
    GlucoseStreamError,
    QualityGateFailed,
)
from glucosestream.formats import FORMATS
from glucosestream.ingest import IngestReport, ingest_path
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.lake import open_lakehouse, open_metadata
from glucosestream.lake import tables as lake_tables
from glucosestream.lake.access_store import open_access
from glucosestream.lake.maintenance import maintain as maintain_lake
from glucosestream.metrics import calculate_file
from glucosestream.metrics.summary import PatientSummary, summarise_patients
from glucosestream.pipeline import RunReport, run_pipeline
from glucosestream.synth import PROFILES, SYNTH_FORMATS, CohortSpec, write_cohort

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])

_DEMO_PATIENTS = 6
_DEMO_DAYS = 14


class _Context:
    def __init__(self, settings: Settings, as_json: bool) -> None:
        self.settings = settings
        self.as_json = as_json

    def emit(self, report: Any, human: str) -> None:
        if self.as_json:
            data = (
                dataclasses.asdict(report)
                if dataclasses.is_dataclass(report) and not isinstance(report, type)
                else report
            )
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            click.echo(human)


def _common(func: F) -> F:
    """--lake, --json, --log-level and --debug, and translation of errors to one line."""

    @click.option(
        "--lake", metavar="DIR", help="Lake folder (default ./lake, or GLUCOSESTREAM_LAKE)."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
    @click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="warning",
        show_default=True,
    )
    @click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
    @functools.wraps(func)
    def wrapper(lake: str | None, as_json: bool, log_level: str, debug: bool, **kwargs: Any) -> Any:
        logging.basicConfig(
            level=log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
        )
        try:
            settings = Settings.from_env().override("lake", root=lake)
            return func(_Context(settings, as_json), **kwargs)
        except GlucoseStreamError as err:
            if debug:
                raise
            raise click.ClickException(str(err)) from err

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="glucosestream")
def main() -> None:
    """GlucoseStream: CGM readings in, consensus metrics and reports out.

    Quick start: glucosestream demo
    """


@main.command()
@click.option(
    "--patients",
    type=click.IntRange(1, 10_000),
    default=_DEMO_PATIENTS,
    show_default=True,
    help="Synthetic patients.",
)
@click.option(
    "--days", type=click.IntRange(1, 366), default=_DEMO_DAYS, show_default=True, help="Days each."
)
@click.option("--no-serve", is_flag=True, help="Stop after the metrics table.")
@click.option(
    "--port", type=int, default=None, help="Port to serve on (default 8000 or a free one)."
)
@_common
def demo(ctx: _Context, patients: int, days: int, no_serve: bool, port: int | None) -> None:
    """Synthesise patients, ingest, run the pipeline, print metrics, serve the pages.

    Example: glucosestream demo --no-serve --lake /tmp/demo-lake
    """
    settings = ctx.settings
    if not _lake_given(ctx):
        settings = settings.override("lake", root=tempfile.mkdtemp(prefix="glucosestream-demo-"))
    _check_demo_lake(settings.lake.root_path)
    spec = CohortSpec(patients=patients, days=days, profile="mixed", interval_min=5, seed=0)
    with tempfile.TemporaryDirectory(prefix="glucosestream-synth-") as tmp:
        synth = write_cohort(spec, Path(tmp) / "cohort.csv", "csv")
        ingested = ingest_path(settings, Path(synth.path))
    run = run_pipeline(settings)
    summaries = _summaries(settings)
    if ctx.as_json:
        ctx.emit(
            {
                "lake": str(settings.lake.root_path),
                "synth": dataclasses.asdict(synth),
                "ingest": dataclasses.asdict(ingested),
                "run": dataclasses.asdict(run),
                "patients": [dataclasses.asdict(s) for s in summaries],
            },
            "",
        )
    else:
        click.echo(f"lake: {settings.lake.root_path}")
        click.echo(f"synth: {synth.readings} readings, {patients} patients x {days} days")
        click.echo(_ingest_text(ingested))
        click.echo(_run_text(run))
        click.echo()
        click.echo(_summary_table(summaries))
    if no_serve:
        return
    chosen = (
        port if port is not None else _free_port(settings.dashboard.host, settings.dashboard.port)
    )
    settings = settings.override("dashboard", port=chosen)
    first = summaries[0].patient_key if summaries else ""
    admin = create_token(settings.lake, "admin", label="demo", now=dt.datetime.now(dt.UTC))
    click.echo(f"\nServing on http://{settings.dashboard.host}:{chosen}/patients/{first}")
    click.echo(f"Log in with this admin token (made for the demo): {admin}")
    click.echo("Press Ctrl+C to stop.")
    _serve(settings)


@main.command()
@click.option("--patients", type=click.IntRange(1), required=True, help="Number of patients.")
@click.option("--days", type=click.IntRange(1), required=True, help="Days of wear per patient.")
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    default="mixed",
    show_default=True,
    help="Population: healthy, t1d, t2d or a mix.",
)
@click.option(
    "--interval-min",
    type=click.Choice(["1", "5", "15"]),
    default="5",
    show_default=True,
    help="Sensor sampling interval in minutes.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same file.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(SYNTH_FORMATS),
    default="parquet",
    show_default=True,
    help="Output file format.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="File (parquet, csv, jsonl) or folder (dexcom, libreview, nightscout, tidepool, fhir: "
    "one export per patient) to write.",
)
@_common
def synth(
    ctx: _Context,
    patients: int,
    days: int,
    profile: str,
    interval_min: str,
    seed: int,
    fmt: str,
    out: Path,
) -> None:
    """Write a seeded synthetic CGM cohort to a file.

    Example: glucosestream synth --patients 10 --days 14 --format csv --out cohort.csv
    """
    spec = CohortSpec(patients, days, profile, int(interval_min), seed)  # type: ignore[arg-type]
    progress = _progress(ctx, "synth", patients * days * 1440 // int(interval_min))
    report = write_cohort(spec, out, fmt, on_chunk=progress)
    ctx.emit(
        report,
        f"synth: wrote {report.readings} readings ({patients} patients x {days} days) "
        f"to {report.path} in {report.duration_ms} ms",
    )


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *FORMATS]),
    default="auto",
    show_default=True,
    help="Input format; auto tells it from the file.",
)
@click.option("--patient", "patient_id", help="Patient id for every reading of the files.")
@click.option("--tz", help="IANA zone of times written without an offset (default UTC).")
@_common
def ingest(
    ctx: _Context, paths: tuple[Path, ...], fmt: str, patient_id: str | None, tz: str | None
) -> None:
    """Ingest files into the lake's raw zone (run `glucosestream run` next).

    Example: glucosestream ingest cohort.csv --tz Europe/London
    """
    reports = [ingest_path(ctx.settings, p, fmt=fmt, patient_id=patient_id, tz=tz) for p in paths]
    if ctx.as_json:
        ctx.emit([dataclasses.asdict(r) for r in reports], "")
    else:
        click.echo("\n".join(_ingest_text(r) for r in reports))


@main.command()
@click.option("--full-refresh", is_flag=True, help="Recompute every patient-day.")
@_common
def run(ctx: _Context, full_refresh: bool) -> None:
    """Load new raw batches, compute metrics, check quality, publish.

    Example: glucosestream run
    """
    report = run_pipeline(ctx.settings, full_refresh=full_refresh)
    ctx.emit(report, _run_text(report))
    if report.rejected:
        batch_ids = [r.batch_id for r in report.rejected]
        failed = sorted({c.split(":")[0] for r in report.rejected for c in r.reason.split("; ")})
        raise click.ClickException(str(BatchesRejected(failed, batch_ids, run_id=report.run_id)))
    if report.status == "failed":
        raise click.ClickException(
            str(QualityGateFailed(report.failed_checks, run_id=report.run_id))
        )


@main.command()
@click.option("--limit", type=click.IntRange(1), default=10, show_default=True, help="Runs shown.")
@_common
def runs(ctx: _Context, limit: int) -> None:
    """Show the run history: status, step timings, row counts and check results.

    Example: glucosestream runs --limit 5
    """
    history = open_metadata(ctx.settings.lake).run_history(limit)
    ctx.emit({"runs": history}, _runs_text(history))


@main.command()
@click.option("--patient", "patient_id", help="The patient's id (as ingested).")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First day.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last day.")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write .csv or .parquet."
)
@click.option(
    "--periods", is_flag=True, help="Closed 14-day periods (the full catalog) instead of days."
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Standalone calculator: an id,time,gl CSV or Parquet file (no lake needed).",
)
@click.option(
    "--set",
    "metric_set",
    type=click.Choice(["consensus", "all"]),
    default="all",
    show_default=True,
    help="With --input: which metrics.",
)
@click.option(
    "--names",
    type=click.Choice(["glucosestream", "iglu"]),
    default="glucosestream",
    show_default=True,
    help="With --input: column names (iglu: as iglu's all_metrics, and iglu's conventions).",
)
@click.option(
    "--episodes",
    "episodes_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --input: also write the episode table (iglu's episode_calculation columns).",
)
@_common
def metrics(
    ctx: _Context,
    patient_id: str | None,
    date_from: dt.datetime | None,
    date_to: dt.datetime | None,
    out: Path | None,
    periods: bool,
    input_path: Path | None,
    metric_set: Literal["consensus", "all"],
    names: Literal["glucosestream", "iglu"],
    episodes_path: Path | None,
) -> None:
    """Print (or write) published daily metrics, or compute the catalog for a file.

    Example: glucosestream metrics --patient P00001 --from 2026-01-05 --to 2026-01-11

    Example: glucosestream metrics --input cgm.csv --names iglu --out metrics.csv
    """
    if input_path is not None:
        if out is None:
            raise click.UsageError("--input needs --out FILE (.csv or .parquet)")
        ids = calculate_file(
            input_path, out, metric_set=metric_set, names=names, episodes_path=episodes_path
        )
        ctx.emit(
            {"ids": ids, "out": str(out), "episodes": str(episodes_path or "")},
            f"metrics: wrote {metric_set} metrics of {ids} ids to {out}"
            + (f" and their episodes to {episodes_path}" if episodes_path else ""),
        )
        return
    settings = ctx.settings
    key = patient_key(load_secret(settings), patient_id) if patient_id else None
    published = open_metadata(settings.lake).published()
    if published is None:
        raise ConfigError(
            f"the lake at {settings.lake.location} has no published metrics yet; "
            "run `glucosestream ingest FILE` then `glucosestream run`"
        )
    lake = open_lakehouse(settings.lake)
    if periods:
        spec = lake_tables.PERIOD_METRICS
        table = lake.read_results(spec, published.periods_snapshot_id, key)
        if out is None:
            ctx.emit({"periods": table.to_pylist()}, _period_table(table.to_pylist()))
            return
    else:
        table = lake.read_daily(
            published.daily_snapshot_id,
            key,
            date_from.date() if date_from else None,
            date_to.date() if date_to else None,
        )
    if key is not None and table.num_rows == 0 and not (date_from or date_to or periods):
        raise ConfigError(
            "no published metrics for that patient; check the id (as ingested) and the lake"
        )
    if out is not None:
        _write_table(table, out)
        ctx.emit(
            {"rows": table.num_rows, "out": str(out)},
            f"metrics: wrote {table.num_rows} rows to {out}",
        )
        return
    ctx.emit({"days": table.to_pylist()}, _daily_table(table.to_pylist()))


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8000).")
@_common
def serve(ctx: _Context, host: str | None, port: int | None) -> None:
    """Serve the ingest API and the dashboard.

    Example: glucosestream serve --port 8000
    """
    settings = ctx.settings.override("dashboard", host=host, port=port)
    click.echo(f"Serving on http://{settings.dashboard.host}:{settings.dashboard.port}/")
    _serve(settings)


@main.command()
@click.option("--no-compact", is_flag=True, help="Do not rewrite small files.")
@click.option(
    "--expire-days",
    type=click.IntRange(0),
    default=7,
    show_default=True,
    help="Expire snapshots older than this many days (and delete their files).",
)
@click.option("--erase-patient", "erase_id", help="Erase this patient (id as ingested) everywhere.")
@_common
def maintain(ctx: _Context, no_compact: bool, expire_days: int, erase_id: str | None) -> None:
    """Compact small files, expire old snapshots, or erase one patient from every zone.

    Example: glucosestream maintain --erase-patient P00042
    """
    key = patient_key(load_secret(ctx.settings), erase_id) if erase_id else None
    report = maintain_lake(
        ctx.settings.lake,
        compact=not no_compact,
        expire_older_than=dt.timedelta(days=expire_days),
        erase_patient_key=key,
    )
    lines = [f"maintain {report.run_id}: {report.duration_ms} ms"]
    lines += [f"  compacted {t}: {a} files -> {b}" for t, (a, b) in report.compacted_files.items()]
    lines.append(
        f"  expired {report.expired_snapshots} snapshots, deleted {report.deleted_files} files"
    )
    if key is not None:
        lines.append(
            f"  erased {report.erased_readings} readings, {report.erased_days} daily rows and "
            f"{report.erased_raw_rows} raw rows of that patient, and their identity mapping"
        )
    ctx.emit(report, "\n".join(lines))


@main.command()
@click.option("--patient", "patient_id", required=True, help="The patient's id (as ingested).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="agp.pdf (printed by headless Chromium) or agp.html (with its scripts beside it).",
)
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), help="Last day (default: newest).")
@click.option("--unit", type=click.Choice(["mg_dl", "mmol_l"]), default="mg_dl", show_default=True)
@_common
def report(ctx: _Context, patient_id: str, out: Path, end: dt.datetime | None, unit: str) -> None:
    """Write a patient's AGP report (the one-page clinical summary of 14 days).

    Example: glucosestream report --patient P00001 --out agp.pdf
    """
    from glucosestream.dashboard.report import render_agp_pdf

    if out.suffix.lower() not in (".pdf", ".html"):
        raise ConfigError(f"cannot write {out.name}: use a .pdf or .html file name")
    key = patient_key(load_secret(ctx.settings), patient_id)
    written = render_agp_pdf(ctx.settings, key, out, end=end.date() if end else None, unit=unit)
    ctx.emit({"out": str(written)}, f"report: wrote the AGP report to {written}")


@main.command()
@click.option("--patient", "patient_id", required=True, help="The patient's id (as ingested).")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@_common
def audit(ctx: _Context, patient_id: str, limit: int) -> None:
    """List who read a patient's data, when and what (the access audit trail), newest first.

    Example: glucosestream audit --patient P00001
    """
    from glucosestream.dashboard.audit import audit_lines

    key = patient_key(load_secret(ctx.settings), patient_id)
    lines = audit_lines(ctx.settings, key, limit=limit)
    ctx.emit({"entries": lines}, "\n".join(lines) or "no reads of that patient's data recorded")


@main.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the token may do.")
@click.option(
    "--patient",
    "patient_ids",
    multiple=True,
    help="Patient id (as ingested) the token is bound to; repeat for an uploader of several.",
)
@click.option("--clinic", "clinic_id", help="The clinic of a clinician token.")
@click.option("--label", default="", help="Who or what holds the token (shown in audits).")
@_common
def token_create(
    ctx: _Context, role: str, patient_ids: tuple[str, ...], clinic_id: str | None, label: str
) -> None:
    """Create a token; it is printed once and stored only as a hash.

    Example: glucosestream token create --role uploader --patient P00001
    """
    secret = load_secret(ctx.settings) if patient_ids else b""
    keys = [patient_key(secret, p) for p in patient_ids]
    value = create_token(
        ctx.settings.lake,
        role,
        label=label or role,
        now=dt.datetime.now(dt.UTC),
        patient_keys=keys,
        clinic_id=clinic_id,
    )
    ctx.emit(
        {"token": value, "role": role},
        f"token ({role}): {value}\nStore it now: it is not shown again.",
    )


@main.group()
def clinic() -> None:
    """Manage clinics (which patients a clinician token may read)."""


@clinic.command("add-patient")
@click.option("--clinic", "clinic_id", required=True, help="The clinic.")
@click.argument("patient_ids", nargs=-1, required=True)
@_common
def clinic_add_patient(ctx: _Context, clinic_id: str, patient_ids: tuple[str, ...]) -> None:
    """Put patients (ids as ingested) in a clinic.

    Example: glucosestream clinic add-patient --clinic north P00001 P00002
    """
    secret = load_secret(ctx.settings)
    added = open_access(ctx.settings.lake).add_clinic_patients(
        clinic_id, [patient_key(secret, p) for p in patient_ids]
    )
    ctx.emit({"clinic": clinic_id, "added": added}, f"clinic {clinic_id}: {added} patients added")


# ---- rendering ---------------------------------------------------------------------------


def _ingest_text(r: IngestReport) -> str:
    if r.already_ingested_as:
        return (
            f"ingest {r.source}: already ingested as batch {r.already_ingested_as}; "
            f"{r.received} received, all duplicates, nothing written"
        )
    text = (
        f"ingest {r.source}: received {r.received}, accepted {r.accepted}, "
        f"duplicates {r.duplicates}, quarantined {r.quarantined} (batch {r.batch_id})"
    )
    if r.top_reasons:
        text += "\n  quarantined because: " + "; ".join(f"{why} ({n})" for why, n in r.top_reasons)
    return text


def _run_text(r: RunReport) -> str:
    if r.status == "noop":
        return f"run {r.run_id}: {r.message}"
    lines = [
        f"run {r.run_id}: {r.message} — {r.batches} batches, {r.readings_in} readings in, "
        f"{r.readings_new} new, {r.duplicates} duplicates, {r.patient_days} patient-days "
        f"in {r.duration_ms} ms"
    ]
    lines += [f"  check {c.name}: {'ok' if c.passed else 'FAILED — ' + c.detail}" for c in r.checks]
    lines += [f"  rejected batch {b.batch_id}: {b.reason}" for b in r.rejected]
    if r.steps:
        lines.append("  steps: " + ", ".join(f"{s.step} {s.duration_ms} ms" for s in r.steps))
    return "\n".join(lines)


def _runs_text(history: list[dict[str, Any]]) -> str:
    if not history:
        return "no runs yet; run `glucosestream run`"
    lines = []
    for run in history:
        report = run["report"] or {}
        lines.append(
            f"{run['run_id']}  {run['status']:<9}  {report.get('readings_in', 0):>9} in  "
            f"{report.get('readings_new', 0):>9} new  {report.get('duplicates', 0):>7} dup  "
            f"{report.get('patient_days', 0):>6} days  {report.get('duration_ms', 0):>7} ms"
        )
        steps = report.get("steps") or []
        if steps:
            lines.append("    " + ", ".join(f"{s['step']} {s['duration_ms']} ms" for s in steps))
        failed = [c for c in run["checks"] if not c["passed"]]
        lines += [f"    check {c['check_name']} FAILED: {c['detail']}" for c in failed]
        lines += [
            f"    rejected {b['batch_id']}: {b['reason']}" for b in report.get("rejected", [])
        ]
    return "\n".join(lines)


def _summary_table(rows: list[PatientSummary]) -> str:
    head = (
        f"{'patient key':<34}{'days':>5}{'mean':>7}{'<70%':>7}{'70-180%':>9}{'>180%':>7}"
        f"{'GMI%':>6}{'active%':>9}"
    )
    body = [
        f"{s.patient_key:<34}{s.days:>5}{s.mean_mg_dl:>7.0f}{s.pct_below_70:>7.1f}"
        f"{s.pct_70_180:>9.1f}{s.pct_above_180:>7.1f}{s.gmi_pct:>6.1f}{s.pct_active:>9.0f}"
        for s in rows
    ]
    return "\n".join([head, *body]) if body else "no published metrics"


def _daily_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no published metrics in that range"
    head = (
        f"{'date':<11}{'n':>5}{'mean':>7}{'SD':>6}{'CV%':>6}{'GMI%':>6}{'<54%':>6}{'<70%':>6}"
        f"{'70-180%':>8}{'>180%':>7}{'>250%':>7}{'active%':>8}"
    )
    body = [
        f"{r['date']!s:<11}{r['readings']:>5}{r['mean_mg_dl']:>7.1f}{_num(r['sd_mg_dl']):>6}"
        f"{_num(r['cv_pct']):>6}{r['gmi_pct']:>6.2f}{r['pct_below_54']:>6.1f}{r['pct_below_70']:>6.1f}"
        f"{r['pct_70_180']:>8.1f}{r['pct_above_180']:>7.1f}{r['pct_above_250']:>7.1f}{r['pct_active']:>8.0f}"
        for r in rows
    ]
    return "\n".join([head, *body])


def _period_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no closed 14-day periods published yet (a period closes when later data arrives)"
    head = (
        f"{'patient key':<34}{'period':<24}{'n':>6}{'mean':>7}{'CV%':>6}{'GMI%':>6}"
        f"{'<70%':>6}{'70-180%':>8}{'GRI':>6}"
    )
    body = [
        f"{r['patient_key']:<34}{r['period_start']!s} - {r['period_end']!s} "
        f"{r['readings']:>6}{_num(r['mean_mg_dl']):>7}{_num(r['cv_pct']):>6}"
        f"{_num(r['gmi_pct']):>6}{_num(r['pct_below_70']):>6}{_num(r['pct_70_180']):>8}"
        f"{_num(r['gri']):>6}"
        for r in rows
    ]
    return "\n".join([head, *body])


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


# ---- plumbing ----------------------------------------------------------------------------


def _lake_given(ctx: _Context) -> bool:
    return ctx.settings.lake.root != Settings().lake.root


def _check_demo_lake(root: Path) -> None:
    if root.exists() and any(root.iterdir()) and not (root / "_state").is_dir():
        raise ConfigError(
            f"{root} is not empty and is not a GlucoseStream lake; pass an empty or new folder "
            "to --lake"
        )


def _summaries(settings: Settings) -> list[PatientSummary]:
    published = open_metadata(settings.lake).published()
    if published is None:
        return []
    return summarise_patients(open_lakehouse(settings.lake).read_daily(published.daily_snapshot_id))


def _progress(ctx: _Context, label: str, total: int) -> Callable[[int], None] | None:
    if ctx.as_json or not sys.stderr.isatty():
        return None

    def show(done: int) -> None:
        click.echo(f"\r{label}: {done:,}/{total:,} readings", nl=done >= total, err=True)

    return show


def _write_table(table: Any, out: Path) -> None:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if out.suffix.lower() == ".parquet":
        pq.write_table(table, out)
    elif out.suffix.lower() == ".csv":
        pa_csv.write_csv(table, out)
    else:
        raise ConfigError(f"cannot write {out.name}: use a .csv or .parquet file name")


def _free_port(host: str, preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise ConfigError(f"no free port on {host}; pass --port")


def _serve(settings: Settings) -> None:
    import uvicorn

    from glucosestream.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.dashboard.host,
        port=settings.dashboard.port,
        log_level="warning",
    )
