"""s.first_chunk(): a streamed call and its time to first chunk on the step (issue 9, item 6)."""

from __future__ import annotations

import time

import pytest

import contextcompany as tcc

from .conftest import Captured


def _step(captured: Captured) -> dict[str, object]:
    steps = [s for s in captured.spans() if (s.attributes or {}).get("tcc.step.id")]
    assert len(steps) == 1
    return dict(steps[0].attributes or {})


def test_the_first_chunk_marks_the_step_streamed_with_its_delay(captured: Captured) -> None:
    r = tcc.run()
    s = r.step(start_time=time.time_ns())
    time.sleep(0.05)
    for _ in range(3):  # inside the loop over chunks: only the first call counts
        s.first_chunk()
        time.sleep(0.01)
    s.prompt("p").response("r").model("gpt-4o").end()
    r.prompt("q").end()
    a = _step(captured)
    assert a["gen_ai.request.stream"] is True
    first = a["gen_ai.response.time_to_first_chunk"]
    assert isinstance(first, float) and 0.05 <= first < 0.5  # not the last chunk's 0.07+


def test_a_given_time_is_measured_from_the_step_start(captured: Captured) -> None:
    start = 1_767_225_600_000_000_000
    r = tcc.run()
    s = r.step(start_time=start).first_chunk(at=start + 250_000_000)
    s.prompt("p").response("r").end()
    r.prompt("q").end()
    assert _step(captured)["gen_ai.response.time_to_first_chunk"] == pytest.approx(0.25)


def test_a_step_that_did_not_stream_says_nothing_of_it(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").end()
    r.prompt("q").end()
    a = _step(captured)
    assert "gen_ai.request.stream" not in a and "gen_ai.response.time_to_first_chunk" not in a


def test_a_first_chunk_before_the_start_is_refused(captured: Captured) -> None:
    s = tcc.run().step(start_time=2_000_000_000_000_000_000)
    with pytest.raises(ValueError, match=r"s\.first_chunk\(at=\.\.\.\)"):
        s.first_chunk(at=1_000_000_000_000_000_000)
    with pytest.raises(TypeError, match=r"s\.first_chunk\(at=\.\.\.\)"):
        s.first_chunk(at="soon")
