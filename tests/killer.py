"""Run the glucosestream CLI in this process and SIGKILL it at a chosen point (test support).

    python tests/killer.py MODULE:ATTRIBUTE.METHOD before|after|pause FLAG -- ARGS...

``before``/``after``: kill the process just before or just after that function runs, as a
power cut or OOM kill would. ``pause``: after that function returns, create FLAG + ".paused" and
wait until FLAG exists, then go on (to interleave another process deterministically).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from pathlib import Path


def main() -> None:
    target, when, flag, sep, *args = sys.argv[1:]
    assert sep == "--"
    module_name, _, path = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)

    def wrapped(*a, **kw):
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*a, **kw)
        if when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        if when == "pause":
            Path(flag + ".paused").touch()
            while not Path(flag).exists():
                time.sleep(0.05)
        return result

    setattr(owner, name, wrapped)
    from glucosestream.cli import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
