"""Span ids derived from run ids, so another process that knows only a ``run_id`` can join its trace.

    >>> run_span_context("run-42")   # the parent for a step made in another process
    SpanContext(trace_id=0x..., span_id=0x..., trace_flags=0x01, trace_state=[], is_remote=True)

A run's span id is derived from its run id (SHA-256, so ids stay uniformly distributed), and so is its
trace id when the run starts a trace of its own. A step, tool call or feedback made in a process where
the run is not alive uses that derived span context as its parent, and lands in the run's trace as
the run's child. (A run that started inside another span, such as a web request's, takes that span's
trace id, which another process cannot derive: there, spans from other processes still carry
``tcc.run.id`` but start a trace of their own.)

The SDK asks its tracer's ``IdGenerator`` for ids. ``RunIdGenerator`` wraps the provider's generator
and hands out a forced pair once, while a run span is being started on this thread.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator

from . import _forksafe as forksafe

_forced = threading.local()

# tcc's own source of ids (span and trace ids of tcc's own provider, default record ids): seeded from
# os.urandom, and again in every forked child, so an application's random.seed() (common for
# reproducible ML code) cannot make two processes send the same ids; the SDK's RandomIdGenerator uses the
# global random module. getrandbits holds the GIL, unlike os.urandom's getrandom() syscall.
rng: random.Random = random.Random()
forksafe.after_fork(rng.seed, forksafe.Phase.LOCKS)  # a child must not repeat its parent's ids


def run_ids(run_id: str) -> tuple[int, int]:
    """(trace id, span id) of run ``run_id``'s span when it starts its own trace."""
    digest = hashlib.sha256(b"contextcompany.run:" + run_id.encode("utf-8", "surrogatepass")).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


def run_span_context(run_id: str) -> trace.SpanContext:
    """A remote parent standing for run ``run_id``'s span."""
    trace_id, span_id = run_ids(run_id)
    return trace.SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
    )


@contextmanager
def forced(run_id: str) -> Iterator[None]:
    """While a run span starts on this thread, the id generator returns the run's derived ids."""
    _forced.ids = run_ids(run_id)
    try:
        yield
    finally:
        _forced.ids = None


class OwnRandomIds(IdGenerator):
    """Random trace and span ids like the SDK's ``RandomIdGenerator``, from tcc's own generator."""

    def generate_span_id(self) -> int:
        span_id = rng.getrandbits(64)
        while span_id == trace.INVALID_SPAN_ID:
            span_id = rng.getrandbits(64)
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = rng.getrandbits(128)
        while trace_id == trace.INVALID_TRACE_ID:
            trace_id = rng.getrandbits(128)
        return trace_id


class RunIdGenerator(IdGenerator):
    """The provider's id generator, except for run spans (see ``forced``)."""

    def __init__(self, base: IdGenerator) -> None:
        self._base = base

    def generate_trace_id(self) -> int:
        ids: tuple[int, int] | None = getattr(_forced, "ids", None)
        return ids[0] if ids is not None else self._base.generate_trace_id()

    def generate_span_id(self) -> int:
        ids: tuple[int, int] | None = getattr(_forced, "ids", None)
        if ids is not None:
            _forced.ids = None  # one span only: anything started while it is being started is not the run
            return ids[1]
        return self._base.generate_span_id()

    def is_trace_id_random(self) -> bool:
        return self._base.is_trace_id_random()


def install(tracer: trace.Tracer) -> bool:
    """Make ``tracer`` derive run span ids; False when it is not an SDK tracer (nothing to install)."""
    base = getattr(tracer, "id_generator", None)
    if not isinstance(base, IdGenerator):
        return False
    if not isinstance(base, RunIdGenerator):
        # Only tcc's own tracer object is touched; the service's other tracers keep their generator.
        tracer.id_generator = RunIdGenerator(base)  # type: ignore[attr-defined]
    return True
