"""Commands that make data or serve it: demo, synth, serve, token, clinic."""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from glucosestream.access import ROLES, create_token, expiry_of, hash_token
from glucosestream.cli.base import Context, common, main
from glucosestream.cli.render import ingest_text, run_text, summary_table
from glucosestream.config import Settings, child_environment
from glucosestream.errors import (
    ConfigError,
)
from glucosestream.ingest import ingest_path
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.lake import TokenRecord, open_access, open_metadata
from glucosestream.metrics.summary import PatientSummary, summarise_patients
from glucosestream.pipeline import run_pipeline
from glucosestream.published import PublishedLake
from glucosestream.synth import PROFILES, SYNTH_FORMATS, CohortSpec, write_cohort

if TYPE_CHECKING:
    from fastapi import FastAPI

    from glucosestream.app import AlwaysOnOptions

__all__ = ["clinic", "demo", "serve", "synth", "token"]

_DEMO_PATIENTS = 6
_DEMO_DAYS = 15  # 14 complete local days in every zone: a UTC day is partial elsewhere


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
@common
def demo(ctx: Context, patients: int, days: int, no_serve: bool, port: int | None) -> None:
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
        click.echo(ingest_text(ingested))
        click.echo(run_text(run))
        click.echo()
        click.echo(summary_table(summaries))
    if no_serve:
        return
    chosen = (
        port if port is not None else _free_port(settings.dashboard.host, settings.dashboard.port)
    )
    settings = settings.override("dashboard", port=chosen)
    first = summaries[0].patient_key if summaries else ""
    listening = _listen(settings.dashboard.host, chosen)
    app = _app(settings)
    admin = create_token(settings.lake, "admin", label="demo", now=dt.datetime.now(dt.UTC))
    click.echo(f"\nServing on http://{settings.dashboard.host}:{chosen}/patients/{first}")
    click.echo(f"Log in with this admin token (made for the demo): {admin}")
    click.echo("Press Ctrl+C to stop.")
    _serve(app, listening)


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
@common
def synth(
    ctx: Context,
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
        f"synth: wrote {report.readings} readings"
        + (f" and {report.events} events" if report.events else "")
        + f" ({patients} patients x {days} days) to {report.path} in {report.duration_ms} ms",
    )


