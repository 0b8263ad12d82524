"""Group commit: concurrent requests share one flush, never one fate.

A request enqueues its work and gets a future. If no flush is running, the request that
enqueued becomes the *leader*: it takes everything queued, flushes it with one call (one raw
batch, one fsync'd write), resolves every waiting future with that request's own result, and
repeats until the queue is empty. Requests that arrive while a flush runs wait for the next one,
so the number of flushes adapts to the load: one request alone is flushed at once, a hundred
concurrent ones are flushed together. No thread is kept running between flushes, so the same
committer serves an ASGI app (the leader starts the drain in a worker thread and, like every
request, waits only for its own group: ``asgi.commit``), a Lambda function and plain calls
alike.

``flush`` answers each item on its own: a result, or an exception that is that item's alone
(the flush isolates the item that made it fail; see ``service.IngestService``), so one bad
request never fails the others flushed with it. Only a flush that raises, a failure that is no
item's own (the metadata store is down), is heard by every item of its group.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["GroupCommitter"]

log = logging.getLogger(__name__)

W = TypeVar("W")
R = TypeVar("R")


class GroupCommitter(Generic[W, R]):
    """Flushes queued work items together with ``flush(items) -> results`` (same order; an
    ``Exception`` in place of a result is that item's own failure)."""

    def __init__(
        self, flush: Callable[[Sequence[W]], Sequence[R | Exception]], *, max_items: int
    ) -> None:
        self._flush = flush
        self._max_items = max_items
        self._lock = threading.Lock()
        self._queue: list[tuple[W, Future[R]]] = []
        self._leading = False

    def enqueue(self, item: W) -> tuple[Future[R], bool]:
        """Queue one item; returns its future and whether the caller must ``drain``."""
        future: Future[R] = Future()
        with self._lock:
            self._queue.append((item, future))
            lead = not self._leading
            self._leading = True
        return future, lead

    def drain(self) -> None:
        """Flush groups until the queue is empty (only the leader calls this)."""
        while True:
            with self._lock:
                group, self._queue = (
                    self._queue[: self._max_items],
                    self._queue[self._max_items :],
                )
                if not group:
                    self._leading = False
                    return
            try:
                self._flush_group(group)
            except BaseException:
                with self._lock:
                    self._leading = False
                raise

    def submit(self, item: W) -> R:
        """Enqueue, drain if leading, and wait: for callers without an event loop."""
        future, lead = self.enqueue(item)
        if lead:
            self.drain()
        return future.result()

    def _flush_group(self, group: list[tuple[W, Future[R]]]) -> None:
        try:
            results = self._flush([item for item, _ in group])
        except BaseException as err:  # no item's own failure: every waiter hears of it
            for _, future in group:
                future.set_exception(err)
            if not isinstance(err, Exception):
                raise
            return
        failed = sum(isinstance(r, Exception) for r in results)
        log.debug("group commit requests=%d failed=%d", len(group), failed)
        for (_, future), result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
