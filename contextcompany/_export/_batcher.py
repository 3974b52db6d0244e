"""The batching worker: a bounded queue, one export thread, bounded flush and shutdown, and counts.

    >>> batcher = Batcher(prepare, exporter_for, discard, max_queue=2048, max_batch=512,
    ...                   delay_seconds=5.0, shutdown_seconds=5.0)
    >>> batcher.put(span)                  # caller's thread: one append under a lock
    >>> batcher.force_flush(1000)          # any thread: waits at most one second
    >>> batcher.stats().spans_exported

Threads:

- the caller's thread runs ``put()`` only: it appends to the queue (dropping the oldest span when it is
  full) and may set an event; it never blocks on I/O and never logs;
- the export worker (thread ``contextcompany-export``, a daemon) runs everything else: it wakes every
  ``delay_seconds`` or when a batch is full, calls ``prepare`` on each span (the enrichment stages and
  the routing key), cuts each destination's spans into requests of bounded size, exports them with
  instrumentation suppressed, counts the outcome, and says once per outage that exports fail;
- ``force_flush()``, ``shutdown()`` and ``stats()`` may be called from any thread; the first two wait
  for the worker at most their timeout, even when the collector hangs.

After ``fork()`` the child starts with an empty queue and a worker of its own (threads do not survive
fork, and a lock held at fork time would never be released); the parent keeps exporting what it queued.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util.types import AttributeValue

from contextcompany import _forksafe as forksafe
from contextcompany._redact import redact

from ._exporter_logs import capturing

logger = logging.getLogger("contextcompany")

# A batch is cut before its spans' text passes this many bytes, so a request stays inside the 4 MiB a
# collector's gRPC receiver accepts by default (HTTP receivers take more), whatever the batch size.
_MAX_REQUEST_BYTES: Final = 3 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Stats:
    """What the export pipeline did since it started (``tcc.stats()``).

    ``spans_dropped`` counts spans that will never be delivered: dropped because the queue was full,
    ended after shutdown, or in a batch whose export failed.
    """

    spans_queued: int
    spans_exported: int
    spans_dropped: int
    exports_failed: int
    queue_size: int
    last_error: str | None


def approximate_size(name: str, attributes: Mapping[str, AttributeValue]) -> int:
    """About how many bytes a span adds to an OTLP request: its strings (UTF-8 can double non-ASCII
    text, which the slack of the limit absorbs) and a fixed cost for ids, times and keys."""
    size = 256 + len(name) + 16 * len(attributes)
    for key, value in attributes.items():
        size += len(key)
        if type(value) is str:
            size += len(value)
    return size


def by_size(spans: list[tuple[ReadableSpan, int]]) -> Iterator[list[ReadableSpan]]:
    """``(span, size)`` pairs cut into requests of at most about ``_MAX_REQUEST_BYTES`` each (a span larger
    than that still goes, alone)."""
    request: list[ReadableSpan] = []
    size = 0
    for span, span_size in spans:
        if request and size + span_size > _MAX_REQUEST_BYTES:
            yield request
            request, size = [], 0
        request.append(span)
        size += span_size
    if request:
        yield request


def _to(exporter: SpanExporter | None) -> str:
    """`` (to <URL>)`` for an exporter that names where it sends (tcc's own do), else nothing."""
    where = getattr(exporter, "endpoint", None)
    return f" (to {where})" if isinstance(where, str) else ""


# On the worker: a queued item (an ended span, or a record whose span the worker starts) as it will be
# sent: the key of its destination (None: the default exporter), the span and its approximate size in a
# request; None when it leaves nothing to send (a record whose span was not sampled).
Prepare = Callable[[Any], tuple[Hashable, ReadableSpan, int] | None]


class Batcher:
    """Queues ended spans on the caller's thread and exports them in batches on its own worker."""

    def __init__(
        self,
        prepare: Prepare,
        exporter_for: Callable[[Hashable], SpanExporter | None],
        discard: Callable[[Any], None],
        *,
        max_queue: int,
        max_batch: int,
        delay_seconds: float,
        shutdown_seconds: float,
        unsampled: Callable[[Any], None] | None = None,
    ) -> None:
        self._prepare = prepare
        self._exporter_for = exporter_for
        self._discard = discard  # told about each span dropped from a full queue
        self._count_unsampled = unsampled  # what the worker does with each record put by unsampled()
        self.max_queue = max_queue
        self.max_batch = min(max_batch, max_queue)
        self.delay = delay_seconds
        self.shutdown_timeout = shutdown_seconds
        self._queued = 0
        self._exported = 0
        self._dropped = 0
        self._failed = 0
        self._last_error: str | None = None
        self._failing: set[Hashable] = set()
        self.is_shutdown = False
        self._in_flight = 0
        self._gave_up = False
        self._overflowing = False  # set on the caller's thread, logged (once per episode) by the worker
        self._was_overflowing = False
        self._start_worker()
        forksafe.after_fork(self._after_fork_in_child, forksafe.Phase.WORKERS, weak=True)

    def _start_worker(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Any] = deque()  # ended spans, and records whose span the worker starts
        # Records whose span was not sampled, for the metrics only: never exported, never in the stats.
        # Bounded like the span queue (oldest dropped first), for a worker that cannot keep up.
        self._unsampled: deque[Any] = deque(maxlen=4 * self.max_queue)
        self._wake = threading.Event()
        self._flush_waiters: list[threading.Event] = []
        self._worker = threading.Thread(target=self._work, name="contextcompany-export", daemon=True)
        self._worker.start()

    @property
    def worker(self) -> threading.Thread:
        """The export thread (a new one after fork)."""
        return self._worker

    def _after_fork_in_child(self) -> None:
        if not self.is_shutdown:
            self._start_worker()

    # -- the caller's side: must stay cheap and never block on I/O --

    def put(self, span: Any) -> None:
        with self._lock:
            if self.is_shutdown:
                self._dropped += 1
                return
            if len(self._queue) >= self.max_queue:
                self._discard(self._queue.popleft())
                self._dropped += 1
                self._overflowing = True
            self._queue.append(span)
            self._queued += 1
            wake = len(self._queue) >= self.max_batch
        if wake:
            self._wake.set()

    def unsampled(self, record: Any) -> None:
        """Hand a record whose span was not sampled to the worker: one append, no lock, no wake-up (the
        worker takes them at its next round, or at flush)."""
        self._unsampled.append(record)

    # -- the worker --

    def _work(self) -> None:
        while True:
            self._wake.wait(self.delay)
            with self._lock:
                self._wake.clear()
                waiters, self._flush_waiters = self._flush_waiters, []
                stopping = self.is_shutdown
                overflowed, self._overflowing = self._overflowing, False
            if overflowed and not self._was_overflowing and not self._failing:
                # Logged here, not on the caller's thread, where a log write could block. Not during an
                # outage either: its one warning already says spans are dropped until it ends.
                logger.warning(
                    "contextcompany: the export queue is full (%d spans): the oldest are dropped "
                    "until it drains",
                    self.max_queue,
                )
            self._was_overflowing = overflowed
            self._drain()
            for waiter in waiters:
                waiter.set()
            if stopping:
                return

    def _drain(self) -> None:
        unsampled, count = self._unsampled, self._count_unsampled
        while unsampled and count is not None:
            count(unsampled.popleft())
        while True:
            # Only the pops happen under the lock: the caller's put() takes it too, and must never wait
            # while the worker enriches or measures spans.
            with self._lock:
                if not self._queue:
                    return
                pop = self._queue.popleft
                batch = [pop() for _ in range(min(len(self._queue), self.max_batch))]
                self._in_flight = len(batch)
            self._export(batch)

    def _export(self, batch: list[Any]) -> None:
        groups: dict[Hashable, list[tuple[ReadableSpan, int]]] = {}
        prepare = self._prepare
        nothing = 0
        for item in batch:
            prepared = prepare(item)
            if prepared is None:
                nothing += 1
                continue
            key, ready, size = prepared
            groups.setdefault(key, []).append((ready, size))
        if nothing:
            with self._lock:  # not spans after all: neither queued nor in flight any more
                self._queued -= nothing
                self._in_flight -= nothing
        for key, spans in groups.items():
            for request in by_size(spans):
                self._send(key, request)
                with self._lock:
                    self._in_flight -= len(request)

    def _send(self, key: Hashable, spans: list[ReadableSpan]) -> None:
        exporter = self._exporter_for(key)
        token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))

        def failing(cause: str, at_once: bool) -> None:
            # Said by tcc's HTTP session at a failed attempt, while the exporter may retry for seconds
            # more: stats().last_error shows it at once, and so does the warning when retrying will most
            # likely not mend it (a retry that succeeds after a 429 or a 503 is no outage: no warning).
            if at_once:
                self._failure(key, exporter, redact(cause))
            else:
                with self._lock:
                    if not self._gave_up:
                        self._last_error = redact(cause)

        try:
            with capturing(failing, final=self.is_shutdown) as notes:
                if exporter is None:
                    error: str | None = "no exporter for this destination"
                else:
                    result = exporter.export(spans)
                    if result is SpanExportResult.SUCCESS:
                        error = None
                    else:
                        reason = getattr(exporter, "reason", None)  # an exporter that refuses says why
                        error = notes[-1] if notes else reason or "the exporter reported a failure"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            otel_context.detach(token)
        if error is not None:
            error = redact(error)
        with self._lock:
            if self._gave_up:
                pass  # shutdown stopped waiting for this export and counted its spans as dropped
            elif error is None:
                self._exported += len(spans)
            else:
                self._dropped += len(spans)
                self._failed += 1
                self._last_error = error
        if error is not None:
            self._failure(key, exporter, error)
        elif key in self._failing:
            self._failing.discard(key)
            logger.warning("contextcompany: exporting spans works again%s", _to(exporter))

    def _failure(self, key: Hashable, exporter: SpanExporter | None, error: str) -> None:
        """On the worker: record the cause, and warn once per outage of this destination (an exporter
        with an ``explain(cause)`` method words the warning: URL, where it came from, the likely fix)."""
        with self._lock:
            if not self._gave_up:
                self._last_error = error
        if key in self._failing:
            return  # later failures of the same outage: counted, not repeated
        self._failing.add(key)
        explain = getattr(exporter, "explain", None)
        if callable(explain):
            message = explain(error)
            if message is not None:  # None: the exporter's problem was told at setup already
                logger.warning("contextcompany: %s", message)
        else:
            logger.warning(
                "contextcompany: exporting spans failed (%s); spans are dropped until exports succeed again",
                error,
            )

    # -- any thread --

    def force_flush(self, timeout_millis: float) -> bool:
        """Export everything queued so far. True when it was all delivered within the timeout; False when
        the timeout passed first, or some of it could not be delivered (see ``stats()``)."""
        done = threading.Event()
        with self._lock:
            dropped = self._dropped
            if self.is_shutdown or not self._worker.is_alive():
                return not self._queue
            self._flush_waiters.append(done)
        self._wake.set()
        finished = done.wait(max(timeout_millis, 0) / 1000)
        with self._lock:
            return finished and self._dropped == dropped

    def shutdown(self, timeout_seconds: float | None = None) -> bool:
        """Export what is queued, then stop the worker; waits at most the shutdown timeout. False when it
        was already shut down."""
        timeout = self.shutdown_timeout if timeout_seconds is None else timeout_seconds
        with self._lock:
            if self.is_shutdown:
                return False
            self.is_shutdown = True
            failing, cause = list(self._failing), self._last_error
        self._wake.set()
        for key in failing:
            # A destination already failing would hold the exit for its retries: tell its exporter (if it
            # can be told) to stop trying; it decides whether that failure warrants it.
            try:
                stop = getattr(self._exporter_for(key), "stop_retrying", None)
                if callable(stop):
                    stop(cause)
            except Exception:
                logger.debug("contextcompany: stop_retrying failed", exc_info=True)
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout)
        with self._lock:
            # Whatever the worker could not send in time is lost (queued, or in an export still hanging):
            # say so in the counts and in the last error.
            lost = len(self._queue) + self._in_flight
            self._dropped += lost
            if self._in_flight:
                self._failed += 1  # the export under way did not finish: it failed, as far as anyone knows
            if lost:
                cause = f"; the last cause: {self._last_error}" if self._last_error else ""
                self._last_error = (
                    f"{lost} spans dropped at shutdown: not delivered within the shutdown timeout "
                    f"({timeout * 1000:g} ms){cause}"
                )
            self._gave_up = self._in_flight > 0
            self._queue.clear()
        return True

    def stats(self) -> Stats:
        with self._lock:
            return Stats(
                spans_queued=self._queued,
                spans_exported=self._exported,
                spans_dropped=self._dropped,
                exports_failed=self._failed,
                queue_size=len(self._queue),
                last_error=self._last_error,
            )
