"""Nothing is left open: runs end their children, time out, and are ended when dropped."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import contextcompany as tcc
from contextcompany import _pipeline, _settings

from .conftest import Captured


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def wait_for(
    captured: Captured, predicate: Callable[[list[ReadableSpan]], bool], timeout: float = 5.0
) -> list[ReadableSpan]:
    deadline = time.monotonic() + timeout
    while True:
        spans = captured.spans()
        if predicate(spans):
            return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met; spans: {[s.name for s in spans]}")
        time.sleep(0.05)


def test_run_end_ends_open_steps_and_tool_calls_first(captured: Captured) -> None:
    r = tcc.run()
    open_step = r.step().prompt("p")
    open_step.tool_call("lookup")
    r.tool_call("search")
    done = r.step().prompt("p").response("r")
    done.end()
    r.prompt("q").end()
    names = [s.name for s in captured.spans()]
    assert names == ["chat", "execute_tool search", "execute_tool lookup", "chat", "invoke_agent"]
    for span in captured.spans()[1:4]:
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is not None and span.status.description.startswith(
            "the run ended before"
        )
        assert attrs(span)["error.type"] == "tcc.parent_ended"
    assert captured.one("invoke_agent").status.status_code is StatusCode.UNSET
    # the application did nothing wrong: later calls on what tcc ended are ignored, not raised
    open_step.response("late").end()
    assert len(captured.spans()) == 5


def test_run_error_ends_open_children_too(captured: Captured) -> None:
    r = tcc.run()
    r.step()
    r.error("crashed")
    step, run = captured.spans()
    assert step.status.description == "the run ended before this step"
    assert run.status.description == "crashed"


def test_run_times_out(captured: Captured, caplog: pytest.LogCaptureFixture) -> None:
    r = tcc.run(timeout=0.2)
    r.prompt("q")
    r.step().prompt("p")
    spans = wait_for(captured, lambda spans: any(s.name == "invoke_agent" for s in spans))
    step, run = spans
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "run timed out after 0.2 s without end() or error()"
    assert attrs(run)["error.type"] == "tcc.timeout"
    assert step.status.description == "the run ended before this step"
    with caplog.at_level(logging.WARNING, logger="contextcompany"):
        r.response("finally").end()  # ignored, with one warning
        r.metadata(a="b")
    assert len([rec for rec in caplog.records if "already ended this run" in rec.getMessage()]) == 1
    late = r.step().prompt("late").response("still recorded")
    late.end()
    late_span = captured.spans()[-1]
    assert late_span.parent is not None and late_span.parent.span_id == run.context.span_id


def test_zero_timeout_disables_it_and_the_default_is_twenty_minutes(captured: Captured) -> None:
    r = tcc.run(timeout=0)
    default = tcc.run()
    assert default._timeout == 1200.0
    time.sleep(0.3)
    assert not any(s.name == "invoke_agent" for s in captured.spans())
    r.prompt("q").end()
    default.prompt("q").end()


def test_configured_default_timeout(captured: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_settings.settings, "run_timeout", 0.1)
    r = tcc.run().prompt("q")
    spans = wait_for(captured, lambda spans: len(spans) == 1)
    assert attrs(spans[0])["error.type"] == "tcc.timeout"
    assert r._ended


def test_dropped_run_is_ended_with_its_children(captured: Captured) -> None:
    def forget() -> str:
        r = tcc.run(run_id="dropped")
        r.prompt("q")
        r.step().prompt("p")
        return r.run_id

    forget()
    gc.collect()
    spans = wait_for(captured, lambda spans: len(spans) == 2)
    step, run = spans
    assert run.status.description == "run was garbage-collected without end() or error()"
    assert attrs(run)["error.type"] == "tcc.abandoned"
    assert step.status.status_code is StatusCode.ERROR


def test_dropped_step_of_a_run_elsewhere_is_ended(captured: Captured) -> None:
    tcc.step(run_id="run-in-another-process").prompt("p")
    gc.collect()
    (span,) = wait_for(captured, lambda spans: len(spans) == 1)
    assert span.status.description == "step was garbage-collected without end() or error()"


def test_records_open_at_exit_are_ended(captured: Captured) -> None:
    from contextcompany import _lifetimes

    r = tcc.run()
    r.step()
    orphan = tcc.tool_call(run_id="elsewhere", tool_name="t")
    _lifetimes.end_everything_open()
    spans = captured.spans()
    assert {s.name for s in spans} == {"chat", "invoke_agent", "execute_tool t"}
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    assert attrs(captured.one("invoke_agent"))["error.type"] == "tcc.process_exit"
    assert attrs(captured.one("execute_tool t"))["error.type"] == "tcc.process_exit"
    assert r._ended and orphan._ended


def test_disabled_or_unsampled_records_start_no_lifetime_machinery(monkeypatch: pytest.MonkeyPatch) -> None:
    from contextcompany import _registry

    previous = _pipeline.install(_pipeline.Pipeline(tracer=_pipeline.trace.NoOpTracer()))
    try:
        r = tcc.run()
        r.step()
        assert r.run_id not in _registry.live_runs
        assert r._finalizer is None and r._deadline is None
    finally:
        _pipeline.install(previous)
