"""``glucosestream run``'s scale-out options (--workers, --cluster, --memory-budget) and its
progress line."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any, Final

import click

from glucosestream.cli.base import Context
from glucosestream.pipeline.execution import Execution, RunProgress

__all__ = ["ByteSize", "execution_of", "run_options"]

_UNITS: Final = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


class ByteSize(click.ParamType[int]):
    """A size in bytes: 4G, 512M, 1.5GiB or a plain number of bytes."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.fullmatch(str(value))
        if match is None:
            self.fail(f"{value!r} is not a size; write it as 4G, 512M or a number of bytes")
        size = int(float(match[1]) * _UNITS[match[2].lower()])
        if size < 1024**2:
            self.fail(f"{value!r} is below 1M; give a task at least a megabyte")
        return size


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--workers",
            type=click.IntRange(1, 1024),
            help="Worker processes for the bucket tasks [default: every core; 1: this process].",
        ),
        click.option(
            "--cluster",
            metavar="ADDRESS",
            help="Run the bucket tasks on a running Ray cluster (host:port); needs the ray extra.",
        ),
        click.option(
            "--memory-budget",
            type=ByteSize(),
            help="Memory one bucket task may use, e.g. 4G [default: a quarter of RAM].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def execution_of(
    ctx: Context, workers: int | None, cluster: str | None, memory_budget: int | None
) -> Execution:
    if cluster is not None and not cluster.strip():
        raise click.BadParameter(
            "is empty; pass the cluster's address, e.g. 10.0.0.5:6379", param_hint="--cluster"
        )
    return Execution(
        workers=workers,
        cluster=cluster,
        memory_budget=memory_budget,
        progress=_progress_line(ctx),
    )


def _progress_line(ctx: Context) -> Callable[[RunProgress], None] | None:
    """Buckets done of all and readings per second on a terminal; nothing when piped or with
    --json."""
    if ctx.as_json or not sys.stderr.isatty():
        return None

    def show(p: RunProgress) -> None:
        rate = p.readings_done / p.seconds if p.seconds > 0 else 0.0
        click.echo(
            f"\rbuckets {p.buckets_done:,}/{p.buckets:,} · {p.readings_done:,} readings · "
            f"{rate:,.0f} readings/s",
            nl=p.buckets_done >= p.buckets,
            err=True,
        )

    return show
