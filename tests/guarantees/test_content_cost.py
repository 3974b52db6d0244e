"""The caller's cost does not grow with content: a long prompt or response is written out, masked and cut
on the export worker, and arrives exactly as it would have from the caller's thread.

Long content is finished on the worker only when a tcc span processor alone sees the span; with another
processor on the provider (which must never see it unfinished) it is finished on the caller's thread, as
before. The same records made in both kinds of pipeline must arrive with the same attributes.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import contextcompany as tcc
from contextcompany import _pipeline
from contextcompany._ids import OwnRandomIds, RunIdGenerator
from tests.conftest import Captured

LONG: Final = 1_000_000


def _make_pipeline(extra: bool) -> tuple[_pipeline.Pipeline, InMemorySpanExporter, tcc.SpanProcessor]:
    exporter = InMemorySpanExporter()
    processor = tcc.SpanProcessor(exporter, schedule_delay_millis=50, max_queue_size=100_000)
    provider = TracerProvider(shutdown_on_exit=False, id_generator=RunIdGenerator(OwnRandomIds()))
    provider.add_span_processor(processor)
    if extra:  # another processor sees every span: long content must be finished before it does
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    pipeline = _pipeline.Pipeline(
        tracer=provider.get_tracer("contextcompany"),
        provider=provider,
        processor=processor,
        owned=True,
        alone=None if extra else processor,  # alone, it also starts the steps' spans on its worker
    )
    return pipeline, exporter, processor


def _count_deferred(processor: tcc.SpanProcessor, sizes: list[int], ways: set[str] | None = None) -> None:
    """Note the size of each piece of content the processor's worker is to finish, and (in ``ways``) how
    it got there: content of a span the caller started (``defer``), or of a record whose span the worker
    starts (``hand``)."""
    defer, hand = processor.defer, processor.hand
    noted = ways if ways is not None else set()

    def deferring(span: Any, pending: Any) -> None:
        sizes.append(pending.size)
        noted.add("defer")
        defer(span, pending)

    def handing(job: Any) -> None:
        if job.content is not None:
            sizes.append(job.content.size)
            noted.add("hand")
        hand(job)

    processor.defer = deferring  # type: ignore[method-assign]
    processor.hand = handing  # type: ignore[method-assign]


def _record(case: Callable[[], None], extra: bool) -> list[ReadableSpan]:
    pipeline, exporter, processor = _make_pipeline(extra)
    deferred: list[int] = []
    ways: set[str] = set()
    _count_deferred(processor, deferred, ways)
    previous = _pipeline.install(pipeline)
    try:
        case()
        assert processor.force_flush(30_000)
        # Finished on the worker only where no other processor sees the spans (and capture is on): the
        # steps' content with the records the worker starts, the runs' and tool calls' (whose spans start
        # on the caller's thread) by itself.
        expected = {"defer", "hand"} if not extra and case is not _capture_off else set()
        assert ways == expected, (case.__name__, extra, ways)
        return list(exporter.get_finished_spans())
    finally:
        _pipeline.install(previous)
        assert pipeline.provider is not None
        pipeline.provider.shutdown()  # type: ignore[attr-defined]


_IDS: Final = ("tcc.run.id", "tcc.step.id", "gen_ai.tool.call.id")


def _comparable(spans: list[ReadableSpan]) -> list[tuple[str, dict[str, Any], Any]]:
    rows = []
    for span in spans:
        attributes = {k: v for k, v in (span.attributes or {}).items() if k not in _IDS}
        rows.append((span.name, attributes, (span.status.status_code, span.status.description)))
    return sorted(rows, key=lambda row: (row[0], sorted(row[1])))


def _long_text(chars: int, tail: str = "") -> str:
    return ('The quick brown fox, "quoted"\nand a newline. ' * (chars // 44 + 1))[:chars] + tail


def _steps_and_runs() -> None:
    r = tcc.run(name="long")
    r.prompt(_long_text(LONG, "é\ud800 end"), system_prompt="short").response(_long_text(LONG + 7))
    r.step().prompt("p").response("a").end()  # short: finished on the caller's thread in both
    r.step().prompt(_long_text(LONG, "\U0001f600")).response("short answer").model("gpt-4o").end()
    r.step().prompt("short prompt").response(_long_text(3 * LONG)).finish_reason("length").end()
    r.step().prompt(_long_text(20_000)).response(_long_text(20_000)).end()  # over the worker's threshold only
    r.tool_call("search").args(_long_text(LONG, "\udfff")).result({"hits": [_long_text(LONG), "short"]}).end()
    r.tool_call("fetch").args({"url": "https://example.com"}).result(_long_text(2 * LONG)).end()
    r.prompt("q", system_prompt=_long_text(LONG), full_input=_long_text(LONG))
    r.response("a", full_output={"answer": _long_text(LONG)}).end()


def _masked() -> None:
    tcc.configure(mask=lambda text: text.replace("fox", "[animal]"))
    try:
        _steps_and_runs()
    finally:
        tcc.configure(mask=None)


def _failing_mask() -> None:
    def mask(text: str) -> str:
        if len(text) > 100_000:
            raise RuntimeError("mask failed")
        return text

    tcc.configure(mask=mask)
    try:
        _steps_and_runs()
    finally:
        tcc.configure(mask=None)


def _capture_off() -> None:
    tcc.configure(capture_content=False)
    try:
        _steps_and_runs()
    finally:
        tcc.configure(capture_content=True)


CASES: Final = {
    "plain": _steps_and_runs,
    "mask": _masked,
    "failing-mask": _failing_mask,
    "capture-off": _capture_off,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_long_content_arrives_as_if_finished_on_the_callers_thread(case: str) -> None:
    """Prompts, responses, system prompts, full input and output, tool arguments and results of 20 KB to
    3 MB (escapes, non-ASCII, lone surrogates, long texts inside JSON) with no mask, a mask, a mask that
    fails and capture off: the spans finished on the worker equal those finished on the
    caller's thread, attribute for attribute."""
    on_worker = _record(CASES[case], extra=False)
    on_caller = _record(CASES[case], extra=True)
    assert len(on_worker) == len(on_caller) == 7
    assert _comparable(on_worker) == _comparable(on_caller)
    if case in ("plain", "mask"):
        cut = [s for s in on_worker if any(k.startswith("tcc.truncated.") for k in s.attributes or {})]
        assert len(cut) == 5, "the long texts were cut to the limit"


