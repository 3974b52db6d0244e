"""PriceBook must give genai-prices' own answer, from cached coefficients, and never raise."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, data_snapshot
from genai_prices.types import (
    ClauseEquals,
    ClauseStartsWith,
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    Tier,
    TieredPrices,
    TimeOfDateConstraint,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from contextcompany import _pricing
from contextcompany._pricing import PriceBook

# (model, OpenTelemetry provider name or None, the genai-prices provider id it should become)
MODELS: list[tuple[str, str | None, str | None]] = [
    ("gpt-4o", None, None),  # plain, with cache reads
    ("gpt-4o-mini", "openai", "openai"),
    ("gpt-4-0613", None, None),  # dated snapshot name
    ("claude-3-5-haiku-20241022", None, None),  # dated, cache reads and writes
    ("claude-3-5-haiku-20241022", "aws.bedrock", "aws"),
    ("claude-sonnet-4-5", None, None),  # 200k tier on every price
    ("claude-sonnet-4-5", "gcp.vertex_ai", "google"),
    ("gemini-2.5-pro", None, None),  # 200k tier
    ("gemini-2.5-pro", "gcp.gemini", "google"),
    ("gpt-4o", "azure.ai.openai", "azure"),
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "aws.bedrock", "aws"),
    ("grok-4", "x_ai", "x-ai"),
    ("mistral-large-latest", "mistral_ai", "mistral"),
    ("sonar-pro", "perplexity", "perplexity"),  # per-request fee
    ("sonar-deep-research", "perplexity", "perplexity"),  # reasoning tokens priced on their own
    ("qwen/qwen3-coder-flash", "openrouter", "openrouter"),  # two tiers
    ("deepseek-chat", "deepseek", "deepseek"),  # time-of-day prices
    ("o3", "openai", "openai"),  # price changed on a start date
]

TIER_EDGES = [0, 1, 2, 32_000, 32_001, 128_000, 128_001, 199_999, 200_000, 200_001, 1_000_000]


def reference(
    model: str,
    provider_id: str | None,
    counts: tuple[int, int, int, int, int],
    at: datetime | None = None,
) -> float:
    inp, cread, cwrite, out, reason = counts
    usage = Usage(
        input_tokens=inp,
        cache_read_tokens=cread,
        cache_write_tokens=cwrite,
        output_tokens=out,
        output_reasoning_tokens=reason,
    )
    calc = genai_prices.calc_price(
        usage, model_ref=model, provider_id=provider_id, genai_request_timestamp=at
    )
    return float(calc.total_price)


def priced(
    book: PriceBook,
    model: str,
    counts: tuple[int, int, int, int, int],
    provider: str | None = None,
    at: datetime | None = None,
) -> float | None:
    inp, cread, cwrite, out, reason = counts
    return book.cost_usd(
        model,
        input_tokens=inp,
        cache_read_tokens=cread,
        cache_write_tokens=cwrite,
        output_tokens=out,
        reasoning_tokens=reason,
        provider=provider,
        at=at,
    )


@st.composite
def token_counts(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    inp = draw(st.one_of(st.sampled_from(TIER_EDGES), st.integers(0, 1_000_000)))
    cread = draw(st.one_of(st.just(0), st.integers(0, inp)))
    cwrite = draw(st.one_of(st.just(0), st.integers(0, inp - cread)))
    out = draw(st.integers(0, 1_000_000))
    reason = draw(st.one_of(st.just(0), st.integers(0, out)))
    return inp, cread, cwrite, out, reason


@pytest.fixture(scope="module")
def shared_book() -> PriceBook:
    return PriceBook()


@pytest.fixture
def calc_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ids of the models genai-prices is asked to price, from now on."""
    calls: list[str] = []
    original = ModelInfo.calc_price
    this_thread = threading.get_ident()

    def spy(self: ModelInfo, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() == this_thread:  # not the export workers other tests left running
            calls.append(self.id)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ModelInfo, "calc_price", spy)
    return calls


