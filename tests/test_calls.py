"""The counting rule: one provider call counts once, however many spans describe it (contextcompany/_calls.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from contextcompany._calls import Call, Calls, outermost
from contextcompany._usage import Usage

SDK = Usage(input=1600, cache_read=1000, cache_write=400, output=300)


def test_a_step_around_an_instrumented_call_is_one_call_with_the_steps_numbers() -> None:
    # the instrumentation's span ends first, beneath the step
    below = Calls.of(Call(SDK, 0.0069, frozenset({"msg_1"})))
    step = Call(Usage(input=1600, cache_read=1000, cache_write=400, output=299), 0.0068)
    t = outermost(step, below).totals()
    assert (t.llm_calls, t.usage.output, t.cost_usd) == (1, 299, 0.0068)


def test_a_step_that_gives_only_a_cost_takes_the_tokens_from_beneath() -> None:
    below = Calls.of(Call(SDK, 0.0069, frozenset({"msg_1"})))
    t = outermost(Call(None, 0.0035), below).totals()
    assert (t.llm_calls, t.usage, t.cost_usd, t.unpriced_llm_calls) == (1, SDK, 0.0035, 0)


def test_an_unpriced_step_takes_the_price_from_beneath() -> None:
    below = Calls.of(Call(SDK, 0.0069, frozenset({"msg_1"})))
    t = outermost(Call(SDK, None), below).totals()
    assert (t.llm_calls, t.cost_usd, t.unpriced_llm_calls) == (1, 0.0069, 0)


def test_side_by_side_spans_with_one_response_id_are_one_call_the_first_wins() -> None:
    run = Calls()
    run.add(Calls.of(Call(Usage(input=1600, output=300), 0.0069, frozenset({"msg_1"}))))  # SDK's, ends first
    run.add(Calls.of(Call(Usage(input=1600, output=301), 0.00691, frozenset({"msg_1"}))))  # Traceloop's
    t = run.totals()
    assert (t.llm_calls, t.usage.output, t.cost_usd) == (1, 300, 0.0069)


def test_a_nested_pair_and_a_sibling_with_the_same_id_are_one_call() -> None:
    # genai-anthropic's span around the SDK's; a third description beside them with the same id
    nested = outermost(
        Call(SDK, 0.0069, frozenset({"msg_1"})), Calls.of(Call(SDK, 0.0069, frozenset({"msg_1"})))
    )
    run = Calls()
    run.add(nested)
    run.add(Calls.of(Call(SDK, 0.0069, frozenset({"msg_1"}))))
    assert run.totals().llm_calls == 1


def test_distinct_calls_add_up() -> None:
    run = Calls()
    for i in range(3):
        run.add(Calls.of(Call(SDK, 0.0069, frozenset({f"msg_{i}"}))))
    run.add(Calls.of(Call(Usage(input=10, output=5), None)))  # a step without a response id, unpriced
    t = run.totals()
    assert (t.llm_calls, t.unpriced_llm_calls) == (4, 1)
    assert t.usage.input == 3 * 1600 + 10
    assert t.cost_usd == 3 * 0.0069


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1000)), max_size=30))
def test_the_count_is_the_number_of_distinct_response_ids(calls: list[tuple[int, int]]) -> None:
    run = Calls()
    for ident, tokens in calls:
        run.add(Calls.of(Call(Usage(input=tokens), 1.0, frozenset({f"r{ident}"}))))
    assert run.totals().llm_calls == len({ident for ident, _ in calls})


def test_a_run_nested_in_a_step_keeps_its_own_calls() -> None:
    from contextcompany._calls import beside

    inner_run = beside(None, Calls.of(Call(SDK, 0.0069, frozenset({"msg_1"}))))
    step = outermost(Call(Usage(input=2, output=2), 0.001), inner_run)
    t = step.totals()
    assert (t.llm_calls, t.usage.input) == (2, 1602)


def test_an_agent_spans_own_usage_is_one_call_more() -> None:
    from contextcompany._calls import beside

    agent = beside(Call(Usage(input=7, output=3), None), Calls.of(Call(Usage(input=100, output=10), 0.1)))
    assert agent is not None
    t = agent.totals()
    assert (t.llm_calls, t.usage.input, t.unpriced_llm_calls) == (2, 107, 1)
