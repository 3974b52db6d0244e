"""The seed scenario's run carries the sum of its steps' costs, a given cost included (issue 9, item 3)."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price

from tests.conftest import Captured
from tests.interop.seed import (
    CACHE_MODEL,
    CACHE_TOKENS,
    GIVEN_COST,
    SEED_MODEL_USED,
    SEED_TOKENS,
    seed_scenario,
)


def test_the_run_carries_the_sum_of_its_steps_costs(captured: Captured) -> None:
    run_id = seed_scenario()
    spans = captured.spans()
    steps = [s for s in spans if (s.attributes or {}).get("tcc.step.id") is not None]
    run = next(s for s in spans if (s.attributes or {}).get("tcc.run.id") == run_id and s.parent is None)
    step_costs = [s.attributes["tcc.cost.usd"] for s in steps if "tcc.cost.usd" in (s.attributes or {})]

    tokens = SEED_TOKENS
    priced = calc_price(
        Usage(
            input_tokens=tokens["prompt_uncached"] + tokens["prompt_cached"],
            cache_read_tokens=tokens["prompt_cached"],
            output_tokens=tokens["completion"],
        ),
        SEED_MODEL_USED,
    )
    t = CACHE_TOKENS
    cached = calc_price(
        Usage(
            input_tokens=t["prompt_uncached"] + t["prompt_cached"] + t["cache_write"],
            cache_read_tokens=t["prompt_cached"],
            cache_write_tokens=t["cache_write"],
            output_tokens=t["completion"],
        ),
        CACHE_MODEL,
    )
    expected = [float(priced.total_price), GIVEN_COST, float(cached.total_price)]
    assert sorted(step_costs) == pytest.approx(sorted(expected), rel=1e-9)
    a = run.attributes or {}
    assert a["tcc.run.cost.usd"] == pytest.approx(sum(step_costs), rel=1e-9)
    # the failed step reports no usage and no cost; the other three steps are three calls
    assert a["tcc.run.llm_calls"] == 3
    assert a["tcc.run.unpriced_llm_calls"] == 0
