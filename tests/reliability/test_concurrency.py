"""Threads and asyncio tasks never duplicate, lose or mix spans.

Everything here runs in-process behind tcc's own batching SpanProcessor (the ``captured`` fixture of
``tests/conftest.py``): each span is counted by its tcc id (``tcc.run.id``, ``tcc.step.id``,
``gen_ai.tool.call.id``) and checked for its parent, its trace and its run. Worker exceptions are
collected and asserted empty, every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import logging
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import contextcompany as tcc
from contextcompany._registry import current_step
from tests.conftest import Captured

STEP_ID = "tcc.step.id"
TOOL_CALL_ID = "gen_ai.tool.call.id"
RUN_ID = "tcc.run.id"
CONTEXTCOMPANY_DIR = str(Path(tcc.__file__).parent)


# --- helpers -----------------------------------------------------------------------------------------


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def record_id(span: ReadableSpan) -> str | None:
    """The tcc id of a step or tool call span (None for other spans)."""
    a = attrs(span)
    value = a.get(STEP_ID) or a.get(TOOL_CALL_ID)
    return value if isinstance(value, str) else None


def record_counts(spans: list[ReadableSpan]) -> Counter[str]:
    """How many times each step / tool call id was exported."""
    return Counter(i for i in map(record_id, spans) if i is not None)


def runs_by_id(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        a = attrs(span)
        if a.get("gen_ai.operation.name") == "invoke_agent":
            found.setdefault(str(a[RUN_ID]), []).append(span)
    return found


def span_ids(span: ReadableSpan) -> tuple[int, int, int | None]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id, span.parent.span_id if span.parent else None


class Errors:
    """Exceptions raised in worker threads or tasks, with their tracebacks, for one final assertion."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[str] = []

    def add(self, where: str, exc: BaseException) -> None:
        with self._lock:
            self.items.append(f"{where}: {''.join(traceback.format_exception(exc))}")

    def guard(self, where: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                self.add(where, exc)

        return run


def start_threads(targets: list[tuple[str, Callable[[], None]]], errors: Errors) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=errors.guard(name, fn), name=name, daemon=True) for name, fn in targets
    ]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after {timeout} s (deadlock?): {hung}"


