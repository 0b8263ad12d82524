from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pyiceberg.io.pyarrow import PyArrowFileIO

from glucosestream.config import EngineSettings, IngestSettings, LakeSettings, Settings
from glucosestream.engines import DuckDBEngine

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SECRET = "test-secret-0123456789abcdef0123456789abcdef"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        lake=LakeSettings(root=str(tmp_path / "lake")),
        ingest=IngestSettings(pseudonym_secret=SECRET),
    )


@pytest.fixture
def duck() -> Iterator[DuckDBEngine]:
    engine = DuckDBEngine(EngineSettings())
    yield engine
    engine.close()


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


class FixedClock:
    """An injected clock: returns a fixed instant, advanced by one second per call."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2026, 2, 1, 12, 0, tzinfo=dt.UTC))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(params=["in-keys", "broad"])
def key_filter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with both ways the lake narrows to a run's patients: an In over their keys,
    and (as for a run touching many patients) a days-only filter narrowed in memory."""
    if request.param == "broad":
        monkeypatch.setattr("glucosestream.lake.catalog._MANY_KEYS", 1)
    return str(request.param)


@pytest.fixture
def opened(monkeypatch):
    """Counts the data files pyiceberg opens for reading."""
    counts: Counter[str] = Counter()
    original = PyArrowFileIO.new_input

    def new_input(self, location):
        if "/data/" in location:
            counts[location] += 1
        return original(self, location)

    monkeypatch.setattr(PyArrowFileIO, "new_input", new_input)
    return counts


# Modules of the slow tier written before its markers: they need the test services (S3/Ceph,
# PostgreSQL), the browser, or real server and CLI processes. `make test` runs them after the
# fast tier (see the Makefile); new slow tests say so with a marker of their own.
_SLOW_MODULES = frozenset(
    {
        "test_browser_dashboard.py",
        "test_crash_safety.py",
        "test_postgres.py",
        "test_s3.py",
        "test_serve.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in _SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# What the verification suite did (fuzz inputs generated, schemathesis cases, soak requests),
# by line of the closing summary; each counting test adds to it.
VERIFICATION_COUNTS: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not VERIFICATION_COUNTS:
        return
    terminalreporter.write_sep("=", "verification suite counts")
    for name, count in sorted(VERIFICATION_COUNTS.items()):
        terminalreporter.write_line(f"{name}: {count:,}")
    fuzz = sum(n for name, n in VERIFICATION_COUNTS.items() if name.startswith("fuzz inputs "))
    if fuzz:
        terminalreporter.write_line(f"fuzz inputs, all targets: {fuzz:,}")
