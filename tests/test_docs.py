"""The docs tell the truth: every setting and command is documented (cog keeps the text fresh)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from glucosestream.cli import main
from glucosestream.config import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = DOCS.parent / "README.md"


def test_every_setting_is_in_the_configuration_docs():
    text = (DOCS / "configuration.md").read_text()
    settings = Settings()
    for section in dataclasses.fields(settings):
        for field in dataclasses.fields(getattr(settings, section.name)):
            assert f"GLUCOSESTREAM_{section.name.upper()}__{field.name.upper()}" in text
            assert field.metadata.get("help"), f"{section.name}.{field.name} has no help text"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command of the CLI, found from the click group itself (not a list kept by hand)."""
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_command_is_in_the_cli_reference():
    text = (DOCS / "cli.md").read_text()
    commands = _commands(main)
    assert len(commands) > 10
    for command in commands:
        assert f"## glucosestream {' '.join(command)}" in text, command


def test_readme_quickstart_is_the_two_make_commands():
    text = README.read_text()
    assert "make demo" in text
    assert "make test" in text
