"""_registry: which runs this process knows, and the context a child of a run id starts in."""

from __future__ import annotations

import pytest
from opentelemetry import trace

import contextcompany as tcc
from contextcompany import _ids, _registry

from .conftest import Captured


def _parent(context: object) -> trace.SpanContext:
    return trace.get_current_span(context).get_span_context()  # type: ignore[arg-type]


def test_a_live_run_is_known_and_parents_its_children(captured: Captured) -> None:
    r = tcc.run()
    assert _registry.known_run(r.run_id) and _registry.live_runs[r.run_id] is r
    owner, context = _registry.parent_for(r.run_id)
    assert owner is r and context is r._context
    r.prompt("q").end()
    assert r.run_id not in _registry.live_runs


def test_a_run_that_ended_here_is_remembered(captured: Captured) -> None:
    r = tcc.run()
    span_context = r._handle.span().get_span_context()
    r.prompt("q").end()
    assert _registry.known_run(r.run_id)
    owner, context = _registry.parent_for(r.run_id)
    assert owner is None and _parent(context) == span_context


def test_a_run_of_another_process_is_derived_from_its_id(captured: Captured) -> None:
    assert not _registry.known_run("elsewhere")
    assert _parent(_registry.run_context("elsewhere")) == _ids.run_span_context("elsewhere")


def test_recent_runs_are_bounded(captured: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "RECENT_RUNS_MAX", 3)
    ids = [tcc.run().prompt("q") for _ in range(5)]
    for r in ids:
        r.end()
    assert [_registry.known_run(r.run_id) for r in ids] == [False, False, True, True, True]


def test_current_run_and_step_follow_with_blocks(captured: Captured) -> None:
    assert _registry.current_run() is None and _registry.current_step() is None
    with tcc.run() as r:
        r.prompt("q")
        with r.step() as s:
            assert _registry.current_run() is r and _registry.current_step() is s
            s.prompt("p").response("a")
        assert _registry.current_step() is None
    assert _registry.current_run() is None
