"""The whole exception tree of GlucoseStream.

    GlucoseStreamError                  base; ``retryable`` says whether trying again may help
    ├── ConfigError                     a setting or a command-line value is wrong
    ├── InvalidInput                    a received file or payload cannot be read at all
    │   ├── UnknownFormat               the format of a file cannot be told or is not supported
    │   └── PayloadTooLarge             a request body or field over its documented limit (HTTP 413)
    ├── NotFound                        a patient, batch or run that does not exist
    ├── AuthError                       a missing or wrong token (HTTP 401)
    │   └── LoginRequired               a page asked for without a session (a redirect to /login)
    ├── Forbidden                       a valid token that may not do this (HTTP 403)
    ├── TooManyRequests                 a client over a rate limit, e.g. failed logins (HTTP 429)
    ├── BudgetExceeded                  a private release would overspend its budget (HTTP 409)
    ├── CohortTooSmall                  a cohort release over too few patients (HTTP 409)
    ├── RunInProgress                   another run holds the lake's run lock (HTTP 409, retry)
    ├── RunLockLost                     a run's lease on the lock ended and another run took it
    ├── LakeError                       the lake (files, catalog, metadata store) failed
    ├── EngineError                     the query engine failed
    │   ├── EngineUnavailable           the engine cannot be started here
    │   └── EngineOverloaded            out of memory or disk for now: retry later (HTTP 503)
    ├── QualityGateFailed               a quality check failed; nothing was published
    │   └── BatchesRejected             checks blamed raw batches; they were set aside
    ├── WorkerLost                      a task's worker process died on every attempt
    └── ClusterUnavailable              the Ray cluster of --cluster cannot be used from here

Rows that are individually bad are not errors: ingest quarantines them with a reason. Errors are
for what stops a whole command. Each message says what happened, the offending value, what was
expected, and the next step.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthError",
    "BatchesRejected",
    "BudgetExceeded",
    "ClusterUnavailable",
    "CohortTooSmall",
    "ConfigError",
    "EngineError",
    "EngineOverloaded",
    "EngineUnavailable",
    "Forbidden",
    "GlucoseStreamError",
    "InvalidInput",
    "LakeError",
    "LoginRequired",
    "NotFound",
    "PayloadTooLarge",
    "QualityGateFailed",
    "RunInProgress",
    "RunLockLost",
    "TooManyRequests",
    "UnknownFormat",
    "WorkerLost",
]


class GlucoseStreamError(Exception):
    """Base of every error GlucoseStream raises on purpose."""

    retryable: bool = False
    status: int = 500


class ConfigError(GlucoseStreamError):
    """A setting, environment variable or command-line value is invalid."""

    status = 400


class InvalidInput(GlucoseStreamError):
    """A file or payload cannot be read; nothing from it was written.

    ``source`` names the file (or ``request``), ``line`` the 1-based line or row when known.
    """

    status = 422

    def __init__(self, message: str, *, source: str = "", line: int | None = None) -> None:
        where = source if line is None else f"{source}, line {line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.line = line


class UnknownFormat(InvalidInput):
    """The format of an input cannot be detected or is not supported yet."""


class PayloadTooLarge(InvalidInput):
    """A request body (or one of its fields) is over a documented limit; nothing was read."""

    status = 413


class NotFound(GlucoseStreamError):
    """A patient, batch or run asked for does not exist."""

    status = 404


class AuthError(GlucoseStreamError):
    """A request carried no valid token."""

    status = 401


class LoginRequired(AuthError):
    """A page was asked for without a session; the app answers with a redirect to /login."""


class Forbidden(GlucoseStreamError):
    """A valid token whose role or bindings do not allow the request."""

    status = 403


class BudgetExceeded(GlucoseStreamError):
    """A private release would spend more of a dataset's privacy budget than is left."""

    status = 409

    def __init__(self, dataset: str, epsilon: float, spent: float, budget: float) -> None:
        super().__init__(
            f"releasing this statistic would spend epsilon={epsilon:g} of dataset {dataset!r}, "
            f"which has {max(budget - spent, 0.0):g} of its budget {budget:g} left; nothing was "
            "released (ask for fewer statistics, or a new dataset version with its own budget)"
        )
        self.dataset = dataset