def _provider(provider_id: str, models: list[ModelInfo], **kwargs: Any) -> Provider:
    return Provider(
        id=provider_id,
        name=provider_id.title(),
        api_pattern=rf"https://{provider_id}\.test",
        models=models,
        **kwargs,
    )


def _per_mtok(input_price: str, **kwargs: Decimal | TieredPrices) -> ModelPrice:
    return ModelPrice(input_mtok=Decimal(input_price), **kwargs)


@pytest.fixture
def acme_snapshot() -> Iterator[data_snapshot.DataSnapshot]:
    """A tiny price list whose every price is known to the test, installed as genai-prices' snapshot."""
    shared = "shared-model"
    acme_models = [
        ModelInfo(id=shared, match=ClauseEquals(shared), prices=_per_mtok("9")),
        ModelInfo(
            id="acme-dated",
            match=ClauseEquals("acme-dated"),
            prices=[
                ConditionalPrice(
                    prices=_per_mtok("1", output_mtok=Decimal("2"), requests_kcount=Decimal("5"))
                ),
                ConditionalPrice(
                    constraint=StartDateConstraint(start_date=date(2026, 6, 1)),
                    prices=_per_mtok("3", output_mtok=Decimal("4"), requests_kcount=Decimal("5")),
                ),
                ConditionalPrice(
                    constraint=TimeOfDateConstraint(
                        start_time=time(22, tzinfo=UTC), end_time=time(2, tzinfo=UTC)
                    ),
                    prices=_per_mtok("0.5", output_mtok=Decimal("1")),
                ),
            ],
        ),
        ModelInfo(
            id="acme-narrow",
            match=ClauseEquals("acme-narrow"),
            # Band (10, 11] holds a single input count, too narrow to probe.
            prices=ModelPrice(
                input_mtok=TieredPrices(
                    base=Decimal("1"),
                    tiers=[Tier(start=10, price=Decimal("2")), Tier(start=11, price=Decimal("3"))],
                ),
                output_mtok=Decimal("7"),
            ),
        ),
    ]
    snapshot = data_snapshot.DataSnapshot(
        providers=[
            # The only provider with a model_match, and it matches any name: the model-only fallback.
            _provider("acme", acme_models, model_match=ClauseStartsWith("")),
            _provider("google", [ModelInfo(id=shared, match=ClauseEquals(shared), prices=_per_mtok("1"))]),
            _provider("aws", [ModelInfo(id=shared, match=ClauseEquals(shared), prices=_per_mtok("2"))]),
            _provider("azure", [ModelInfo(id=shared, match=ClauseEquals(shared), prices=_per_mtok("3"))]),
            _provider("x-ai", [ModelInfo(id=shared, match=ClauseEquals(shared), prices=_per_mtok("4"))]),
            _provider("mistral", [ModelInfo(id=shared, match=ClauseEquals(shared), prices=_per_mtok("5"))]),
            _provider("anthropic", []),
        ],
        from_auto_update=False,
    )
    data_snapshot.set_custom_snapshot(snapshot)
    try:
        yield snapshot
    finally:
        data_snapshot.set_custom_snapshot(None)


@settings(max_examples=400, deadline=None)
@given(
    case=st.sampled_from(MODELS),
    counts=token_counts(),
    at=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
)
def test_matches_genai_prices(
    shared_book: PriceBook,
    case: tuple[str, str | None, str | None],
    counts: tuple[int, int, int, int, int],
    at: datetime,
) -> None:
    model, otel_provider, provider_id = case
    expected = reference(model, provider_id, counts, at)
    got = priced(shared_book, model, counts, otel_provider, at)
    assert got is not None
    assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12), (got, expected)


def test_at_none_means_now_for_static_prices() -> None:
    counts = (5_000, 1_000, 0, 700, 0)
    assert priced(PriceBook(), "gpt-4o", counts) == reference("gpt-4o", None, counts)


