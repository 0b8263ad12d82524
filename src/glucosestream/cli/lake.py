"""Commands over the lake: ingest, run, runs, metrics, maintain, report, audit."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Literal, cast

import click
import pyarrow as pa

from glucosestream.cli.base import Context, common, main
from glucosestream.cli.render import (
    daily_table,
    ingest_text,
    period_table,
    run_text,
    runs_text,
    window_summary_text,
)
from glucosestream.cli.run_options import execution_of, run_options
from glucosestream.clock import utc_now
from glucosestream.errors import (
    BatchesRejected,
    ConfigError,
    NotFound,
    QualityGateFailed,
)
from glucosestream.formats import FORMATS
from glucosestream.ingest import ingest_paths
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.lake import maintain as maintain_lake
from glucosestream.lake import open_metadata
from glucosestream.metrics import calculate_file
from glucosestream.pipeline import run_pipeline
from glucosestream.pipeline.table_registry import TABLES
from glucosestream.published import PublishedLake, PublishedRun, window_summary

__all__ = ["audit", "ingest", "maintain", "metrics", "report", "run", "runs"]


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
@common
def ingest(
    ctx: Context, paths: tuple[Path, ...], fmt: str, patient_id: str | None, tz: str | None
) -> None:
    """Ingest files into the lake's raw zone (run `glucosestream run` next).

    A Nightscout profile (its basal schedule) is laid over the days of the entries and
    treatments ingested with it, so pass them in one command.

    Example: glucosestream ingest cohort.csv --tz Europe/London
    """
    if patient_id is not None and not patient_id.strip():
        raise ConfigError("--patient is empty; pass the patient's id")
    # every path is checked before any file is ingested
    reports = ingest_paths(ctx.settings, paths, fmt=fmt, patient_id=patient_id, tz=tz)
    if ctx.as_json:
        ctx.emit([dataclasses.asdict(r) for r in reports], "")
    else:
        click.echo("\n".join(ingest_text(r) for r in reports))


@main.command()
@click.option("--full-refresh", is_flag=True, help="Recompute every patient-day.")
@run_options
@common
def run(
    ctx: Context,
    full_refresh: bool,
    workers: int | None,
    cluster: str | None,
    memory_budget: int | None,
) -> None:
    """Load new raw batches, compute metrics, check quality, publish.

    A run is a plan, one task per bucket of patients, and one publish. The tasks run in worker
    processes on every core (--workers N), or on a running Ray cluster (--cluster ADDRESS),
    whose nodes must reach the lake (an s3:// lake; a folder only on a one-machine cluster).

    Example: glucosestream run --workers 2 --memory-budget 4G
    """
    execution = execution_of(ctx, workers, cluster, memory_budget)
    report = run_pipeline(ctx.settings, full_refresh=full_refresh, execution=execution)
    ctx.emit(report, run_text(report))
    if report.rejected:
        batch_ids = [r.batch_id for r in report.rejected]
        failed = sorted({c.split(":")[0] for r in report.rejected for c in r.reason.split("; ")})
        raise click.ClickException(str(BatchesRejected(failed, batch_ids, run_id=report.run_id)))
    if report.status == "failed":
        raise click.ClickException(
            str(QualityGateFailed(report.failed_checks, run_id=report.run_id))
        )


@main.command()
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Runs shown."
)
@common
def runs(ctx: Context, limit: int) -> None:
    """Show the run history: status, step timings, row counts and check results.

    Example: glucosestream runs --limit 5
    """
    history = open_metadata(ctx.settings.lake).run_history(limit)
    ctx.emit({"runs": history}, runs_text(history))


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
@common
def metrics(
    ctx: Context,
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
    """Print a patient's summary and days, published daily metrics, or the catalog for a file.

    With --patient and no --out or --periods: one summary of the window (the consensus set
    against its targets, the research catalog, sufficiency), then its days. Without dates the
    window is the patient's whole data up to the last complete day (a partial newest day is
    shown among the days, never counted). --json gives {"summary": ..., "days": [...]}.

    Example: glucosestream metrics --patient P00001 --from 2026-01-05 --to 2026-01-18

    Example: glucosestream metrics --input cgm.csv --names iglu --out metrics.csv
    """
    if input_path is not None:
        _calculate(ctx, input_path, out, metric_set, names, episodes_path)
        return
    days = (date_from.date() if date_from else None, date_to.date() if date_to else None)
    if days[0] is not None and days[1] is not None and days[0] > days[1]:
        raise click.UsageError(f"--from {days[0]} is after --to {days[1]}; swap them")
    if patient_id is not None and out is None and not periods:
        _patient_summary(ctx, patient_id, days)
        return
    table = _published_metrics(ctx, patient_id, days, periods=periods)
    if out is not None:
        _write_table(table, out)
        ctx.emit(
            {"rows": table.num_rows, "out": str(out)},
            f"metrics: wrote {table.num_rows} rows to {out}",
        )
    elif periods:
        ctx.emit({"periods": table.to_pylist()}, period_table(table.to_pylist()))
    else:
        ctx.emit({"days": table.to_pylist()}, daily_table(table.to_pylist()))


def _calculate(
    ctx: Context,
    input_path: Path,
    out: Path | None,
    metric_set: Literal["consensus", "all"],
    names: Literal["glucosestream", "iglu"],
    episodes_path: Path | None,
) -> None:
    """The standalone calculator: the catalog for an id,time,gl file (no lake)."""
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


def _patient_summary(
    ctx: Context, patient_id: str, days: tuple[dt.date | None, dt.date | None]
) -> None:
    """One patient's summary of the window, then its days (each day of the range asked for, the
    partial newest day included and marked)."""
    if not patient_id.strip():
        raise ConfigError("--patient is empty; pass the patient's id (as ingested)")
    run = _published_run(ctx)
    key = patient_key(load_secret(ctx.settings), patient_id)
    if key not in run.daily_index():
        raise NotFound(
            "no published data for that patient; check the id (as ingested) with "
            "`glucosestream metrics` (every patient's days), or ingest and run their files"
        )
    rows = run.daily_index().patient_days(key, *days).to_pylist()
    try:
        summary = window_summary(run, key, *days, now=utc_now())
    except NotFound as err:
        if not rows:  # nothing in the window: say which days the patient has
            raise
        # only the partial newest day: its days are shown, there is nothing to summarise
        ctx.emit(
            {"patient_key": key, "summary": None, "summary_note": str(err), "days": rows},
            f"no summary: {err}\ndays\n" + daily_table(rows),
        )
        return
    for row in rows:
        row["partial"] = row["date"] == summary.partial_day
    ctx.emit(
        {"patient_key": key, "summary": summary.as_json(), "days": rows},
        window_summary_text(summary) + "\ndays\n" + daily_table(rows),
    )


def _published_run(ctx: Context) -> PublishedRun:
    """The last published run; a clear error before the first."""
    run = PublishedLake(ctx.settings).current()
    if not run.is_published:
        raise NotFound(
            f"the lake at {ctx.settings.lake.location} has no published metrics yet; "
            "run `glucosestream ingest FILE` then `glucosestream run`"
        )
    return run


def _published_metrics(
    ctx: Context,
    patient_id: str | None,
    days: tuple[dt.date | None, dt.date | None],
    *,
    periods: bool,
) -> pa.Table:
    """Published daily metrics (or closed periods) of one patient or all, at the last run."""
    key = patient_key(load_secret(ctx.settings), patient_id) if patient_id else None
    run = _published_run(ctx)
    table = run.results("periods", key) if periods else run.daily(key, *days)
    if key is not None and table.num_rows == 0 and not (any(days) or periods):
        raise NotFound(
            "no published metrics for that patient; check the id (as ingested) and the lake"
        )
    return table


@main.command()
@click.option("--no-compact", is_flag=True, help="Do not rewrite small files.")
@click.option(
    "--expire-days",
    type=click.IntRange(0, 36_500),
    default=7,
    show_default=True,
    help="Expire snapshots older than this many days (and delete their files).",
)
@click.option("--erase-patient", "erase_id", help="Erase this patient (id as ingested) everywhere.")
@common
def maintain(ctx: Context, no_compact: bool, expire_days: int, erase_id: str | None) -> None:
    """Compact small files, expire old snapshots, or erase one patient from every zone.

    Example: glucosestream maintain --erase-patient P00042
    """
    key = patient_key(load_secret(ctx.settings), erase_id) if erase_id else None
    known = key is None or _is_known(ctx, key)
    report = maintain_lake(
        ctx.settings.lake,
        TABLES,
        compact=not no_compact,
        expire_older_than=dt.timedelta(days=expire_days),
        erase_patient_key=key,
    )
    erased = (
        report.erased_readings + report.erased_events + report.erased_days + report.erased_raw_rows
    )
    if not known and not erased:  # a typo must not read as a completed erasure
        raise NotFound(
            "no patient with that id in this lake, so nothing was erased (the rest of the "
            "maintenance ran); check --erase-patient (the id as ingested)"
        )
    lines = [f"maintain {report.run_id}: {report.duration_ms} ms"]
    lines += [f"  compacted {t}: {a} files -> {b}" for t, (a, b) in report.compacted_files.items()]
    lines.append(
        f"  expired {report.expired_snapshots} snapshots, deleted {report.deleted_files} files"
    )
    if key is not None:
        lines.append(
            f"  erased {report.erased_readings} readings, {report.erased_events} events, "
            f"{report.erased_days} daily rows and {report.erased_raw_rows} raw rows of that "
            "patient, and their identity mapping"
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
@common
def report(ctx: Context, patient_id: str, out: Path, end: dt.datetime | None, unit: str) -> None:
    """Write a patient's AGP report (the one-page clinical summary of 14 days).

    Example: glucosestream report --patient P00001 --out agp.pdf
    """
    from glucosestream.dashboard.report import render_agp_pdf

    if out.suffix.lower() not in (".pdf", ".html"):
        raise ConfigError(f"cannot write {out.name}: use a .pdf or .html file name")
    key = patient_key(load_secret(ctx.settings), patient_id)
    shown_in = cast(Literal["mg_dl", "mmol_l"], unit)  # click.Choice checked it
    written = render_agp_pdf(ctx.settings, key, out, end=end.date() if end else None, unit=shown_in)
    ctx.emit({"out": str(written)}, f"report: wrote the AGP report to {written}")


@main.command()
@click.option("--patient", "patient_id", help="The patient's id (as ingested).")
@click.option("--logins", is_flag=True, help="List logins to the pages instead, failed ones too.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@common
def audit(ctx: Context, patient_id: str | None, logins: bool, limit: int) -> None:
    """List who read a patient's data, when and what (the access audit trail), newest first;
    or, with --logins, every login to the pages (failed ones with the address and why).

    Example: glucosestream audit --patient P00001
    """
    from glucosestream.dashboard.audit import audit_lines, login_lines

    if logins == (patient_id is not None):
        raise click.UsageError("pass either --patient ID or --logins")
    if patient_id is None:
        lines = login_lines(ctx.settings, limit=limit)
        ctx.emit({"entries": lines}, "\n".join(lines) or "no logins recorded")
        return
    key = patient_key(load_secret(ctx.settings), patient_id)
    lines = audit_lines(ctx.settings, key, limit=limit)
    if not lines and not _is_known(ctx, key):  # a typo must not read as "nobody looked"
        raise NotFound(
            "no patient with that id in this lake, and no reads of it recorded; check --patient "
            "(the id as ingested)"
        )
    ctx.emit({"entries": lines}, "\n".join(lines) or "no reads of that patient's data recorded")


def _is_known(ctx: Context, key: str) -> bool:
    """Whether the lake has ever ingested the patient of this key (and not erased them)."""
    return key in set(open_metadata(ctx.settings.lake).patient_keys())


def _write_table(table: Any, out: Path) -> None:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if out.suffix.lower() == ".parquet":
        pq.write_table(table, out)
    elif out.suffix.lower() == ".csv":
        pa_csv.write_csv(table, out)
    else:
        raise ConfigError(f"cannot write {out.name}: use a .csv or .parquet file name")
