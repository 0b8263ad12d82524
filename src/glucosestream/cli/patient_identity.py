"""Commands over who a patient is: ``patient label`` (set or clear the clinic's display label)
and ``patient find`` (by the id as ingested, or a part of the label).

The label and the id live in the metadata store only, never in the lake's tables or files, and
are erased with the patient (``maintain --erase-patient``). Each command is recorded in the
access audit trail as done by ``cli``, with the patient's key and never the label's text (the
trail is append-only and outlives an erasure). ``ID`` is the patient's id as ingested, as in
every other command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import click

from glucosestream.cli.base import Context, common, main
from glucosestream.clock import utc_now
from glucosestream.errors import ConfigError, NotFound
from glucosestream.ingest.identity import load_secret, patient_key
from glucosestream.lake import AccessEntry, PatientIdentity, open_access, open_patient_directory

__all__ = ["find_patient", "label_patient", "patient"]

_CLI: Final = "cli"  # the actor and role of what the command line does, in the audit trail


@main.group()
def patient() -> None:
    """Who a patient is: the clinic's display label, and finding a patient by id or label."""


@patient.command("label")
@click.argument("patient_id")
@click.argument("text", required=False)
@click.option("--clear", is_flag=True, help="Remove the patient's label.")
@common
def label_patient(ctx: Context, patient_id: str, text: str | None, clear: bool) -> None:
    """Set a patient's display label (a name or record number: up to 120 characters on one
    line, no control or invisible ones), or remove it with --clear. Pages, triage and the AGP
    report show it beside the id as ingested to those entitled to the patient; it is kept in the
    metadata store only and erased with the patient.

    Example: glucosestream patient label P00001 "Ada Lovelace (MRN 1234)"
    """
    if clear == (text is not None):
        raise click.UsageError("give the label TEXT, or --clear to remove it (not both)")
    if not patient_id.strip():
        raise ConfigError("the patient ID is empty; pass the patient's id as ingested")
    key = patient_key(load_secret(ctx.settings), patient_id)
    now = utc_now()
    directory = open_patient_directory(ctx.settings.lake)
    if not directory.set_label(key, None if clear else text, at=now, by=_CLI):
        raise NotFound("no patient with that id in this lake; check ID (the id as ingested)")
    action = "patient.label.clear" if clear else "patient.label.set"
    _audit(ctx, action, [key], f"patient label {'--clear' if clear else 'TEXT'}")
    shown = directory.names([key])[key]
    row = _row(shown)
    ctx.emit(row, f"patient {patient_id}: label {'cleared' if clear else 'set'} ({key})")


@patient.command("find")
@click.argument("text")
@common
def find_patient(ctx: Context, text: str) -> None:
    """Find patients by their id as ingested (whole, case aside), their key, or a part of
    their label (case-insensitive): one line each with key, id and label.

    Example: glucosestream patient find lovelace --json
    """
    directory = open_patient_directory(ctx.settings.lake)
    keys = directory.find(text)
    found = directory.names(keys)
    rows = [_row(found.get(k, PatientIdentity(k, None, None))) for k in keys]
    _audit(ctx, "patient.find", keys or [None], f"patient find ({len(keys)} found)")
    human = "\n".join(
        "\t".join((r["patient_key"], r["external_id"] or "-", r["label"] or "-")) for r in rows
    )
    ctx.emit({"patients": rows}, human or "no patient found")


def _row(identity: PatientIdentity) -> dict[str, Any]:
    return {
        "patient_key": identity.patient_key,
        "external_id": identity.external_id,
        "label": identity.label,
    }


def _audit(ctx: Context, action: str, keys: Sequence[str | None], resource: str) -> None:
    """One entry per patient concerned (a search that found nothing: one naming none)."""
    audit, at = open_access(ctx.settings.lake).audit, utc_now()
    for key in keys:
        audit.log_access(AccessEntry(at, _CLI, _CLI, action, key, resource))
