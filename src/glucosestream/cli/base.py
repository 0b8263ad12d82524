"""The ``glucosestream`` command group, its shared options and error handling.

Every command prints a short human report, or the report as JSON with ``--json``. Errors are
one line with the next step and exit code 1 (2 for usage errors); ``--debug`` shows tracebacks.
A file-system error is one line naming the path; any other exception that is not one of
GlucoseStream's own errors is a bug, and is one line too, which says so.

A lake folder that does not exist is an error for every command but those that make one
(``_LAKE_MAKERS``), which say when they did: a ``--lake`` typo is not a new, empty lake. The
rule is checked when a command first reads its settings, so the standalone calculator
(``metrics --input``) needs no lake; nor does ``synth``. An ``s3://`` lake is not checked: that
would cost a request to the object store on every command.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from glucosestream.config import LakeSettings, Settings
from glucosestream.errors import ConfigError, GlucoseStreamError
from glucosestream.metrics.kernels import announce_compilation

__all__ = ["Context", "common", "main"]

F = TypeVar("F", bound=Callable[..., Any])

# Commands that make a lake where there is none; each says so once it has (serve, which returns
# only when stopped, by calling ``Context.say_if_new_lake`` itself before it serves).
_LAKE_MAKERS: Final = frozenset({"ingest", "demo", "serve"})
_NEEDS_NO_LAKE: Final = frozenset({"synth"})
_LAKE_MARKERS: Final = ("_state", "raw", "warehouse")  # what a lake folder holds once used
_MESSAGE_LIMIT: Final = 1000  # characters of an error message shown (one line)
_DETAIL_LIMIT: Final = 300  # characters of an unexpected exception's own message shown
_COMPILING: Final = "compiling metric kernels (once after an install or upgrade, about a minute)…"


class Context:
    """What a command is given: its settings (the lake checked on first use) and ``--json``."""

    def __init__(self, settings: Settings, as_json: bool, *, lake_must_exist: bool) -> None:
        self._settings = settings
        self._lake_must_exist = lake_must_exist
        self._lake_checked = False
        self.as_json = as_json
        lake = settings.lake
        absent = not lake.is_s3 and not lake.root_path.exists()
        self._new_lake: Path | None = lake.root_path if absent else None

    @property
    def settings(self) -> Settings:
        if not self._lake_checked:
            if self._lake_must_exist:
                _check_lake(self._settings.lake)
            else:
                _check_folder(self._settings.lake)
            self._lake_checked = True
        return self._settings

    def say_if_new_lake(self) -> None:
        """Say (once, on stderr) that the command made a new lake, if it did."""
        if self._new_lake is not None and self._new_lake.exists():
            self.say(f"created a new lake at {self._new_lake}")
            self._new_lake = None

    def say(self, line: str) -> None:
        """A progress line on stderr (none with --json)."""
        if not self.as_json:
            click.echo(line, err=True)

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


def _check_lake(lake: LakeSettings) -> None:
    """Refuse a local lake folder that does not exist, or that holds other things."""
    if lake.is_s3:
        return
    root = lake.root_path
    if not root.exists():
        close = _close_sibling(root)
        hint = f" (did you mean {close}?)" if close else ""
        raise ConfigError(
            f"no lake at {root}{hint}; check --lake (or GLUCOSESTREAM_LAKE), or make a lake "
            "there with `glucosestream ingest FILE`"
        )
    _check_folder(lake)
    if any(root.iterdir()) and not any((root / m).is_dir() for m in _LAKE_MARKERS):
        raise ConfigError(
            f"{root} is not a GlucoseStream lake (it has no {', '.join(_LAKE_MARKERS)} folder); "
            "check --lake"
        )


def _check_folder(lake: LakeSettings) -> None:
    if not lake.is_s3 and lake.root_path.exists() and not lake.root_path.is_dir():
        raise ConfigError(f"{lake.root_path} is a file, not a lake folder; check --lake")


def _close_sibling(root: Path) -> Path | None:
    """A folder beside ``root`` spelt like it (the lake the user probably meant)."""
    parent = root.parent
    if not parent.is_dir():
        return None
    try:
        names = [p.name for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return None
    near = difflib.get_close_matches(root.name, names, n=1, cutoff=0.75)
    return parent / near[0] if near else None


def common(func: F) -> F:
    """--lake, --json, --log-level and --debug, the lake rule, and errors as one line."""
    makes_lake = func.__name__ in _LAKE_MAKERS
    lake_must_exist = not makes_lake and func.__name__ not in _NEEDS_NO_LAKE

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
            if not settings.lake.root.strip():
                raise ConfigError("--lake is empty; pass the lake's folder or s3://bucket/prefix")
            ctx = Context(settings, as_json, lake_must_exist=lake_must_exist)
            with announce_compilation(lambda: ctx.say(_COMPILING)):
                result = func(ctx, **kwargs)
            if makes_lake:
                ctx.say_if_new_lake()
            return result
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            if debug:
                raise
            raise click.ClickException(_one_line(_describe_error(err))) from err

    return wrapper  # type: ignore[return-value]


def _describe_error(err: Exception) -> str:
    """The message of an error: GlucoseStream's own as it is; a file-system error with its
    path; anything else as an internal error to report."""
    if isinstance(err, GlucoseStreamError):
        return str(err)
    if isinstance(err, OSError):  # a path that cannot be read or written: say which
        if err.strerror and err.filename is not None:
            return f"{err.strerror}: {err.filename}"
        return str(err) or type(err).__name__
    detail = _one_line(str(err), _DETAIL_LIMIT)
    name = type(err).__name__
    return (
        f"internal error: {name}{': ' + detail if detail else ''}; rerun with --debug and report it"
    )


def _one_line(message: str, limit: int = _MESSAGE_LIMIT) -> str:
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@click.group()
@click.version_option(package_name="glucosestream")
def main() -> None:
    """GlucoseStream: CGM readings in, consensus metrics and reports out.

    Quick start: glucosestream demo
    """
