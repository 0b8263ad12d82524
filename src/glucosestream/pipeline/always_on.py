"""The pipeline inside ``serve``: a thread that starts runs by itself, each in a child process.

A run starts when batches were committed since the last one started, at most once every
``pipeline.min_interval`` seconds (the debounce: a burst of uploads makes one run, not one run
each), and ``pipeline.schedule_interval`` seconds after the last one even with nothing new (a
noop run is cheap). The first run starts at once. One run at a time: the thread waits for its
child. A run another process holds the lock for (a ``glucosestream run`` by hand, AWS) ends at
once with ``RunInProgress``; the run is owed and tried again ``min_interval`` later, quietly.

Each run is ``python -m glucosestream run --json`` as a child process, not a run in a thread: a
run holds the GIL through long Python stretches (planning, pyiceberg, JSON), which would stall
the server's event loop, and a child keeps a run's memory (and an out-of-memory kill) out of the
server. The child is ``nice``d, so ingest keeps the upper hand on the cores, and in its own
session, so a Ctrl+C meant for ``serve`` does not kill it: ``stop`` lets it finish for
``pipeline.stop_grace`` seconds, then ends it (SIGTERM); a run killed is crash-safe, and the
next run closes its record as abandoned. A ``serve`` killed outright leaves its child to finish:
it holds the lock and publishes as any run does.

Between scheduled runs the runs take their pending batches from the metadata store alone
(``pipeline.sweep_raw_zone`` false); the first run and those ``schedule_interval`` apart also
list the raw zone for batches an ingest committed but never recorded (killed between the two).

After a run that published, ``on_published(run_id, batch_ids)`` hooks get the batches it loaded
or rejected (from the metadata store): the live window settles them, the read side refreshes.

Given a ``maintain_command``, the thread also starts ``glucosestream maintain`` (compaction and
snapshot expiry) ``pipeline.maintain_interval`` seconds after the last maintenance, the lake's
own record of it (a run every 30 s is 2,880 commits a day per table), between two runs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final, Protocol

from glucosestream.clock import Clock, utc_now
from glucosestream.config import Settings
from glucosestream.errors import RunInProgress
from glucosestream.lake import open_metadata
from glucosestream.live import CommittedBatch

__all__ = ["NICENESS", "Child", "RunOutcome", "RunScheduler", "spawn_child"]

log = logging.getLogger(__name__)

NICENESS: Final = 10  # added to the child's: ingest keeps the upper hand on the cores
_STDERR_TAIL: Final = 500  # characters of a failed run's error output logged
_TROUBLE: Final = frozenset({"failed", "rejected", "error", "stopped"})  # logged as warnings


class Child(Protocol):
    """A started run (``subprocess.Popen`` with its output in files, or a test's fake)."""

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code once it ended; None if it is still running after ``timeout`` s."""

    def terminate(self) -> None: ...

    def output(self) -> tuple[str, str]:
        """What it wrote to stdout and stderr (once it ended)."""


Spawn = Callable[[Sequence[str], Mapping[str, str]], Child]
PublishedHook = Callable[[str, list[str]], None]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run the scheduler started ended."""

    run_id: str | None  # None: it ended before it had a record (the lock held, an error)
    status: str  # a RunReport status, "lock_held", "stopped" or "error"
    duration_s: float
    batch_ids: tuple[str, ...] = ()  # a published run's loaded and rejected batches


class _Process:
    """A child process whose output goes to unnamed temporary files: they outlive a ``serve``
    killed outright, so the child never dies of a closed pipe."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str]) -> None:
        # Closed by ``output`` once the child ended.
        self._out: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._popen = subprocess.Popen(
            list(command),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )
        try:
            os.setpriority(os.PRIO_PROCESS, self._popen.pid, NICENESS)
        except OSError:  # it ended already, or the system refuses: it runs at our priority
            log.debug("could not lower the priority of run process %d", self._popen.pid)

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self) -> None:
        self._popen.terminate()

    def output(self) -> tuple[str, str]:
        texts = []
        for f in (self._out, self._err):
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
            f.close()
        return texts[0], texts[1]


def spawn_child(command: Sequence[str], env: Mapping[str, str]) -> Child:
    """Start ``command`` niced, in its own session, with its output in temporary files."""
    return _Process(command, env)


class RunScheduler:
    """Starts runs as child processes: debounced on committed batches, and on a schedule."""

    def __init__(
        self,
        settings: Settings,
        *,
        command: Sequence[str],
        env: Mapping[str, str],
        on_published: Sequence[PublishedHook] = (),
        clock: Clock = utc_now,
        spawn: Spawn = spawn_child,
        maintain_command: Sequence[str] = (),
    ) -> None:
        self._settings = settings
        self._command = tuple(command)
        self._maintain_command = tuple(maintain_command)
        self._last_maintained: dt.datetime | None = None  # read from the lake at the first tick
        self._env = dict(env)
        self._hooks = tuple(on_published)
        self._clock = clock
        self._spawn = spawn
        self._guard = threading.Lock()  # the counter, the child, stopping
        self._committed = 0  # batches notified
        self._seen = 0  # batches notified when the last run started
        self._owed = False  # a run found the lock held: try again
        self._last_attempt: dt.datetime | None = None
        self._last_sweep: dt.datetime | None = None
        self._child: Child | None = None
        self._stopping = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, batch: CommittedBatch) -> None:
        """An ``on_committed`` hook: counts the batch and wakes the thread (never waits)."""
        with self._guard:
            self._committed += 1
        self._wake.set()

    def start(self) -> None:
        """Start the scheduler's thread (its first run starts at once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="run-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Start no more runs; let a run in progress finish for ``pipeline.stop_grace`` seconds,
        then end it (SIGTERM)."""
        with self._guard:
            self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is None:
            return
        grace = self._settings.pipeline.stop_grace
        thread.join(grace)
        if thread.is_alive():
            with self._guard:
                child = self._child
            if child is not None:
                log.warning("run scheduler: the run did not end within %g s; ending it", grace)
                child.terminate()
            thread.join(grace)
        self._thread = None

    def tick(self) -> float:
        """Start a run if one is due (and wait for it); the seconds until one may be due."""
        now = self._clock()
        due, sweep = self._due(now)
        if due:
            self.run_once(sweep=sweep)
            now = self._clock()
        if self._maintenance_due(now):
            self.maintain_once()
            now = self._clock()
        return self._delay(now)

    def maintain_once(self) -> RunOutcome | None:
        """Start ``glucosestream maintain`` and wait for it (None: the scheduler is stopping)."""
        started_at = self._clock()
        ended = self._start(self._maintain_command, self._settings, "maintenance")
        if ended is None:
            return None
        code, stdout, stderr, seconds = ended
        report = _report_of(stdout)
        run_id = report.get("run_id") if isinstance(report.get("run_id"), str) else None
        if code == 0 and run_id is not None:
            outcome = RunOutcome(run_id, "maintained", seconds)
        else:
            outcome = self._failure(code, run_id, stderr, seconds)
        pipeline = self._settings.pipeline
        if outcome.status == "lock_held":  # owed: due again min_interval from now
            started_at += _seconds(pipeline.min_interval - pipeline.maintain_interval)
        self._last_maintained = started_at
        self._report(outcome)
        return outcome

    def run_once(self, *, sweep: bool) -> RunOutcome | None:
        """Start one run and wait for it (None: the scheduler is stopping)."""
        started_at = self._clock()
        with self._guard:
            committed = self._committed
        run_settings = self._settings.override("pipeline", sweep_raw_zone=sweep)
        ended = self._start(self._command, run_settings, f"run (sweep={str(sweep).lower()})")
        if ended is None:
            return None
        self._last_attempt = started_at
        outcome = self._outcome(*ended)
        if outcome.status == "lock_held":
            self._owed = True
        else:
            self._owed = False
            self._seen = committed
            if sweep:
                self._last_sweep = started_at
        self._report(outcome)
        return outcome

    # ---- internals --------------------------------------------------------------------

    def _start(
        self, command: Sequence[str], settings: Settings, what: str
    ) -> tuple[int | None, str, str, float] | None:
        """Start a child with ``settings`` and wait for it: its exit code, output and seconds
        (None: the scheduler is stopping, nothing started)."""
        started = time.monotonic()
        with self._guard:
            if self._stopping:
                return None
            log.info("run scheduler: starting %s", what)
            self._child = child = self._spawn(command, {**self._env, **settings.to_env()})
        try:
            code = child.wait()
            stdout, stderr = child.output()
        finally:
            with self._guard:
                self._child = None
        return code, stdout, stderr, time.monotonic() - started

    def _maintenance_due(self, now: dt.datetime) -> bool:
        interval = self._settings.pipeline.maintain_interval
        if not self._maintain_command or interval <= 0:
            return False
        if self._last_maintained is None:
            last = open_metadata(self._settings.lake).last_started("maint-")
            self._last_maintained = last or dt.datetime.min.replace(tzinfo=dt.UTC)
        return now >= self._last_maintained + _seconds(interval)

    def _due(self, now: dt.datetime) -> tuple[bool, bool]:
        """Whether a run is due now, and whether it lists the raw zone too."""
        pipeline = self._settings.pipeline
        last = self._last_attempt
        sweep = self._last_sweep is None or now >= self._last_sweep + _seconds(
            pipeline.schedule_interval
        )
        if last is None:
            return True, sweep
        if now >= last + _seconds(pipeline.schedule_interval):
            return True, sweep
        waiting = self._owed or self._dirty()
        return waiting and now >= last + _seconds(pipeline.min_interval), sweep

    def _dirty(self) -> bool:
        with self._guard:
            return self._committed > self._seen

    def _delay(self, now: dt.datetime) -> float:
        """Seconds until a run may be due (a notify wakes the thread before)."""
        last = self._last_attempt
        if last is None:
            return 0.0
        pipeline = self._settings.pipeline
        next_at = last + _seconds(pipeline.schedule_interval)
        if self._owed or self._dirty():
            next_at = min(next_at, last + _seconds(pipeline.min_interval))
        if self._maintain_command and pipeline.maintain_interval > 0 and self._last_maintained:
            next_at = min(next_at, self._last_maintained + _seconds(pipeline.maintain_interval))
        return max((next_at - now).total_seconds(), 0.0)

    def _loop(self) -> None:
        while True:
            with self._guard:
                if self._stopping:
                    return
            self._wake.clear()
            try:
                delay = self.tick()
            except Exception:  # the thread must outlive any one run's trouble
                log.exception("run scheduler: a run could not be started or read")
                delay = self._settings.pipeline.min_interval
            self._wake.wait(delay)

    def _outcome(self, code: int | None, stdout: str, stderr: str, seconds: float) -> RunOutcome:
        """What a run's exit code and output say about it."""
        report = _report_of(stdout)
        run_id = report.get("run_id") if isinstance(report.get("run_id"), str) else None
        status = str(report.get("status", ""))
        if not status or (code is not None and code < 0):
            return self._failure(code, run_id, stderr, seconds)
        batch_ids: tuple[str, ...] = ()
        if status == "published" and run_id is not None:
            batch_ids = tuple(open_metadata(self._settings.lake).run_batch_ids(run_id))
        return RunOutcome(run_id, status, seconds, batch_ids)

    def _failure(
        self, code: int | None, run_id: str | None, stderr: str, seconds: float
    ) -> RunOutcome:
        """A child that ended without a report: stopped, the lock held, or an error."""
        if code is not None and code < 0:
            return RunOutcome(run_id, "stopped", seconds)
        if str(RunInProgress(self._settings.lake.location)) in stderr:
            return RunOutcome(None, "lock_held", seconds)
        tail = " ".join(stderr.split())[-_STDERR_TAIL:]
        log.warning("run scheduler: the child failed (exit %s): %s", code, tail)
        return RunOutcome(run_id, "error", seconds)

    def _report(self, outcome: RunOutcome) -> None:
        """Log the run's end; call the hooks after a publish."""
        if outcome.status == "lock_held":
            log.info("run scheduler: another run holds the lock; trying again later")
            return
        level = logging.WARNING if outcome.status in _TROUBLE else logging.INFO
        log.log(
            level,
            "run scheduler: run run_id=%s status=%s batches=%d duration_ms=%d",
            outcome.run_id, outcome.status, len(outcome.batch_ids),
            round(outcome.duration_s * 1000),
        )  # fmt: skip
        if outcome.status != "published" or outcome.run_id is None:
            return
        for hook in self._hooks:
            try:
                hook(outcome.run_id, list(outcome.batch_ids))
            except Exception:
                log.exception("run scheduler: an on_published hook failed for %s", outcome.run_id)


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


def _report_of(stdout: str) -> dict[str, Any]:
    """The run's JSON report (``run --json``), or {} if it printed none."""
    try:
        report = json.loads(stdout)
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}
