"""The export command: the published lake for other systems (FHIR R4, OMOP CDM, tidy files)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import click

from glucosestream.cli.base import Context, common, main
from glucosestream.clock import utc_now
from glucosestream.errors import ConfigError, NotFound
from glucosestream.exports import ExportReport
from glucosestream.exports.window_readings import exported_ids
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.lake import open_metadata
from glucosestream.published import PublishedLake, PublishedRun

__all__ = ["export"]

Format = Literal["fhir", "omop", "csv", "parquet"]


@main.command()
@click.option("--patient", "patient_id", help="The patient's id (as ingested).")
@click.option("--all", "every", is_flag=True, help="Every patient of the lake.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["fhir", "omop", "csv", "parquet"]),
    required=True,
    help="fhir: HL7 CGM transaction Bundles; omop: OMOP CDM 5.4 tables; csv/parquet: tidy "
    "readings, events (insulin, carbs, ...) and metrics with a data dictionary.",
)
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First local day.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last local day.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="A folder (made if absent; refused if it holds files, unless --force); with --format "
    "fhir and one patient, a .json file; with omop, a name ending .parquet writes Parquet.",
)
@click.option("--force", is_flag=True, help="Write into a folder that holds files already.")
@click.option(
    "--pseudonymous",
    is_flag=True,
    help="Name patients by their key, not the id as ingested (and leave notes' text out).",
)
@click.option(
    "--unit",
    type=click.Choice(["mg_dl", "mmol_l"]),
    default="mg_dl",
    show_default=True,
    help="FHIR: the unit of glucose values (LOINC 99504-3 or 105272-9).",
)
@click.option("--no-pdf", is_flag=True, help="FHIR: leave out the AGP report PDF.")
@click.option("--omop-parquet", is_flag=True, help="OMOP: write Parquet into the --out folder.")
@common
def export(
    ctx: Context,
    patient_id: str | None,
    every: bool,
    fmt: Format,
    date_from: dt.datetime | None,
    date_to: dt.datetime | None,
    out: Path,
    force: bool,
    pseudonymous: bool,
    unit: Literal["mg_dl", "mmol_l"],
    no_pdf: bool,
    omop_parquet: bool,
) -> None:
    """Export patients' published readings and metrics for other systems.

    FHIR follows the HL7 CGM implementation guide: one transaction Bundle per patient (readings,
    the CGM summary, the AGP report as PDF), ready for its $submit-cgm-bundle operation.

    Example: glucosestream export --patient P00001 --format fhir --out p1.json

    Example: glucosestream export --all --format omop --from 2026-01-01 --out omop/
    """
    window = (date_from.date() if date_from else None, date_to.date() if date_to else None)
    _check_request(patient_id, every, window, out, force=force)
    run = _published_run(ctx)
    identities = _patients(ctx, patient_id, pseudonymous=pseudonymous)
    keys = sorted(identities)
    if fmt == "fhir":
        from glucosestream.exports.fhir_bundle import FhirOptions, write_fhir

        options = FhirOptions(
            unit="mg/dL" if unit == "mg_dl" else "mmol/L",
            pdf=not no_pdf,
            pseudonymous=pseudonymous,
        )
        report = write_fhir(
            run,
            keys,
            window,
            out,
            settings=ctx.settings,
            identities=identities,
            options=options,
            now=utc_now(),
        )
    else:
        report = _write_table_export(
            ctx,
            run,
            fmt,
            identities,
            window,
            out,
            omop_parquet=omop_parquet,
            keep_notes=not pseudonymous,
        )
    ctx.emit(report, _report_text(fmt, report))


def _check_request(
    patient_id: str | None,
    every: bool,
    window: tuple[dt.date | None, dt.date | None],
    out: Path,
    *,
    force: bool,
) -> None:
    """Refuse, before any reading is read, what cannot be exported as asked."""
    if every == (patient_id is not None):
        raise click.UsageError("pass either --patient ID or --all")
    if patient_id is not None and not patient_id.strip():
        raise ConfigError("--patient is empty; pass the patient's id (as ingested)")
    start, end = window
    if start and end and start > end:
        raise ConfigError(f"--from {start} is after --to {end}; give the first day first")
    if out.exists() and not out.is_dir():
        if not force:
            raise ConfigError(f"{out} exists; choose a new --out or pass --force to replace it")
    elif out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"{out} is a folder that holds files; choose an empty or new --out, or pass --force "
            "to write into it (files of the same names are replaced)"
        )


def _published_run(ctx: Context) -> PublishedRun:
    run = PublishedLake(ctx.settings).current()
    if not run.is_published:
        raise NotFound(
            f"the lake at {ctx.settings.lake.location} has nothing published to export yet; "
            "run `glucosestream ingest FILE` then `glucosestream run`"
        )
    return run


def _patients(ctx: Context, patient_id: str | None, *, pseudonymous: bool) -> dict[str, str]:
    """Each patient key to export, with the id it is exported under (as ingested, or the key)."""
    settings = ctx.settings
    known = open_metadata(settings.lake).patient_keys()
    if patient_id is not None:
        key = patient_key(load_secret(settings), patient_id)
        if key not in set(known):
            raise NotFound(
                "no patient with that id in this lake; check --patient (the id as ingested)"
            )
        return {key: key if pseudonymous else patient_id}
    if pseudonymous:
        return {key: key for key in known}
    return exported_ids(settings, known, None)


def _write_table_export(
    ctx: Context,
    run: PublishedRun,
    fmt: Format,
    identities: dict[str, str],
    window: tuple[dt.date | None, dt.date | None],
    out: Path,
    *,
    omop_parquet: bool,
    keep_notes: bool,
) -> ExportReport:
    """OMOP CDM (``exports.omop``) or tidy files (``exports.tidy``; the text of notes only when
    ``keep_notes``)."""
    keys = sorted(identities)
    if fmt == "omop":
        from glucosestream.exports.omop import write_omop

        parquet = out.suffix.lower() == ".parquet" or omop_parquet
        return write_omop(
            run,
            keys,
            *window,
            out,
            fmt="parquet" if parquet else "csv",
            settings=ctx.settings,
            identities=identities,
            now=utc_now(),
        )
    from glucosestream.exports.tidy import write_tidy

    return write_tidy(
        run,
        keys,
        *window,
        out,
        fmt="parquet" if fmt == "parquet" else "csv",
        settings=ctx.settings,
        identities=identities,
        keep_notes=keep_notes,
        now=utc_now(),
    )


def _report_text(fmt: str, report: ExportReport) -> str:
    counts = ", ".join(f"{n:,} {kind}" for kind, n in report.rows.items())
    files = f"{len(report.files)} file{'' if len(report.files) == 1 else 's'}"
    lines = [f"export {fmt}: wrote {files}, {report.bytes:,} bytes ({counts})"]
    shown = report.files[:10]
    lines += [f"  {path}" for path in shown]
    if len(report.files) > len(shown):
        lines.append(f"  … and {len(report.files) - len(shown)} more")
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)
