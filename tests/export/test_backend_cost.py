"""BackendCost: tcc's price where MLflow reads it, when TCC_COST_BACKENDS names mlflow (issue 9, item 7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from opentelemetry.sdk.trace import ReadableSpan

from contextcompany import _settings
from contextcompany._export._stages import BackendCost, Edit, Pricing
from contextcompany._pricing import PriceBook


@pytest.fixture
def mlflow_named() -> Iterator[None]:
    before = _settings.settings.cost_backends
    _settings.settings.cost_backends = frozenset({"mlflow"})
    try:
        yield
    finally:
        _settings.settings.cost_backends = before


def priced(attributes: dict[str, Any]) -> Edit:
    edit = Edit(ReadableSpan(name="chat", attributes=attributes, end_time=1_700_000_000_000_000_000))
    prices = PriceBook()
    Pricing(prices)(edit)
    BackendCost(prices)(edit)
    return edit


CLAUDE = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "claude-sonnet-4-5",
    "gen_ai.usage.input_tokens": 1500,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_write.input_tokens": 400,
    "gen_ai.usage.output_tokens": 300,
}


@pytest.mark.usefixtures("mlflow_named")
def test_a_computed_cost_is_written_with_its_split() -> None:
    edit = priced(dict(CLAUDE))
    value = json.loads(edit.attributes["mlflow.llm.cost"])
    expected = calc_price(
        Usage(input_tokens=1500, cache_read_tokens=1000, cache_write_tokens=400, output_tokens=300),
        "claude-sonnet-4-5",
    )
    assert value["total_cost"] == pytest.approx(float(expected.total_price), rel=1e-9)
    assert value["output_cost"] == pytest.approx(float(expected.output_price), rel=1e-9)
    assert value["input_cost"] == pytest.approx(float(expected.input_price), rel=1e-9)


@pytest.mark.usefixtures("mlflow_named")
def test_a_reported_cost_is_written_and_split_by_the_models_prices() -> None:
    edit = priced({**CLAUDE, "tcc.cost.usd": 0.01})
    value = json.loads(edit.attributes["mlflow.llm.cost"])
    assert value["total_cost"] == 0.01
    assert value["input_cost"] + value["output_cost"] == pytest.approx(0.01, rel=1e-9)


@pytest.mark.usefixtures("mlflow_named")
def test_a_reported_cost_for_a_model_without_a_price_has_only_its_total() -> None:
    edit = priced(
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "house-model-1", "tcc.cost.usd": 0.0035}
    )
    assert json.loads(edit.attributes["mlflow.llm.cost"]) == {"total_cost": 0.0035}


@pytest.mark.usefixtures("mlflow_named")
def test_runs_unpriced_calls_and_spans_that_have_one_are_left_alone() -> None:
    run = priced({"gen_ai.operation.name": "invoke_agent", "tcc.cost.usd": 1.0})
    unpriced = priced(
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "x-unknown", "gen_ai.usage.input_tokens": 5}
    )
    theirs = priced({**CLAUDE, "mlflow.llm.cost": '{"total_cost": 9}'})
    assert "mlflow.llm.cost" not in run.attributes and "mlflow.llm.cost" not in unpriced.attributes
    assert theirs.attributes["mlflow.llm.cost"] == '{"total_cost": 9}'


def test_nothing_is_written_unless_mlflow_is_named() -> None:
    assert "mlflow" not in _settings.settings.cost_backends
    assert "mlflow.llm.cost" not in priced(dict(CLAUDE)).attributes


def test_the_setting_from_the_environment_and_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCC_COST_BACKENDS", " MLflow ")
    assert _settings.COST_BACKENDS.get() == frozenset({"mlflow"})
    monkeypatch.setenv("TCC_COST_BACKENDS", "mlflow,langfuse")
    assert _settings.COST_BACKENDS.get() == frozenset()  # one warning, the default
    with pytest.raises(ValueError, match=r"configure\(cost_backends=...\)"):
        _settings.configure(cost_backends=["phoenix"])
    with pytest.raises(TypeError, match=r"configure\(cost_backends=...\)"):
        _settings.configure(cost_backends="mlflow")
    before = _settings.settings.cost_backends
    try:
        _settings.configure(cost_backends=["mlflow"])
        assert _settings.settings.cost_backends == frozenset({"mlflow"})
    finally:
        _settings.settings.cost_backends = before