def test_repeated_calls_in_one_band_skip_genai_prices(calc_calls: list[str]) -> None:
    book = PriceBook()
    low = (1_000, 0, 0, 10, 0)
    assert priced(book, "claude-sonnet-4-5", low, "anthropic") is not None
    probes = len(calc_calls)
    assert probes > 0  # the first call of a band derives its coefficients from genai-prices

    same_band = [(150_000, 20_000, 5_000, 999, 0), (200_000, 200_000, 0, 1, 0), (0, 0, 0, 0, 0)]
    results = [priced(book, "claude-sonnet-4-5", counts, "anthropic") for counts in same_band]
    assert len(calc_calls) == probes

    above_tier = (250_000, 1_000, 0, 10, 0)
    results.append(priced(book, "claude-sonnet-4-5", above_tier, "anthropic"))
    assert len(calc_calls) > probes  # a new band, new coefficients
    probes = len(calc_calls)
    results.append(priced(book, "claude-sonnet-4-5", (900_000, 0, 900_000, 5, 0), "anthropic"))
    assert len(calc_calls) == probes

    counts_used = [*same_band, above_tier, (900_000, 0, 900_000, 5, 0)]
    assert results == [reference("claude-sonnet-4-5", "anthropic", counts) for counts in counts_used]


def test_model_lookup_is_cached_for_hits_and_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    original = data_snapshot.DataSnapshot.find_provider_model
    this_thread = threading.get_ident()

    def spy(self: data_snapshot.DataSnapshot, model_ref: str, *args: Any) -> Any:
        if threading.get_ident() == this_thread:  # not the export workers other tests left running
            lookups.append(model_ref)
        return original(self, model_ref, *args)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", spy)
    book = PriceBook()
    for _ in range(3):
        assert book.cost_usd("gpt-4o", input_tokens=10) is not None
        assert book.cost_usd("definitely-not-a-model", input_tokens=10) is None
    assert lookups == ["gpt-4o", "definitely-not-a-model"]


def test_conditional_prices_follow_the_request_time(calc_calls: list[str]) -> None:
    book = PriceBook()
    counts = (10_000, 2_000, 0, 3_000, 0)
    day = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    night = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    day_cost = priced(book, "deepseek-chat", counts, "deepseek", day)
    night_cost = priced(book, "deepseek-chat", counts, "deepseek", night)
    assert day_cost is not None
    assert night_cost is not None
    assert day_cost != night_cost
    probes = len(calc_calls)
    # Both prices are now cached: other times inside each window cost no genai-prices call.
    assert priced(book, "deepseek-chat", counts, "deepseek", day.replace(hour=11)) == day_cost
    assert priced(book, "deepseek-chat", counts, "deepseek", night.replace(hour=23)) == night_cost
    assert len(calc_calls) == probes
    assert day_cost == reference("deepseek-chat", "deepseek", counts, day)
    assert night_cost == reference("deepseek-chat", "deepseek", counts, night)


def test_custom_snapshot_start_date_and_time_of_day(acme_snapshot: data_snapshot.DataSnapshot) -> None:
    book = PriceBook()
    counts = (1_000, 0, 0, 100, 0)
    cases = {
        datetime(2026, 1, 15, 12, 0, tzinfo=UTC): 1_000 * 1e-6 + 100 * 2e-6 + 0.005,
        datetime(2026, 7, 1, 12, 0, tzinfo=UTC): 1_000 * 3e-6 + 100 * 4e-6 + 0.005,
        datetime(2026, 7, 1, 23, 0, tzinfo=UTC): 1_000 * 0.5e-6 + 100 * 1e-6,
        datetime(2026, 7, 2, 1, 59, tzinfo=UTC): 1_000 * 0.5e-6 + 100 * 1e-6,
        datetime(2026, 7, 2, 2, 0): 1_000 * 3e-6 + 100 * 4e-6 + 0.005,  # naive means UTC
    }
    for at, expected in cases.items():
        got = priced(book, "acme-dated", counts, at=at)
        assert got == reference("acme-dated", None, counts, at)
        assert got is not None
        assert math.isclose(got, expected, rel_tol=1e-12)