def _end_cost(run: tcc.Run, prompt: str) -> tuple[float, float, float]:
    """This thread's CPU for the setters, and for end(), and the wall-clock time of end(), of one step
    with ``prompt``, in ms."""
    started = time.thread_time_ns()
    s = run.step().prompt(prompt).response("answer").model("gpt-4o").tokens(10, 0, 5)
    set_up, wall = time.thread_time_ns(), time.perf_counter_ns()
    s.end()
    ended, wall_ended = time.thread_time_ns(), time.perf_counter_ns()
    return (set_up - started) / 1e6, (ended - set_up) / 1e6, (wall_ended - wall) / 1e6


ROUNDS: Final = 7


def test_a_long_prompt_costs_the_caller_what_a_short_one_does(captured: Captured) -> None:
    """The caller's CPU for a step's setters and for its end(), and end()'s wall-clock time, with a 1 MB
    and a 10 MB prompt, against a short prompt: at most 3x plus 0.5 ms of CPU, 3x plus 2 ms of wall time
    (medians over rounds, the worker idle before each). Finishing 1 MB on the caller's thread costs
    several milliseconds, 10 MB tens of milliseconds; an end() that waits for anything fails too."""
    texts = {"short": "What is the weather in London?", "1 MB": "x" * 1_000_000, "10 MB": "x" * 10_000_000}
    r = tcc.run()
    r.prompt("q")
    costs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in texts}
    for _ in range(ROUNDS):
        for name, text in texts.items():
            assert tcc.flush(30_000)
            for _ in range(3):  # warm, unmeasured
                _end_cost(r, texts["short"])
            costs[name].append(_end_cost(r, text))
    r.end()
    assert tcc.flush(30_000)
    medians = {
        name: [statistics.median(c[i] for c in rounds) for i in range(3)] for name, rounds in costs.items()
    }
    print(
        "\nsetters / end() CPU / end() wall, ms: "
        + ", ".join(f"{n} {s:.3f} / {e:.3f} / {w:.3f}" for n, (s, e, w) in medians.items())
    )
    short_setters, short_end, short_wall = medians["short"]
    for name in ("1 MB", "10 MB"):
        setters, end, wall = medians[name]
        assert end <= 3 * short_end + 0.5, (
            f"end() with a {name} prompt: {end:.3f} ms, short {short_end:.3f} ms"
        )
        assert wall <= 3 * short_wall + 2, (
            f"end() with a {name} prompt took {wall:.3f} ms, short {short_wall:.3f}"
        )
        assert setters <= 3 * short_setters + 0.5, (
            f"the setters with a {name} prompt: {setters:.3f} ms, short {short_setters:.3f} ms"
        )
    long_steps = [
        s for s in captured.spans() if len((s.attributes or {}).get("gen_ai.input.messages", "")) > 100
    ]
    assert len(long_steps) == 2 * ROUNDS
    assert all(s.attributes["tcc.truncated.gen_ai.input.messages"] > 1_000_000 for s in long_steps)  # type: ignore[index]