def wait_for_spans(
    captured: Captured, predicate: Callable[[list[ReadableSpan]], bool], timeout: float = 10.0
) -> list[ReadableSpan]:
    """Poll the pipeline (bounded) until ``predicate`` holds; the last snapshot is returned either way,
    so the caller's assertions say what is missing."""
    deadline = time.monotonic() + timeout
    while True:
        spans = captured.spans()
        if predicate(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Make the interpreter switch threads every microsecond, so races get a chance to happen."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def assert_no_drops(captured: Captured) -> None:
    stats = tcc.stats()
    assert stats is not None
    assert stats.spans_dropped == 0 and stats.exports_failed == 0, stats
    assert stats.queue_size == 0, stats
    assert stats.spans_exported == stats.spans_queued, stats
    assert captured.processor.stats() == stats


# --- 5. many threads, each with its own run ----------------------------------------------------------

THREADS = 32
STEPS_PER_THREAD = 1000


@pytest.mark.slow
def test_32_threads_with_1000_steps_each_never_mix_runs(captured: Captured) -> None:
    """32 threads x 1,000 steps, each thread in its own run, half the steps through the current run
    (``tcc.step()``, found through contextvars) and half through ``r.step()``: every step is exported
    exactly once, as the child of its own thread's run, and each run's roll-up counts only its own
    steps (each thread uses its own token count, so a step that leaked into another run would show)."""
    tag = uuid.uuid4().hex[:8]
    errors = Errors()
    barrier = threading.Barrier(THREADS)
    current_mismatches: list[str] = []

    def agent(k: int) -> None:
        barrier.wait(timeout=30)
        with tcc.run(run_id=f"{tag}-thread-{k}") as r:
            r.prompt(f"thread {k}")
            for i in range(STEPS_PER_THREAD):
                step_id = f"{tag}-t{k}-s{i}"
                s = tcc.step(step_id=step_id) if i % 2 else r.step(step_id=step_id)
                s.prompt("p").response("r").model("gpt-4o-mini").tokens(prompt_uncached=k + 1, completion=1)
                s.end()
                if tcc.current_run() is not r:
                    current_mismatches.append(f"thread {k} step {i}: current_run() is {tcc.current_run()!r}")
            r.response("done")

    threads = start_threads([(f"agent-{k}", functools.partial(agent, k)) for k in range(THREADS)], errors)
    join_all(threads, timeout=90)
    assert errors.items == []
    assert current_mismatches == []

    expected_total = THREADS * (STEPS_PER_THREAD + 1)
    spans = [
        s for s in wait_for_spans(captured, lambda sp: len(sp) >= expected_total) if tag in str(attrs(s))
    ]
    runs = runs_by_id(spans)
    assert sorted(runs) == sorted(f"{tag}-thread-{k}" for k in range(THREADS))
    assert all(len(found) == 1 for found in runs.values()), "a run span was exported more than once"

    steps = [s for s in spans if STEP_ID in attrs(s)]
    counts = Counter(attrs(s)[STEP_ID] for s in steps)
    expected_ids = {f"{tag}-t{k}-s{i}" for k in range(THREADS) for i in range(STEPS_PER_THREAD)}
    assert set(counts) == expected_ids, f"missing: {len(expected_ids - set(counts))}"
    assert [sid for sid, n in counts.items() if n != 1] == []
    assert len(spans) == expected_total

    run_ids = {rid: span_ids(found[0]) for rid, found in runs.items()}
    for step in steps:
        a = attrs(step)
        k = int(str(a[STEP_ID]).split("-t", 1)[1].split("-s", 1)[0])
        run_id = f"{tag}-thread-{k}"
        assert a[RUN_ID] == run_id
        trace_id, span_id, _ = run_ids[run_id]
        step_trace, _, step_parent = span_ids(step)
        assert (step_trace, step_parent) == (trace_id, span_id), f"step {a[STEP_ID]} is not under its run"
        assert step.status.status_code is not StatusCode.ERROR
        assert a["gen_ai.usage.input_tokens"] == k + 1

    for k in range(THREADS):
        run = attrs(runs[f"{tag}-thread-{k}"][0])
        assert run["tcc.run.llm_calls"] == STEPS_PER_THREAD
        assert run["tcc.run.usage.input_tokens"] == STEPS_PER_THREAD * (k + 1)
        assert run["tcc.run.usage.output_tokens"] == STEPS_PER_THREAD
    assert_no_drops(captured)


# --- 6. thousands of asyncio tasks, each with its own run --------------------------------------------

TASKS = 2000
STEPS_PER_TASK = 3


def test_2000_asyncio_tasks_never_mix_runs(captured: Captured) -> None:
    """2,000 concurrent tasks, each with its own run, steps through ``tcc.step()``, tool calls made
    inside a step (children of the step) and directly in the run, yielding to the loop between every
    call: each record is exported exactly once, under its own parent, in its own run."""
    tag = uuid.uuid4().hex[:8]
    errors = Errors()
    mismatches: list[str] = []

    async def agent(k: int) -> None:
        try:
            with tcc.run(run_id=f"{tag}-task-{k}") as r:
                r.prompt(f"task {k}")
                await asyncio.sleep(0)
                for j in range(STEPS_PER_TASK):
                    with tcc.step(step_id=f"{tag}-k{k}-s{j}") as s:
                        await asyncio.sleep(0)
                        with tcc.tool_call("lookup", tool_call_id=f"{tag}-k{k}-s{j}-tool") as tc:
                            await asyncio.sleep(0)
                            tc.args({"k": k, "j": j}).result("ok")
                        if current_step() is not s:
                            mismatches.append(f"task {k}: current step is {current_step()!r}")
                        s.prompt("p").response("r").model("gpt-4o-mini").tokens(k + 1, 0, 1)
                    await asyncio.sleep(0)
                    with tcc.tool_call(tool_name="search", tool_call_id=f"{tag}-k{k}-r{j}-tool") as tc:
                        await asyncio.sleep(0)
                        tc.result("found")
                    if tcc.current_run() is not r:
                        mismatches.append(f"task {k}: current run is {tcc.current_run()!r}")
                r.response("done")
        except BaseException as exc:
            errors.add(f"task {k}", exc)

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(agent(k) for k in range(TASKS))), timeout=60)

    asyncio.run(main())
    assert errors.items == []
    assert mismatches == []

    per_task = 1 + STEPS_PER_TASK * 3
    expected_total = TASKS * per_task
    spans = [
        s for s in wait_for_spans(captured, lambda sp: len(sp) >= expected_total) if tag in str(attrs(s))
    ]
    assert len(spans) == expected_total
    runs = runs_by_id(spans)
    assert len(runs) == TASKS and all(len(found) == 1 for found in runs.values())

    ids = record_counts(spans)
    assert [rid for rid, n in ids.items() if n != 1] == []
    assert len(ids) == TASKS * STEPS_PER_TASK * 3
    by_record = {record_id(s): s for s in spans if record_id(s) is not None}

    for k in range(TASKS):
        run_id = f"{tag}-task-{k}"
        run = runs[run_id][0]
        run_trace, run_span, _ = span_ids(run)
        assert attrs(run)["tcc.run.llm_calls"] == STEPS_PER_TASK
        assert attrs(run)["tcc.run.usage.input_tokens"] == STEPS_PER_TASK * (k + 1)
        for j in range(STEPS_PER_TASK):
            step = by_record[f"{tag}-k{k}-s{j}"]
            step_trace, step_span, step_parent = span_ids(step)
            assert (step_trace, step_parent) == (run_trace, run_span)
            assert attrs(step)[RUN_ID] == run_id and attrs(step)["gen_ai.usage.input_tokens"] == k + 1
            in_step = by_record[f"{tag}-k{k}-s{j}-tool"]
            assert span_ids(in_step)[0] == run_trace and span_ids(in_step)[2] == step_span
            assert attrs(in_step)[RUN_ID] == run_id and in_step.name == "execute_tool lookup"
            assert attrs(in_step)["gen_ai.tool.call.arguments"] == f'{{"k":{k},"j":{j}}}'
            in_run = by_record[f"{tag}-k{k}-r{j}-tool"]
            assert span_ids(in_run)[0] == run_trace and span_ids(in_run)[2] == run_span
            assert attrs(in_run)[RUN_ID] == run_id and in_run.name == "execute_tool search"
        for span in (run, *(by_record[f"{tag}-k{k}-s{j}"] for j in range(STEPS_PER_TASK))):
            assert span.status.status_code is not StatusCode.ERROR
    assert_no_drops(captured)


