"""The ``glucosestream`` command group, its shared options and error handling.

Every command prints a short human report, or the report as JSON with ``--json``. Errors are
one line with the next step and exit code 1 (2 for usage errors); ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from glucosestream.config import Settings
from glucosestream.errors import (
    GlucoseStreamError,
)

__all__ = ["Context", "common", "main"]

F = TypeVar("F", bound=Callable[..., Any])


class Context:
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


def common(func: F) -> F:
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
            return func(Context(settings, as_json), **kwargs)
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
