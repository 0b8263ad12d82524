"""The README is true: its "Using it" commands run in order on a fresh lake (issue 18).

Each fenced ``console`` block of the section is read; every ``$ glucosestream ...`` line runs with
the project's own ``glucosestream`` in an empty folder (the lake is ``./lake``), and must exit 0.
The files a command names exist before it runs (its inputs) or after it (its ``--out``), and the
output lines the README shows under a command are in its output, piece by piece between the
``…`` that elide what changes from run to run (keys, ids, times). Commands that run until
stopped or need a cluster are left out by name, and each such name must still be in the README.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
GLUCOSESTREAM = Path(sys.executable).with_name("glucosestream")
# What the test leaves out, and why (each must be a command of the section).
NOT_RUN = {
    "glucosestream serve": "runs until stopped (tests/test_serve.py starts it)",
    "glucosestream serve --no-pipeline": "runs until stopped",
    "glucosestream run --cluster 10.0.0.5:6379": "needs a running Ray cluster",
    "glucosestream alerts ack al_...": "needs an alert's id; the steps raise no alert",
}
DATA_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json", ".pdf")
TIMEOUT_S = 300


@dataclass
class Step:
    command: str  # as written, without its comment
    shown: list[str] = field(default_factory=list)  # output lines the README shows under it


def readme_steps(text: str) -> list[Step]:
    """The commands of the "Using it" section's fenced console blocks, in order."""
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    steps: list[Step] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append(Step(shlex.join(shlex.split(line[2:], comments=True))))
            elif line.strip() and steps:
                steps[-1].shown.append(line)
    return steps


def _inputs_and_outputs(argv: list[str]) -> tuple[list[str], list[str]]:
    inputs, outputs = [], []
    for i, arg in enumerate(argv):
        after_out = i > 0 and argv[i - 1] == "--out"
        if after_out:
            outputs.append(arg)
        elif not arg.startswith("-") and arg.lower().endswith(DATA_SUFFIXES) and "://" not in arg:
            inputs.append(arg)
    return inputs, outputs


def _shown_in(shown: str, output: str) -> bool:
    """Whether the README's line is in the output: its pieces between "…", in order."""
    at = 0
    for piece in (p.strip() for p in shown.split("…")):
        if not piece:
            continue
        found = output.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def test_the_readme_section_parses_and_names_what_it_leaves_out():
    commands = [s.command for s in readme_steps(README.read_text(encoding="utf-8"))]
    assert len(commands) >= 15
    assert all(c.startswith("glucosestream ") for c in commands)
    assert set(NOT_RUN) <= set(commands), set(NOT_RUN) - set(commands)


def test_shown_output_is_matched_piece_by_piece_between_ellipses():
    output = (
        "run run-1: published — 2 batches\n  check x: WARNING: a (Z1) and b (Z2) share 9 readings"
    )
    assert _shown_in("run run-…: published — 2 batches", output)
    assert _shown_in("  check x: WARNING: … (Z1) and … (Z2) share 9 readings", output)
    assert not _shown_in("  check x: ok", output)
    assert not _shown_in("… (Z2) and … (Z1) …", output)  # in order
    assert _inputs_and_outputs(["metrics", "--input", "cohort.csv", "--out", "m.csv"]) == (
        ["cohort.csv"],
        ["m.csv"],
    )


@pytest.mark.slow
def test_the_readme_steps_run_in_order_on_a_fresh_lake(tmp_path):
    assert GLUCOSESTREAM.exists(), GLUCOSESTREAM
    env = {
        "PATH": f"{GLUCOSESTREAM.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    for step in readme_steps(README.read_text(encoding="utf-8")):
        if step.command in NOT_RUN:
            continue
        argv = shlex.split(step.command)
        inputs, outputs = _inputs_and_outputs(argv)
        for name in inputs:
            assert (tmp_path / name).exists(), f"{step.command}: {name} was never made"
        done = subprocess.run(
            [str(GLUCOSESTREAM), *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, f"{step.command}\n{done.stdout}\n{done.stderr}"
        for name in outputs:
            assert (tmp_path / name).exists(), f"{step.command}: made no {name}"
        for line in step.shown:
            assert _shown_in(line, done.stdout), f"{step.command}: not shown\n{line}\n{done.stdout}"