def test_band_too_narrow_to_probe_is_priced_by_genai_prices(
    acme_snapshot: data_snapshot.DataSnapshot, calc_calls: list[str]
) -> None:
    book = PriceBook()
    for inp in (0, 5, 10, 11, 12, 500):
        counts = (inp, 0, 0, 3, 0)
        assert priced(book, "acme-narrow", counts) == reference("acme-narrow", None, counts)
    # Once every band has been seen, only the single-value band still calls genai-prices.
    before = len(calc_calls)
    priced(book, "acme-narrow", (7, 0, 0, 3, 0))
    priced(book, "acme-narrow", (900, 0, 0, 3, 0))
    assert len(calc_calls) == before
    priced(book, "acme-narrow", (11, 0, 0, 3, 0))
    assert len(calc_calls) == before + 1


@pytest.mark.parametrize(
    ("provider", "usd"),
    [
        (None, 9.0),
        ("gcp.gen_ai", 1.0),
        ("gcp.vertex_ai", 1.0),
        ("gcp.gemini", 1.0),
        ("aws.bedrock", 2.0),
        ("azure.ai.openai", 3.0),
        ("x_ai", 4.0),
        ("mistral_ai", 5.0),
        ("google", 1.0),
        ("GCP.Gemini", 1.0),
        ("no-such-provider", 9.0),  # unknown provider: the model name alone decides
        ("anthropic", 9.0),  # provider known, but it does not sell this model
    ],
)
def test_provider_names_map_to_genai_prices_providers(
    acme_snapshot: data_snapshot.DataSnapshot, provider: str | None, usd: float
) -> None:
    assert PriceBook().cost_usd("shared-model", input_tokens=1_000_000, provider=provider) == usd


def test_unknown_provider_falls_back_to_model_only() -> None:
    counts = (12_345, 345, 0, 678, 0)
    expected = reference("gpt-4o", None, counts)
    assert priced(PriceBook(), "gpt-4o", counts, "not-a-real-provider") == expected
    assert priced(PriceBook(), "gpt-4o", counts, "cohere") == expected  # cohere does not sell gpt-4o


def test_snapshot_change_invalidates_the_cache(shared_book: PriceBook) -> None:
    counts = (1_000, 0, 0, 0, 0)
    bundled = priced(shared_book, "gpt-4o", counts)
    assert bundled is not None
    data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=[], from_auto_update=False))
    try:
        assert priced(shared_book, "gpt-4o", counts) is None
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert priced(shared_book, "gpt-4o", counts) == bundled


def test_unknown_model_is_none(shared_book: PriceBook) -> None:
    assert shared_book.cost_usd("no-such-model-xyz", input_tokens=100, output_tokens=5) is None
    assert shared_book.cost_usd("", input_tokens=100) is None
    assert shared_book.cost_usd("no-such-model-xyz", input_tokens=100, provider="openai") is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"input_tokens": -1},
        {"input_tokens": 10, "output_tokens": -1},
        {"input_tokens": 10, "cache_read_tokens": -1},
        {"input_tokens": 10, "cache_write_tokens": -1},
        {"input_tokens": 10, "output_tokens": 5, "reasoning_tokens": -1},
        {"input_tokens": 10, "cache_read_tokens": 11},
        {"input_tokens": 10, "cache_write_tokens": 11},
        {"input_tokens": 10, "cache_read_tokens": 6, "cache_write_tokens": 5},
        {"input_tokens": 10, "output_tokens": 5, "reasoning_tokens": 6},
        {"input_tokens": True},
        {"input_tokens": 10, "output_tokens": False},
        {"input_tokens": 10, "cache_read_tokens": True},
        {"input_tokens": 10, "reasoning_tokens": False},
        {"input_tokens": 10.0},
        {"input_tokens": "10"},
        {"input_tokens": None},
        {"input_tokens": Decimal(10)},
        {"input_tokens": 10, "at": "2026-01-01"},
        {"input_tokens": 10, "provider": 3},
    ],
)
def test_unusable_usage_is_none(shared_book: PriceBook, kwargs: dict[str, Any]) -> None:
    assert shared_book.cost_usd("gpt-4o", **kwargs) is None


