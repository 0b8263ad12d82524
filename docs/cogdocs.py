"""Generators for the cog blocks in docs/*.md (`make docs` rewrites, `make lint` checks)."""

from __future__ import annotations

import dataclasses

from click.testing import CliRunner

from glucosestream.cli import main
from glucosestream.config import Settings

COMMANDS = (
    ("demo",),
    ("synth",),
    ("ingest",),
    ("run",),
    ("runs",),
    ("maintain",),
    ("metrics",),
    ("report",),
    ("export",),
    ("audit",),
    ("serve",),
    ("token", "create"),
    ("token", "list"),
    ("token", "revoke"),
    ("clinic", "add-patient"),
    ("patient", "label"),
    ("patient", "find"),
    ("alerts", "list"),
    ("alerts", "ack"),
    ("alerts", "webhook", "add"),
    ("alerts", "webhook", "list"),
    ("alerts", "webhook", "remove"),
)


def configuration_table() -> str:
    lines = ["| environment variable | default | meaning |", "|---|---|---|"]
    settings = Settings()
    for section in dataclasses.fields(settings):
        for field in dataclasses.fields(getattr(settings, section.name)):
            name = f"GLUCOSESTREAM_{section.name.upper()}__{field.name.upper()}"
            default = repr(field.default) if field.default != "" else "(empty)"
            lines.append(f"| `{name}` | `{default}` | {field.metadata.get('help', '')} |")
    return "\n".join(lines)


def cli_reference() -> str:
    runner = CliRunner()
    parts = []
    for command in COMMANDS:
        result = runner.invoke(main, [*command, "--help"], terminal_width=100)
        title = f"## glucosestream {' '.join(command)}"
        parts.append(f"{title}\n\n```\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)


_NOTES = {
    ("patients", "patient_key"): "HMAC-SHA256 pseudonym",
    ("patients", "external_id"): "metadata store only, never in the lake",
    ("patient_labels", "label"): "metadata store only, never in the lake; erased with the patient",
    ("patient_labels", "set_by"): "token id, or cli",
    ("readings", "device_id"): "keyed pseudonym of the serial",
    ("readings", "ts"): "UTC",
    ("readings", "flags"): "ReadingFlag bits",
    ("readings", "tz"): "IANA zone of the device",
    ("daily_metrics", "date"): "local calendar day",
    ("period_metrics", "period_start"): "fixed fortnight, local days",
    ("patient_summaries", "window"): "current: the last 14 complete local days; previous",
    ("patient_summaries", "partial_day"): "the newest day when partial: shown, not counted",
    ("batches", "source_name"): "a neutral label such as csv file, never a path",
    ("runs", "status"): "published, noop, rejected, failed, abandoned",
    ("runs", "report"): "the run report as JSON",
    ("run_snapshots", "table_name"): "the table's short key in the registry",
    ("tokens", "role"): "admin, uploader, clinician, patient",
    ("token_api_secrets", "api_secret_hmac"): "HMAC-SHA256 of the token's SHA-1",
    ("lake_keys", "key_hex"): "only with a metadata URL",
    ("access_log", "entry_id"): "append-only",
    ("privacy_ledger", "entry_id"): "append-only",
    ("live_readings", "settled_run_id"): "the run that published it; NULL: not yet",
    ("alerts", "state"): "active, cleared; one active per patient and kind",
    ("alert_events", "event_id"): "append-only",
    ("webhooks", "secret_sealed"): "sealed under a key derived from the lake's access key",
    ("webhook_outbox", "delivery_id"): "the webhook-id header: the idempotency key",
}


def _mermaid_type(name: str) -> str:
    for prefix, short in (
        ("timestamp", "timestamp"), ("date", "date"), ("int", "int"), ("double", "double"),
        ("float", "double"), ("bool", "boolean"), ("string", "string"),
        ("large_string", "string"), ("VARCHAR", "string"), ("TEXT", "text"),
        ("INTEGER", "int"), ("BIGINT", "bigint"), ("DATETIME", "timestamp"),
        ("BOOLEAN", "boolean"), ("FLOAT", "double"),
    ):  # fmt: skip
        if name.startswith(prefix):
            return short
    return "string"


def data_model_entities() -> str:
    """Mermaid entity blocks for every table, from the real schemas."""
    from glucosestream.lake.metadata_schema import METADATA
    from glucosestream.pipeline.table_registry import TABLES

    blocks = []
    for spec in TABLES:
        name = spec.identifier[1]
        cols = [(f.name, _mermaid_type(str(f.type))) for f in spec.schema]
        blocks.append((name, cols, set()))
    for table in METADATA.sorted_tables:
        cols = [(c.name, _mermaid_type(str(c.type))) for c in table.columns]
        blocks.append((table.name, cols, {c.name for c in table.primary_key.columns}))
    lines = []
    for name, cols, keys in blocks:
        lines.append(f"    {name} {{")
        for column, kind in cols:
            note = _NOTES.get((name, column))
            key = " PK" if column in keys else ""
            lines.append(f"        {kind} {column}{key}" + (f' "{note}"' if note else ""))
        lines.append("    }")
    return "\n".join(lines)
