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
    ("audit",),
    ("serve",),
    ("token", "create"),
    ("clinic", "add-patient"),
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
        parts.append(f"## glucosestream {' '.join(command)}\n\n```\n{result.output.rstrip()}\n```\n")
    return "\n".join(parts)