class CohortTooSmall(GlucoseStreamError):
    """The cohort has fewer patients with data than a release may describe; nothing spent.
    A valid request the data cannot answer yet: 409, as for an exhausted budget."""

    status = 409

    def __init__(self, dataset: str, patients: int, minimum: int) -> None:
        super().__init__(
            f"dataset {dataset!r} has {patients} patient(s) with data; a cohort release needs at "
            f"least {minimum}, because with fewer the noise that protects each patient is wider "
            "than the statistics' range and the figures would say nothing. Nothing was released "
            "or spent: release over a larger cohort (an admin's cohort:all, or a clinic with "
            "more patients), or wait until more patients have data "
            "(GLUCOSESTREAM_DASHBOARD__PRIVACY_MIN_PATIENTS sets the minimum)"
        )
        self.dataset = dataset
        self.patients = patients
        self.minimum = minimum


class RunInProgress(GlucoseStreamError):
    """Another run holds the lake's run lock."""

    status = 409
    retryable = True

    def __init__(self, location: str) -> None:
        super().__init__(
            f"another `glucosestream run` is working on {location}; "
            "wait for it to finish (runs hold the lock only while they work)"
        )
        self.location = location


class RunLockLost(GlucoseStreamError):
    """A run's lease on the run lock ended and another run took it: the first must not publish."""

    status = 409
    retryable = False

    def __init__(self, location: str, run_id: str) -> None:
        super().__init__(
            f"run {run_id} no longer holds the run lock of {location}: its lease ended and "
            "another run took it; this run publishes nothing, and its batches stay pending "
            "for the run that holds the lock"
        )
        self.location = location
        self.run_id = run_id


class TooManyRequests(GlucoseStreamError):
    """A client went over a rate limit (failed logins); ``retry_after_s`` says when to retry."""

    status = 429
    retryable = True

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LakeError(GlucoseStreamError):
    """Reading or writing the lake, its catalog or the metadata store failed."""

    retryable = True


class EngineError(GlucoseStreamError):
    """The query engine failed to run a model."""

    def __init__(self, message: str, *, engine: str = "duckdb") -> None:
        super().__init__(message)
        self.engine = engine


class EngineUnavailable(EngineError):
    """The configured engine cannot be used on this machine."""


class EngineOverloaded(EngineError):
    """The engine ran out of memory or disk space: no input's fault; trying later may help."""

    status = 503
    retryable = True


class QualityGateFailed(GlucoseStreamError):
    """One or more quality checks failed on staged data, so nothing was published."""

    status = 409

    def __init__(self, failed_checks: Sequence[str], *, run_id: str = "") -> None:
        names = ", ".join(failed_checks)
        super().__init__(
            f"quality gate failed ({names}); nothing was published and the earlier results stay "
            f"readable; see `glucosestream run --json` for the failing rows"
        )
        self.failed_checks = tuple(failed_checks)
        self.run_id = run_id


class BatchesRejected(QualityGateFailed):
    """Quality checks blamed some raw batches; they were rejected and the rest was published."""

    def __init__(
        self, failed_checks: Sequence[str], batch_ids: Sequence[str], *, run_id: str = ""
    ) -> None:
        checks = ", ".join(failed_checks)
        GlucoseStreamError.__init__(
            self,
            f"{len(batch_ids)} batch(es) rejected by the quality gate ({checks}): "
            f"{', '.join(batch_ids)}; they were not loaded (see `glucosestream runs` for why); "
            "fix the data or the limits and ingest the files again",
        )
        self.failed_checks = tuple(failed_checks)
        self.batch_ids = tuple(batch_ids)
        self.run_id = run_id


class WorkerLost(GlucoseStreamError):
    """The process running a task died (killed, out of memory) on every attempt it was given.

    ``task_index`` is the task's place in the list the executor ran, ``task`` its description
    and ``attempts`` how many times it was tried.
    """

    def __init__(self, *, task_index: int, task: str, attempts: int, executor: str) -> None:
        super().__init__(
            f"task {task_index} ({task}) lost its worker process ({executor}) on each of its "
            f"{attempts} attempts: the process was killed, most often for lack of memory, or "
            "could not start (its error is printed above); run again with a smaller "
            "--memory-budget or fewer --workers, and look for the out-of-memory killer in the "
            "system log (journalctl -k)"
        )
        self.task_index = task_index
        self.task = task
        self.attempts = attempts
        self.executor = executor


class ClusterUnavailable(GlucoseStreamError):
    """The cluster given with ``--cluster`` cannot be used: ray is not installed, nothing answers
    at the address, or its workers run another version of glucosestream."""

    status = 503
    retryable = True

    def __init__(self, address: str, problem: str, next_step: str) -> None:
        super().__init__(f"cannot use the Ray cluster at {address}: {problem}; {next_step}")
        self.address = address
