"""gen_ai.provider.name on every LLM span: given with s.model(provider=) or send_step(provider=), else
inferred from the model on the export worker (issue 9, item 4)."""

from __future__ import annotations

import pytest

import contextcompany as tcc

from .conftest import Captured


def _step(captured: Captured) -> dict[str, object]:
    steps = [s for s in captured.spans() if (s.attributes or {}).get("tcc.step.id")]
    assert len(steps) == 1
    return dict(steps[0].attributes or {})


def test_a_given_provider_is_written(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").model("llama-3.1-70b", provider="groq").end()
    r.prompt("q").end()
    assert _step(captured)["gen_ai.provider.name"] == "groq"


def test_a_missing_provider_is_inferred_from_the_model(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").model("claude-sonnet-4-5").tokens(10, 0, 5).end()
    r.prompt("q").end()
    assert _step(captured)["gen_ai.provider.name"] == "anthropic"


def test_a_provider_that_cannot_be_told_stays_unset(captured: Captured) -> None:
    r = tcc.run()
    r.step().prompt("p").response("r").model("llama-3.1-70b").tokens(10, 0, 5).end()
    r.prompt("q").end()
    assert "gen_ai.provider.name" not in _step(captured)


def test_send_step_takes_the_provider(captured: Captured) -> None:
    r = tcc.run()
    tcc.send_step(run_id=r.run_id, prompt="p", response="r", model="my-model", provider="openai")
    r.prompt("q").end()
    assert _step(captured)["gen_ai.provider.name"] == "openai"


def test_a_bad_provider_is_refused_at_the_call(captured: Captured) -> None:
    s = tcc.run().step()
    with pytest.raises(TypeError, match=r"s\.model\(provider=\.\.\.\)"):
        s.model("gpt-4o", provider=42)  # type: ignore[arg-type]