# --- 7. threads sharing one run, one of them ending it -----------------------------------------------


@dataclass
class Made:
    """One step or tool call a worker made on the shared run, and what the worker did with it."""

    record: tcc.Step | tcc.ToolCall | None  # dropped (set to None) before the final check
    ident: str
    run_id: str
    created_ns: int  # when r.step() / r.tool_call() returned
    app_end_ns: int | None = None  # when the worker called end() on it (None: left open)
    app_end_done_ns: int | None = None  # when that end() returned


SHARED_TRIALS = 150
SHARED_WORKERS = 4


@pytest.mark.slow
def test_threads_sharing_a_run_while_another_thread_ends_it(
    captured: Captured, fast_switching: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Several threads add steps and tool calls to one run while another thread ends it, many times
    over with the interpreter switching threads every microsecond. The only exception allowed is the
    documented RuntimeError from ``r.step()`` / ``r.tool_call()`` / ``tcc.step()`` once ``end()`` was
    called; calls on a record tcc already ended are ignored. Afterwards:

    - every record a worker got back is exported exactly once, and the run exactly once;
    - a record the worker ended before ``end()`` was called is a success;
    - a record left open that existed before ``end()`` was called is an error ``tcc.parent_ended``;
    - a record left open whose creation overlapped ``end()`` is still exported once, as an error;
    - every one is in the run's trace, the child of the run span.
    """
    tag = uuid.uuid4().hex[:8]
    errors = Errors()
    made: list[Made] = []
    end_called: dict[str, int] = {}
    caplog.set_level(logging.WARNING, logger="contextcompany")

    for trial in range(SHARED_TRIALS):
        run_id = f"{tag}-shared-{trial}"
        started = threading.Barrier(SHARED_WORKERS + 1)
        ready = threading.Semaphore(0)
        with tcc.run(run_id=run_id) as r:
            r.prompt("q").response("a")
            context = contextvars.copy_context()  # carries the current run into the workers

            def worker(
                k: int,
                *,
                r: tcc.Run = r,
                run_id: str = run_id,
                context: contextvars.Context = context,
                started: threading.Barrier = started,
                ready: threading.Semaphore = ready,
            ) -> None:
                def body() -> None:
                    started.wait(timeout=10)
                    i = 0
                    while True:
                        ident = f"{run_id}-w{k}-{i}"
                        try:
                            if i % 3 == 2:
                                record: tcc.Step | tcc.ToolCall = r.tool_call("lookup", tool_call_id=ident)
                            elif k % 2:
                                record = tcc.step(step_id=ident)
                            else:
                                record = r.step(step_id=ident)
                        except RuntimeError:
                            assert run_id in end_called, "r.step() raised before end() was called"
                            return
                        entry = Made(record, ident, run_id, time.perf_counter_ns())
                        made.append(entry)
                        if isinstance(record, tcc.Step):
                            record.prompt("p").response("x").model("gpt-4o-mini")
                        else:
                            record.args({"i": i}).result("ok")
                        if i % 2 == 0:
                            entry.app_end_ns = time.perf_counter_ns()
                            record.end()  # ignored (with a warning) when tcc ended it first
                            entry.app_end_done_ns = time.perf_counter_ns()
                        if i == 3:
                            ready.release()
                        i += 1

                context.copy().run(body)  # a Context can be entered by one thread at a time

            threads = start_threads(
                [(f"trial-{trial}-worker-{k}", functools.partial(worker, k)) for k in range(SHARED_WORKERS)],
                errors,
            )
            started.wait(timeout=10)
            for _ in range(SHARED_WORKERS):  # every worker is busy making records
                assert ready.acquire(timeout=10)

            def ender(r: tcc.Run = r, run_id: str = run_id) -> None:
                end_called[run_id] = time.perf_counter_ns()
                r.end()

            join_all([*start_threads([(f"trial-{trial}-ender", ender)], errors), *threads], timeout=20)
        # the with block found the run ended by another thread: nothing more to do, nothing raised

    assert errors.items == []
    expected_ids = {m.ident for m in made}
    # Records a worker left open and whose run was already ending when they were made have no run to
    # end them: they end when dropped (garbage collection, or at exit), so drop them now.
    for m in made:
        m.record = None
    gc.collect()
    spans = wait_for_spans(
        captured,
        lambda sp: set(record_counts(sp)) >= expected_ids,
        timeout=5,  # dropped records are ended within about a second
    )
    spans = [s for s in spans if tag in str(attrs(s).get(RUN_ID))]
    runs = runs_by_id(spans)
    assert sorted(runs) == sorted(f"{tag}-shared-{t}" for t in range(SHARED_TRIALS))
    assert all(len(found) == 1 for found in runs.values()), "a run span was exported more than once"
    for found in runs.values():
        assert found[0].status.status_code is not StatusCode.ERROR

    counts = record_counts(spans)
    lost = sorted(expected_ids - set(counts))
    duplicated = sorted(i for i, n in counts.items() if n != 1)
    assert lost == [] and duplicated == [], (
        f"{len(lost)} record(s) never exported (e.g. {lost[:5]}), {len(duplicated)} exported more than "
        f"once (e.g. {duplicated[:5]}), of {len(expected_ids)} made"
    )

    by_id = {record_id(s): s for s in spans if record_id(s) is not None}
    outcomes: Counter[str] = Counter()
    for m in made:
        span = by_id[m.ident]
        a = attrs(span)
        run_trace, run_span, _ = span_ids(runs[m.run_id][0])
        trace_id, _, parent = span_ids(span)
        assert a[RUN_ID] == m.run_id
        assert (trace_id, parent) == (run_trace, run_span), f"{m.ident} is not the run's child"
        end_ns = end_called[m.run_id]
        if m.app_end_done_ns is not None and m.app_end_done_ns < end_ns:
            assert span.status.status_code is not StatusCode.ERROR, f"{m.ident}: {span.status}"
            outcomes["ended by the worker"] += 1
        elif m.app_end_ns is None and m.created_ns < end_ns:
            assert span.status.status_code is StatusCode.ERROR, m.ident
            assert a["error.type"] == "tcc.parent_ended", (m.ident, a.get("error.type"))
            outcomes["left open, ended by the run"] += 1
        elif m.app_end_ns is None:
            assert span.status.status_code is StatusCode.ERROR, m.ident
            assert a["error.type"] in ("tcc.parent_ended", "tcc.abandoned"), (m.ident, a.get("error.type"))
            outcomes["left open, made while the run ended"] += 1
        else:  # the worker's end() overlapped the run's end(): either may win, once
            ok = span.status.status_code is not StatusCode.ERROR
            assert ok or a["error.type"] == "tcc.parent_ended", (m.ident, a.get("error.type"))
            outcomes["end() raced with the run's end()"] += 1
    # the only thing tcc says: calls on records it ended were ignored (no internal error was logged)
    said = {
        rec.getMessage().split(" ignored: ", 1)[-1] for rec in caplog.records if rec.name == "contextcompany"
    }
    assert said <= {
        "tcc already ended this step (the run ended before this step)",
        "tcc already ended this tool call (the run ended before this tool call)",
    }, said
    # the scenario really exercised both sides of the race
    assert outcomes["ended by the worker"] > 0 and outcomes["left open, ended by the run"] > 0, outcomes
    assert_no_drops(captured)


# --- 7b. the same race, made deterministic ------------------------------------------------------------


def _interleavings(make: Callable[[tcc.Run], object]) -> int:
    """How many lines of tcc's own code ``make(run)`` executes: the points where another thread could
    end the run."""
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if not frame.f_code.co_filename.startswith(CONTEXTCOMPANY_DIR):
            return None

        def local(frame: FrameType, event: str, arg: object) -> Any:
            nonlocal count
            if event == "line":
                count += 1
            return local

        return local

    r = tcc.run(run_id=f"probe-{uuid.uuid4().hex}").prompt("q")
    sys.settrace(tracer)
    try:
        make(r)
    finally:
        sys.settrace(None)
    r.end()
    return count


def _end_at_line(r: tcc.Run, make: Callable[[tcc.Run], object], line: int) -> object:
    """``make(r)``, with ``r.end()`` run by another thread just before tcc's ``line``-th line executes."""
    count = 0
    errors = Errors()

    def end_now() -> None:
        sys.settrace(None)
        thread = threading.Thread(target=errors.guard("ender", r.end), daemon=True)
        thread.start()
        thread.join(2)  # were it blocked on a lock this thread holds, it would finish after `make`

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if not frame.f_code.co_filename.startswith(CONTEXTCOMPANY_DIR):
            return None

        def local(frame: FrameType, event: str, arg: object) -> Any:
            nonlocal count
            if event == "line":
                count += 1
                if count == line:
                    end_now()
                    frame.f_trace = None
                    return None
            return local

        return local

    sys.settrace(tracer)
    try:
        return make(r)
    except RuntimeError:
        return None  # the run ended before r.step() checked it: the documented refusal
    finally:
        sys.settrace(None)
        if count < line:  # this time the call ran fewer lines: end the run after it instead
            r.end()
        assert errors.items == []


def _bind(kind: Callable[[tcc.Run, str], tcc.Step | tcc.ToolCall], ident: str) -> Callable[[tcc.Run], object]:
    def make(r: tcc.Run) -> object:
        return kind(r, ident)

    return make


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(lambda r, ident: r.step(step_id=ident), id="r.step"),
        pytest.param(lambda r, ident: r.tool_call("lookup", tool_call_id=ident), id="r.tool_call"),
    ],
)
def test_a_record_made_while_its_run_ends_is_never_lost(
    captured: Captured, kind: Callable[[tcc.Run, str], tcc.Step | tcc.ToolCall]
) -> None:
    """Whatever line of ``r.step()`` / ``r.tool_call()`` another thread's ``r.end()`` lands before, the
    record it returns and the application leaves open is exported exactly once, as an error (ended
    with the run, or when dropped): nothing is left open forever."""
    tag = uuid.uuid4().hex[:8]
    lines = _interleavings(_bind(kind, f"probe-{uuid.uuid4().hex}"))
    assert lines > 10
    expected: dict[str, int] = {}
    for line in range(1, lines + 1):
        run_id = f"{tag}-line-{line}"
        ident = f"{run_id}-record"
        r = tcc.run(run_id=run_id).prompt("q")
        record = _end_at_line(r, _bind(kind, ident), line)
        if record is not None:
            expected[ident] = line  # left open by the application
        del record, r
    assert expected, "no interleaving produced a record"
    gc.collect()
    spans = wait_for_spans(captured, lambda sp: set(record_counts(sp)) >= set(expected), 5)
    counts = Counter({i: n for i, n in record_counts(spans).items() if tag in i})
    lost = sorted(expected[i] for i in expected if counts[i] == 0)
    assert lost == [], f"records never exported when the run ended before line(s) {lost} of tcc's code"
    assert [i for i, n in counts.items() if n != 1] == []
    for span in spans:
        if record_id(span) in expected:
            assert span.status.status_code is StatusCode.ERROR
            assert attrs(span)["error.type"] in ("tcc.parent_ended", "tcc.abandoned")