@main.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8000).")
@click.option(
    "--no-pipeline",
    is_flag=True,
    help="Start no runs (for a lake whose runs are scheduled elsewhere); alerts still fire.",
)
@common
def serve(ctx: Context, host: str | None, port: int | None, no_pipeline: bool) -> None:
    """Serve the ingest API and the dashboard, and publish what arrives.

    Runs start by themselves, each as a `glucosestream run` process: when batches arrived (at
    most one every pipeline.min_interval seconds), pipeline.schedule_interval after the last,
    and once as serve starts; `glucosestream runs` lists them. A day after the last maintenance
    (pipeline.maintain_interval) serve also runs `glucosestream maintain --expire-days 1`.
    --no-pipeline starts neither: schedule `run` and `maintain` yourself.

    Example: glucosestream serve --port 8000
    """
    settings = ctx.settings.override("dashboard", host=host, port=port)
    listening = _listen(settings.dashboard.host, settings.dashboard.port)
    app = _app(settings, always_on=_always_on(settings, pipeline=not no_pipeline))
    ctx.say_if_new_lake()
    click.echo(f"Serving on http://{settings.dashboard.host}:{settings.dashboard.port}/")
    _serve(app, listening)


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
@click.option(
    "--expires",
    metavar="DURATION|DATE",
    help="When it stops working: 30d, 12h, 90m from now, or an ISO date or time (UTC unless "
    "it has an offset). Default: never (revoke it with `token revoke`).",
)
@common
def token_create(
    ctx: Context,
    role: str,
    patient_ids: tuple[str, ...],
    clinic_id: str | None,
    label: str,
    expires: str | None,
) -> None:
    """Create a token; it is printed once and stored only as hashes.

    Example: glucosestream token create --role uploader --patient P00001 --expires 90d
    """
    now = dt.datetime.now(dt.UTC)
    expires_at = expiry_of(expires, now=now) if expires is not None else None
    secret = load_secret(ctx.settings) if patient_ids else b""
    keys = [patient_key(secret, p) for p in patient_ids]
    if keys:  # an uploader's patients are known by their ids before a reading arrives
        known = dict(zip(keys, patient_ids, strict=True))
        open_metadata(ctx.settings.lake).register_patients(known, now)
    value = create_token(
        ctx.settings.lake,
        role,
        label=label or role,
        now=now,
        patient_keys=keys,
        clinic_id=clinic_id,
        expires_at=expires_at,
    )
    token_id = hash_token(value)[:12]
    until = f", expires {expires_at.isoformat()}" if expires_at else ""
    ctx.emit(
        {
            "token": value,
            "token_id": token_id,
            "role": role,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        f"token ({role}, id {token_id}{until}): {value}\nStore it now: it is not shown again.",
    )


@token.command("list")
@common
def token_list(ctx: Context) -> None:
    """List tokens by id (never a token or its hash): role, label, made, expires, revoked, used.

    Example: glucosestream token list --json
    """
    records = open_access(ctx.settings.lake).tokens.token_records()
    rows = [_token_row(r) for r in records]
    ctx.emit({"tokens": rows}, _token_table(rows) if rows else "no tokens yet")


@token.command("revoke")
@click.argument("token_id")
@common
def token_revoke(ctx: Context, token_id: str) -> None:
    """Revoke a token by its id (from `token list`): refused at once on every path.

    Example: glucosestream token revoke 3f9a0c12d4e5
    """
    now = dt.datetime.now(dt.UTC)
    record = open_access(ctx.settings.lake).tokens.revoke_token(token_id, at=now)
    row = _token_row(record)
    done = "was already revoked" if record.revoked_at and record.revoked_at < now else "revoked"
    what = f"token {row['token_id']} ({row['role']}, {row['label']})"
    ctx.emit(row, f"{what} {done} at {row['revoked_at']}; it is refused from now on")


@main.group()
def clinic() -> None:
    """Manage clinics (which patients a clinician token may read)."""


@clinic.command("add-patient")
@click.option("--clinic", "clinic_id", required=True, help="The clinic.")
@click.argument("patient_ids", nargs=-1, required=True)
@common
def clinic_add_patient(ctx: Context, clinic_id: str, patient_ids: tuple[str, ...]) -> None:
    """Put patients (ids as ingested) in a clinic.

    Example: glucosestream clinic add-patient --clinic north P00001 P00002
    """
    secret = load_secret(ctx.settings)
    added = open_access(ctx.settings.lake).clinics.add_clinic_patients(
        clinic_id, [patient_key(secret, p) for p in patient_ids]
    )
    ctx.emit({"clinic": clinic_id, "added": added}, f"clinic {clinic_id}: {added} patients added")


# ---- rendering ---------------------------------------------------------------------------


def _token_row(record: TokenRecord) -> dict[str, str | int | None]:
    """What a token list shows of a token: never the token or its hash."""

    def when(at: dt.datetime | None) -> str | None:
        return at.isoformat(timespec="seconds") if at else None

    return {
        "token_id": record.token_id,
        "role": record.role,
        "label": record.label,
        "clinic_id": record.clinic_id,
        "patients": len(record.patient_keys),
        "created_at": when(record.created_at),
        "expires_at": when(record.expires_at),
        "revoked_at": when(record.revoked_at),
        "last_used_at": when(record.last_used_at),
    }


def _token_table(rows: list[dict[str, str | int | None]]) -> str:
    columns = ("token_id", "role", "label", "created_at", "expires_at", "revoked_at",
               "last_used_at")  # fmt: skip
    cells = [[c.removesuffix("_at") for c in columns]]
    cells += [[str(r[c] or "-") for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)  # fmt: skip


def _lake_given(ctx: Context) -> bool:
    return ctx.settings.lake.root != Settings().lake.root


def _check_demo_lake(root: Path) -> None:
    if root.exists() and any(root.iterdir()) and not (root / "_state").is_dir():
        raise ConfigError(
            f"{root} is not empty and is not a GlucoseStream lake; pass an empty or new folder "
            "to --lake"
        )


def _summaries(settings: Settings) -> list[PatientSummary]:
    run = PublishedLake(settings).current()
    return summarise_patients(run.daily()) if run.is_published else []


def _progress(ctx: Context, label: str, total: int) -> Callable[[int], None] | None:
    if ctx.as_json or not sys.stderr.isatty():
        return None

    def show(done: int) -> None:
        click.echo(f"\r{label}: {done:,}/{total:,} readings", nl=done >= total, err=True)

    return show


def _free_port(host: str, preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise ConfigError(f"no free port on {host}; pass --port")


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port and listening, before anything says it serves there;
    ConfigError naming the port and the fix when it is taken (or the address is not ours)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as err:
        raise ConfigError(f"cannot listen on {host!r}: {err}; pass --host 127.0.0.1") from err
    family, kind, proto, _, address = info[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is already in use (another server?); stop it, or pass "
                f"--port with a free port, e.g. --port {_free_port(host, 0)}"
            ) from err
        raise ConfigError(
            f"cannot listen on {host}:{port}: {err.strerror or err}; pass another --host or --port"
        ) from err
    sock.set_inheritable(True)
    return sock


def _app(settings: Settings, always_on: AlwaysOnOptions | None = None) -> FastAPI:
    from glucosestream.app import create_app

    return create_app(settings, always_on=always_on)


def _always_on(settings: Settings, *, pipeline: bool) -> AlwaysOnOptions:
    """What serve runs beside the routes: its runs are this program's `run` in one worker
    process (a core stays with ingest), and its maintenance keeps a day of snapshots (a run
    every 30 s commits 2,880 a day per table), with serve's settings in their environment."""
    from glucosestream.app import AlwaysOnOptions

    program = [sys.executable, "-m", "glucosestream"]
    return AlwaysOnOptions(
        pipeline=pipeline,
        run_command=[*program, "run", "--json", "--workers", "1"],
        run_env=child_environment(settings),
        maintain_command=[*program, "maintain", "--json", "--expire-days", "1"],
    )


def _serve(app: FastAPI, listening: socket.socket) -> None:
    """Serve the app on an already listening socket until stopped (Ctrl+C)."""
    import uvicorn

    with listening:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])