def test_non_string_model_is_none(shared_book: PriceBook) -> None:
    assert shared_book.cost_usd(None, input_tokens=10) is None  # type: ignore[arg-type]
    assert shared_book.cost_usd(b"gpt-4o", input_tokens=10) is None  # type: ignore[arg-type]


def test_errors_inside_genai_prices_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: ModelInfo, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(ModelInfo, "calc_price", broken)
    book = PriceBook()
    assert book.cost_usd("gpt-4o", input_tokens=10) is None
    assert book.cost_usd("gpt-4o", input_tokens=20, output_tokens=3) is None


def test_price_that_is_not_affine_is_left_to_genai_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    # A minimum charge breaks the affine shape; the check probe must notice and route every call
    # through genai-prices instead of extrapolating from the probes near zero.
    original = ModelInfo.calc_price
    floor = Decimal("0.01")

    def with_minimum(self: ModelInfo, *args: Any, **kwargs: Any) -> Any:
        calc = original(self, *args, **kwargs)
        calc.total_price = max(calc.total_price, floor)
        return calc

    monkeypatch.setattr(ModelInfo, "calc_price", with_minimum)
    book = PriceBook()
    for counts in [(10, 0, 0, 1, 0), (1_000_000, 0, 0, 0, 0), (3_000, 1_000, 0, 50, 0)]:
        assert priced(book, "gpt-4o", counts) == reference("gpt-4o", None, counts)
    assert priced(book, "gpt-4o", (10, 0, 0, 1, 0)) == 0.01


def test_garbage_model_names_do_not_grow_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pricing, "_MAX_NAMES", 16)
    book = PriceBook()
    counts = (2_000, 0, 0, 100, 0)
    expected = reference("gpt-4o", None, counts)
    assert priced(book, "gpt-4o", counts) == expected
    for n in range(300):
        assert book.cost_usd(f"garbage-{n}", input_tokens=1) is None
    state = book._state
    assert state is not None
    assert len(state.models) <= 16
    assert priced(book, "gpt-4o", counts) == expected


def test_very_long_model_names_are_priced_but_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pricing, "_MAX_KEY_CHARS", 5)
    book = PriceBook()
    counts = (2_000, 0, 0, 100, 0)
    for _ in range(2):
        assert priced(book, "gpt-4o", counts) == reference("gpt-4o", None, counts)
        assert book.cost_usd("nope-model", input_tokens=1) is None
    assert priced(book, "o1", counts) == reference("o1", None, counts)
    state = book._state
    assert state is not None
    assert list(state.models) == [("o1", None)]


def test_missing_genai_prices_is_none_without_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # makes the import fail
    book = PriceBook()
    assert book.cost_usd("gpt-4o", input_tokens=10) is None
    monkeypatch.undo()
    assert book.cost_usd("gpt-4o", input_tokens=10) is None  # the failure is remembered
    assert PriceBook().cost_usd("gpt-4o", input_tokens=10) == reference("gpt-4o", None, (10, 0, 0, 0, 0))


def test_concurrent_callers_agree_with_genai_prices() -> None:
    cases = [
        (model, provider_id, (n * 7_919, n * 101, n * 13, n * 977, n * 31))
        for n in range(1, 40, 3)
        for model, _, provider_id in MODELS[:8]
    ]
    at = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)
    expected = [reference(model, provider_id, counts, at) for model, provider_id, counts in cases]
    book = PriceBook()
    results: dict[int, list[float | None]] = {}

    def work(worker: int) -> None:
        results[worker] = [
            priced(book, model, counts, provider_id, at) for model, provider_id, counts in cases
        ]

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(got == expected for got in results.values())


def test_import_does_not_import_genai_prices() -> None:
    code = (
        "import sys\n"
        "import contextcompany._pricing as pricing\n"
        "pricing.PriceBook()\n"
        "loaded = sorted(name for name in sys.modules if name.startswith('genai_prices'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
