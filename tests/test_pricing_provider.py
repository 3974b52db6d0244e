"""PriceBook.provider_of: the provider genai-prices' provider match gives a model (issue 9, item 4)."""

from __future__ import annotations

import pytest

from contextcompany._pricing import PriceBook


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("gpt-4-0613", "openai"),
        ("claude-sonnet-4-5-20250929", "anthropic"),
        ("gemini-2.5-pro", "gcp.gen_ai"),  # genai-prices says "google"; the convention's generic value
        ("grok-4", "x_ai"),
        ("mistral-large-latest", "mistral_ai"),
        ("deepseek-chat", "deepseek"),
    ],
)
def test_a_model_one_provider_claims_names_that_provider(model: str, provider: str) -> None:
    assert PriceBook().provider_of(model) == provider


@pytest.mark.parametrize("model", ["llama-3.1-70b", "house-model-1", "", "x" * 5000])
def test_a_model_no_provider_claims_names_none(model: str) -> None:
    # llama is served by many providers and claimed by none: the provider cannot be told
    assert PriceBook().provider_of(model) is None


def test_it_never_raises_on_garbage() -> None:
    book = PriceBook()
    assert book.provider_of(None) is None  # type: ignore[arg-type]
    assert book.provider_of(42) is None  # type: ignore[arg-type]


def test_answers_are_kept_and_bounded() -> None:
    book = PriceBook()
    for i in range(5000):
        book.provider_of(f"unknown-model-{i}")
    assert book.provider_of("gpt-4o") == "openai"
    assert book._state is not None and len(book._state.providers) <= 4096
