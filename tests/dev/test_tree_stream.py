"""The dev tree shows a streamed call and its time to first chunk (issue 9, item 6)."""

from __future__ import annotations

from contextcompany import _semconv as sc
from tests.dev.test_tree import Pipeline, end, pipe  # noqa: F401 - the fixture

RUN = {sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.RUN_ID: "run-stream", sc.AGENT_NAME: "streamer"}


def _tree(p: Pipeline, step_attributes: dict[str, object]) -> str:
    run = p.span("invoke_agent streamer", RUN, start_ms=0)
    step = p.span(
        "chat claude-sonnet-4-5",
        {sc.OPERATION_NAME: sc.OP_CHAT, sc.REQUEST_MODEL: "claude-sonnet-4-5", **step_attributes},
        parent=run,
        start_ms=1,
    )
    end(step, 500)
    end(run, 600)
    return p.text()


def test_a_streamed_step_shows_its_time_to_first_chunk(pipe: Pipeline) -> None:  # noqa: F811
    text = _tree(pipe, {sc.REQUEST_STREAM: True, sc.RESPONSE_TIME_TO_FIRST_CHUNK: 0.105})
    assert "streamed, first chunk 105.0 ms" in text, text


def test_a_streamed_step_without_the_time_says_streamed(pipe: Pipeline) -> None:  # noqa: F811
    text = _tree(pipe, {sc.REQUEST_STREAM: True})
    assert "streamed" in text and "first chunk" not in text, text


def test_a_whole_answer_says_nothing_of_streaming(pipe: Pipeline) -> None:  # noqa: F811
    assert "streamed" not in _tree(pipe, {sc.REQUEST_STREAM: False})
