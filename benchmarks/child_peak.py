"""Run `glucosestream` in a child process that reports its own peak memory.

``ru_maxrss`` of a child (from ``wait4`` or ``RUSAGE_CHILDREN``) is not the child's own on
Linux: the parent's high-water mark is copied into it at fork, so a child of a benchmark holding
3 GB reported 2.9 GB though it used 9 MB (measured). The child started by ``command`` prints its
own ``VmHWM`` (the peak resident memory of what it maps after exec) on stderr as it exits, and
``peak_rss_mb`` reads it back.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["command", "peak_rss_mb"]

_MARK = "GLUCOSESTREAM_BENCH_VMHWM_KB"
_LAUNCHER = f"""
import atexit, sys
def _peak():
    status = open("/proc/self/status").read()
    sys.stderr.write("\\n{_MARK} " + status.split("VmHWM:")[1].split()[0] + "\\n")
atexit.register(_peak)
from glucosestream.cli import main
main(args=sys.argv[1:], prog_name="glucosestream")
"""


def command(args: list[str], profile: Path | None = None) -> list[str]:
    """The command line running ``glucosestream *args`` (under cProfile, into ``profile``, if
    given: then no peak is reported)."""
    if profile is not None:
        return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "glucosestream", *args]
    return [sys.executable, "-c", _LAUNCHER, *args]


def peak_rss_mb(stderr: str) -> float | None:
    """The child's own peak RSS in MB, from its stderr (None if it did not report one)."""
    lines = [line for line in stderr.splitlines() if line.startswith(_MARK)]
    return int(lines[-1].split()[1]) / 1024 if lines else None