class _Held(InMemorySpanExporter):
    """An exporter whose first export waits until released: the collector is slow."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def export(self, spans: Any) -> Any:
        self.release.wait(30)
        return super().export(spans)


@pytest.mark.parametrize("alone", [True, False], ids=["worker-starts-steps", "caller-starts-steps"])
def test_long_content_held_for_a_stuck_worker_is_bounded(alone: bool) -> None:
    """While exports are stuck, the long content waiting for the worker stays under 32 Mi characters: past
    that, steps finish theirs on the caller's thread. Every step arrives, cut as documented; the count
    of what the worker holds returns to zero once it is all sent. Both for steps whose span the worker
    starts (tcc's processor alone on tcc's provider) and steps the caller started."""
    exporter = _Held()
    processor = tcc.SpanProcessor(exporter, schedule_delay_millis=50, max_queue_size=10_000)
    provider = TracerProvider(shutdown_on_exit=False, id_generator=RunIdGenerator(OwnRandomIds()))
    provider.add_span_processor(processor)
    deferred: list[int] = []
    _count_deferred(processor, deferred)
    pipeline = _pipeline.Pipeline(
        tracer=provider.get_tracer("contextcompany"),
        provider=provider,
        processor=processor,
        owned=True,
        alone=processor if alone else None,
    )
    previous = _pipeline.install(pipeline)
    try:
        r = tcc.run()
        r.prompt("q")
        r.step().prompt("p").response("a").end()
        time.sleep(0.2)  # the worker is stuck in its first export
        for i in range(60):
            r.step().prompt(f"{i} " + "x" * 1_000_000).response("a").end()
        r.end()
        held = sum(deferred)
        exporter.release.set()
        assert processor.force_flush(60_000)
        assert not processor.can_defer(32 * 1024 * 1024 + 1)
        assert processor.can_defer(32 * 1024 * 1024), "all the content held was released once sent"
    finally:
        _pipeline.install(previous)
        provider.shutdown()
    assert 0 < held <= 32 * 1024 * 1024, held
    assert len(deferred) < 60, "past the bound, the caller finished the content"
    steps = [
        s
        for s in exporter.get_finished_spans()
        if len((s.attributes or {}).get("gen_ai.input.messages", "")) > 100
    ]
    assert len(steps) == 60
    assert all((s.attributes or {})["tcc.truncated.gen_ai.input.messages"] > 1_000_000 for s in steps)
