"""Compiled whole-cohort kernels (numba). PURE.

The per-patient definitions live in ``metrics.reference`` (``interpolation_grid``,
``episodes``, ``variability``, ``mage``, ...); these kernels compute the same numbers for every
patient of a cohort in one compiled pass over flat, (patient, time)-sorted arrays with
per-patient offsets, so no Python runs per patient. ``tests/test_metrics_cohort.py`` checks
them against the per-patient reference on random cohorts; the iglu comparison runs through
them.

Kernels are compiled on first use and cached next to this package (``cache=True``). numba keys
a cached kernel on its own file only, so a kernel would outlive an edit of a function or constant
it calls from another module; ``_PackageLocator`` keys every kernel here on the source of all
of them and of the modules whose constants they compile in. A cache miss costs about half a
minute of compilation, once per machine and source version; ``announce_compilation`` lets the
command line say so when it happens (and only then).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar, cast

import numba
from numba.core import caching
from numba.core import event as numba_event

__all__ = ["announce_compilation", "compiled", "compiled_parallel"]

F = TypeVar("F", bound=Callable[..., object])


_KERNELS = Path(__file__).resolve().parent
# The kernels' own modules and the per-patient modules whose constants they compile in.
_CONSTANTS = (
    "glycemic.py",
    "thresholds.py",
    "reference/episodes.py",
    "reference/mage.py",
    "reference/risk.py",
)
_SOURCES = (*(_KERNELS.parent / n for n in _CONSTANTS), *sorted(_KERNELS.glob("*.py")))


@functools.lru_cache(maxsize=4)
def _package_stamp(stats: tuple[tuple[float, int], ...]) -> str:
    digest = hashlib.sha256()
    for path in _SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()


class _PackageLocator(caching.InTreeCacheLocator):
    """numba's in-tree cache, with the freshness stamp of every source a kernel depends on."""

    def get_source_stamp(self) -> str:
        stats = tuple((p.stat().st_mtime, p.stat().st_size) for p in _SOURCES)
        return _package_stamp(stats)

    @classmethod
    def from_function(cls, py_func: object, py_file: str) -> object:
        if Path(py_file).resolve().parent != _KERNELS:
            return None
        return super().from_function(py_func, py_file)  # type: ignore[no-untyped-call]


if _PackageLocator not in caching.CacheImpl._locator_classes:
    caching.CacheImpl._locator_classes.insert(0, _PackageLocator)


def compiled(fn: F) -> F:
    """Compile ``fn`` with numba (no Python objects; numpy's float error model: 1/0 is inf)."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy")(fn))


def compiled_parallel(fn: F) -> F:
    """Like ``compiled``, with ``numba.prange`` loops spread over the machine's cores."""
    return cast(F, numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)(fn))


class _FirstCompile(numba_event.Listener):
    """Calls ``announce`` when the first compilation starts (numba sends ``numba:compile`` only
    for a kernel it does not find in its cache)."""

    def __init__(self, announce: Callable[[], None]) -> None:
        self._announce = announce
        self._lock = threading.Lock()
        self._done = False

    def on_start(self, event: numba_event.Event) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._announce()

    def on_end(self, event: numba_event.Event) -> None:
        pass


@contextlib.contextmanager
def announce_compilation(announce: Callable[[], None]) -> Iterator[None]:
    """While inside, call ``announce`` once, when a kernel first has to be compiled rather than
    loaded from the cache (after an install or upgrade); never when every kernel is cached."""
    listener = _FirstCompile(announce)
    numba_event.register("numba:compile", listener)  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        numba_event.unregister("numba:compile", listener)  # type: ignore[no-untyped-call]
