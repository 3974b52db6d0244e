"""Cost in USD of LLM calls, with genai-prices as the source of truth, cheap enough for every span.

    book = PriceBook()
    usd = book.cost_usd("claude-sonnet-4-5", input_tokens=1200, output_tokens=300, provider="anthropic")

genai-prices is imported on first use, not here: importing it takes ~0.45 s and its first lookup ~45 ms,
which the SDK must not charge to ``import contextcompany``.
"""

from __future__ import annotations

import logging
import math
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from genai_prices.data_snapshot import DataSnapshot
    from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices, Usage

from . import _forksafe as forksafe
from ._forksafe import importing

__all__ = ["PriceBook"]

_log = logging.getLogger("contextcompany")

# OpenTelemetry gen_ai.provider.name (and older gen_ai.system) values that genai-prices does not already
# recognise by id or by its own provider_match rules. Anything not listed is handed to genai-prices as is.
_PROVIDER_IDS: Final[dict[str, str]] = {
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "mistral_ai": "mistral",
    "together_ai": "together",
}

# genai-prices provider ids whose gen_ai.provider.name value differs (the inverse of the above, where one
# convention value stands for the provider).
_CONVENTION_NAMES: Final[dict[str, str]] = {
    "google": "gcp.gen_ai",
    "x-ai": "x_ai",
    "mistral": "mistral_ai",
    "aws": "aws.bedrock",
}

# Every distinct (model, provider) pair is one entry, hits and misses alike, so a flood of garbage
# model names would otherwise grow the cache forever. Real deployments see tens of names.
_MAX_NAMES: Final = 4096
# Keeps those entries small too; a longer name is still priced, just looked up again on every call.
_MAX_KEY_CHARS: Final = 256
# Distinct ModelPrice objects seen; bounded by the price data unless a custom snapshot builds a fresh
# ModelPrice per lookup, in which case we stop caching and price those calls directly.
_MAX_TABLES: Final = 4096
# Far enough from the band start to catch a non-affine price, small enough to stay a realistic count.
_CHECK_SPAN: Final = 654_321


@dataclass(frozen=True, slots=True)
class _Affine:
    """cost = (k0 + ki*input + kr*cache_read + kw*cache_write + ko*output + kx*reasoning) / scale.

    Integers over one common denominator, so the sum is exact and the single int/int division rounds
    correctly: the result is the same float as float(genai-prices' exact Decimal total).
    """

    k0: int
    ki: int
    kr: int
    kw: int
    ko: int
    kx: int
    scale: int


class _Slow:
    """Marks a band the fast path must not handle; genai-prices prices each such call itself."""


_SLOW: Final = _Slow()
# (input, cache_read, cache_write, output, reasoning), OpenTelemetry GenAI semantics.
_Counts = tuple[int, int, int, int, int]
_ABSENT: Final = object()

_Band = _Affine | _Slow | None  # None: not derived yet


@dataclass(frozen=True, slots=True)
class _Lib:
    """The few genai-prices names this module uses, imported together on first use."""

    get_snapshot: Callable[[], DataSnapshot]
    usage: type[Usage]
    model_price: type[ModelPrice]
    tiered_prices: type[TieredPrices]


@dataclass(slots=True)
class _Model:
    info: ModelInfo
    provider: Provider
    # The single price of a model without ConditionalPrices, so the common case skips the timestamp.
    static_price: ModelPrice | None


@dataclass(slots=True)
class _Table:
    price: ModelPrice  # held so the id() key below cannot be reused by another object
    starts: tuple[int, ...]  # sorted distinct tier starts; band b is starts[b-1] < input <= starts[b]
    bands: list[_Band]


@dataclass(slots=True)
class _State:
    """Caches valid for one genai-prices DataSnapshot; replaced whole when the snapshot changes."""

    snapshot: DataSnapshot
    models: dict[tuple[str, str | None], _Model | None] = field(default_factory=dict)
    tables: dict[int, _Table] = field(default_factory=dict)
    providers: dict[str, str | None] = field(default_factory=dict)


class PriceBook:
    """Prices LLM calls with genai-prices, fast.

    Why the cache: ``genai_prices.calc_price`` costs ~90-100 us a call (Decimal arithmetic, a unit
    registry, usage decomposition), too much once per LLM span in the export worker; the fast path
    below costs ~1 us.

    Why it is exact: within one price band a model's cost is an affine function of the reported counts.
    genai-prices subtracts the cached parts from total input to get leaf counts, multiplies each leaf by
    a per-unit price and adds per-request fees. A band changes only where the total input crosses a tier
    start, and a ConditionalPrice (start date, time of day) swaps the whole ModelPrice object. So the
    coefficients of one (ModelPrice object, band) are derived once by asking genai-prices itself for a
    few probe usages and taking exact differences, checked against one more probe, and kept as integers
    over a common denominator. The sum is then exact and the single int/int division rounds correctly,
    which gives the very float that ``float(calc_price(...).total_price)`` gives. No price or pricing
    rule is restated here; whatever the fast path cannot handle safely (a band too narrow to probe, a
    probe that disagrees) is priced by genai-prices on every call.

    Thread safety: readers take no lock. Caches are dicts and lists, only ever filled with values
    computed idempotently from one snapshot, so a reader finds either no entry (and takes the slow,
    locked route) or a complete one. Fills and evictions happen under ``_lock``, which also keeps two
    threads from running the same probes. A new snapshot (e.g. from genai_prices.UpdatePrices) swaps in
    a fresh ``_State`` with a single attribute assignment.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The export worker may hold the lock at fork time; the child's worker must not wait forever.
        forksafe.after_fork(self._renew_lock, forksafe.Phase.LOCKS, weak=True)
        self._lib: _Lib | None = None
        self._import_failed = False
        self._state: _State | None = None

    def _renew_lock(self) -> None:
        self._lock = threading.Lock()

    def cost_usd(
        self,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        provider: str | None = None,
        at: datetime | int | None = None,
    ) -> float | None:
        """Cost in USD of one call, or None when no price is known for this model (or the usage is unusable).

        Counts follow the OpenTelemetry GenAI convention: ``input_tokens`` includes the cache reads and
        cache writes, ``output_tokens`` includes the reasoning tokens. ``provider`` is a
        ``gen_ai.provider.name`` (or ``gen_ai.system``) value; when genai-prices does not know it, or
        does not know the model under it, the model is looked up by name alone. ``at`` is the request
        time (a datetime, or epoch nanoseconds as a span's end time is), for prices that change by date
        or time of day; None means now. Never raises.
        """
        # type() rather than isinstance(): bool is an int subclass and True is not a token count.
        if (
            type(input_tokens) is not int
            or type(output_tokens) is not int
            or type(cache_read_tokens) is not int
            or type(cache_write_tokens) is not int
            or type(reasoning_tokens) is not int
        ):
            return None
        if (
            cache_read_tokens < 0
            or cache_write_tokens < 0
            or reasoning_tokens < 0
            # genai-prices rejects these only for models that price the part separately; a span that
            # reports more cached than total input is wrong whatever the model, so price none of them.
            or cache_read_tokens + cache_write_tokens > input_tokens
            or reasoning_tokens > output_tokens
        ):
            return None
        if not isinstance(model, str) or (provider is not None and not isinstance(provider, str)):
            return None
        if at is not None and type(at) is not int and not isinstance(at, datetime):
            return None
        counts = (input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens)
        try:
            return self._cost(model, provider, at, counts)
        except Exception:
            # Pricing is best effort and runs in the export worker: a bad price must never cost a span.
            return None

    def _cost(
        self, model: str, provider: str | None, at: datetime | int | None, counts: _Counts
    ) -> float | None:
        lib = self._lib
        if lib is None:
            lib = self._load()
            if lib is None:
                return None
        snapshot = lib.get_snapshot()
        state = self._state
        if state is None or state.snapshot is not snapshot:
            state = self._reset(snapshot)

        entry = state.models.get((model, provider), _ABSENT)
        if entry is _ABSENT:
            entry = self._resolve(lib, state, model, provider)
        if entry is None:
            return None
        assert isinstance(entry, _Model)

        # The time is converted only where a price depends on it, or for genai-prices itself: most models
        # have one static price, and the conversion would be a third of this whole look-up.
        when: datetime | None = None
        price = entry.static_price
        if price is None:
            when = _as_datetime(at) or datetime.now(tz=UTC)
            price = entry.info.get_prices(when)

        table = state.tables.get(id(price))
        if table is None or table.price is not price:
            table = self._table(lib, state, price)
        index = bisect_left(table.starts, counts[0]) if table.starts else 0
        band = table.bands[index]
        if band is None:
            band = self._derive(lib, table, index, entry, when or _as_datetime(at))
        if isinstance(band, _Affine):
            inp, cread, cwrite, out, reason = counts
            b = band
            return (b.k0 + b.ki * inp + b.kr * cread + b.kw * cwrite + b.ko * out + b.kx * reason) / b.scale
        return float(_calc(lib, entry, when or _as_datetime(at), None, counts))

    def provider_of(self, model: str) -> str | None:
        """The ``gen_ai.provider.name`` of the provider genai-prices' provider match gives ``model``, or None
        when no provider claims it (a model many providers serve, or one unknown). Never raises.

            >>> PriceBook().provider_of("claude-sonnet-4-5")
            'anthropic'
        """
        if not isinstance(model, str) or not model:
            return None
        try:
            lib = self._lib or self._load()
            if lib is None:
                return None
            snapshot = lib.get_snapshot()
            state = self._state
            if state is None or state.snapshot is not snapshot:
                state = self._reset(snapshot)
            found = state.providers.get(model, _ABSENT)
            if found is _ABSENT:
                try:
                    ident: str | None = snapshot.find_provider(model, None, None).id
                except LookupError:
                    ident = None
                found = None if ident is None else _CONVENTION_NAMES.get(ident, ident)
                if len(state.providers) < _MAX_NAMES:
                    state.providers[model] = found
            return found if isinstance(found, str) else None
        except Exception:
            return None

    def _load(self) -> _Lib | None:
        with self._lock:
            if self._lib is None and not self._import_failed:
                # Lazy on purpose: importing genai-prices takes ~0.45 s (see the module docstring). A fork
                # must not split it (see _forksafe), which includes the modules its first price imports.
                with importing():
                    try:
                        # With the modules genai-prices imports inside functions on its first price.
                        from genai_prices import (  # noqa: PLC0415
                            Usage,
                            data_snapshot,
                            decompose,  # noqa: F401
                            types,
                            units,
                            validation,  # noqa: F401
                        )

                        units._get_registry()
                        data_snapshot.get_snapshot()
                        self._lib = _Lib(
                            data_snapshot.get_snapshot, Usage, types.ModelPrice, types.TieredPrices
                        )
                    except Exception:
                        # Remember the failure: retrying a failed import searches the disk on every span.
                        self._import_failed = True
            return self._lib

    def _reset(self, snapshot: DataSnapshot) -> _State:
        with self._lock:
            state = self._state
            if state is None or state.snapshot is not snapshot:
                state = self._state = _State(snapshot)
            return state

    def _resolve(self, lib: _Lib, state: _State, model: str, provider: str | None) -> _Model | None:
        key = (model, provider)
        with self._lock:
            entry = state.models.get(key, _ABSENT)
            if entry is not _ABSENT:
                assert entry is None or isinstance(entry, _Model)
                return entry
            entry = _lookup(lib, state.snapshot, model, provider)
            if len(model) + len(provider or "") > _MAX_KEY_CHARS:
                return entry
            if entry is None:
                _log.debug("no price known for model %r (provider %r)", model, provider)
            models = state.models
            if len(models) >= _MAX_NAMES:
                # Oldest first (dicts keep insertion order): a popular name pushed out by a flood of
                # garbage names costs one cached genai-prices lookup to come back.
                del models[next(iter(models))]
            models[key] = entry
            return entry

    def _table(self, lib: _Lib, state: _State, price: ModelPrice) -> _Table:
        starts: set[int] = set()
        usable = True
        for value in vars(price).values():
            if isinstance(value, lib.tiered_prices):
                for tier in value.tiers:
                    if type(tier.start) is int:
                        starts.add(tier.start)
                    else:
                        usable = False
        ordered = tuple(sorted(starts))
        table = _Table(price, ordered, [None if usable else _SLOW for _ in range(len(ordered) + 1)])
        with self._lock:
            known = state.tables.get(id(price))
            if known is not None and known.price is price:
                return known
            if len(state.tables) >= _MAX_TABLES:
                # Nowhere to keep probe results, so probing would be pure overhead: price directly.
                table.bands = [_SLOW] * len(table.bands)
            else:
                state.tables[id(price)] = table
        return table

    def _derive(
        self, lib: _Lib, table: _Table, index: int, entry: _Model, when: datetime | None
    ) -> _Affine | _Slow:
        with self._lock:
            band = table.bands[index]
            if band is None:
                try:
                    band = _probe_band(lib, table, index, entry, when)
                except Exception:
                    band = _SLOW
                table.bands[index] = band
            return band


def _as_datetime(at: datetime | int | None) -> datetime | None:
    return datetime.fromtimestamp(at / 1e9, UTC) if isinstance(at, int) else at


def _lookup(lib: _Lib, snapshot: DataSnapshot, model: str, provider: str | None) -> _Model | None:
    found: tuple[Provider, ModelInfo] | None = None
    if provider is not None:
        name = provider.strip().lower()
        try:
            found = snapshot.find_provider_model(model, None, _PROVIDER_IDS.get(name, name), None)
        except Exception:
            found = None  # unknown provider, or the model is not sold by it: try the model name alone
    if found is None:
        try:
            found = snapshot.find_provider_model(model, None, None, None)
        except Exception:
            return None
    provider_info, info = found
    static = info.prices if isinstance(info.prices, lib.model_price) else None
    return _Model(info, provider_info, static)


def _calc(
    lib: _Lib, entry: _Model, when: datetime | None, expect: ModelPrice | None, counts: _Counts
) -> Fraction:
    """Exact cost from genai-prices; with ``expect``, only if it priced with that very ModelPrice."""
    inp, cread, cwrite, out, reason = counts
    usage = lib.usage(
        input_tokens=inp,
        cache_read_tokens=cread,
        cache_write_tokens=cwrite,
        output_tokens=out,
        output_reasoning_tokens=reason,
    )
    calc = entry.info.calc_price(usage, entry.provider, genai_request_timestamp=when)
    if expect is not None and calc.model_price is not expect:
        raise LookupError("genai-prices chose another price for the probe")
    return Fraction(calc.total_price)


def _probe_band(
    lib: _Lib, table: _Table, index: int, entry: _Model, when: datetime | None
) -> _Affine | _Slow:
    starts = table.starts
    low = starts[index - 1] + 1 if index > 0 else 0
    high = starts[index] if index < len(starts) else None
    if high is not None and high < low + 1:
        return _SLOW  # a single input value: no room to measure the price of one more input token
    if when is None:
        # A static price does not depend on the time, but genai-prices wants one for each probe.
        when = datetime.now(tz=UTC)

    def cost(inp: int, cread: int, cwrite: int, out: int, reason: int) -> Fraction:
        return _calc(lib, entry, when, table.price, (inp, cread, cwrite, out, reason))

    # Exact differences between probes one token apart, all inside this band.
    base = cost(low, 0, 0, 0, 0)
    one_more = cost(low + 1, 0, 0, 0, 0)
    per_input = one_more - base
    per_read = cost(low + 1, 1, 0, 0, 0) - one_more
    per_write = cost(low + 1, 0, 1, 0, 0) - one_more
    with_output = cost(low, 0, 0, 1, 0)
    per_output = with_output - base
    per_reason = cost(low, 0, 0, 1, 1) - with_output
    fixed = base - per_input * low
    coefs = (fixed, per_input, per_read, per_write, per_output, per_reason)

    scale = math.lcm(*(c.denominator for c in coefs))
    k0, ki, kr, kw, ko, kx = (c.numerator * (scale // c.denominator) for c in coefs)

    # One more probe far from the others with every count non-zero: refuse the band if the price is not
    # affine after all (a minimum charge, say, or a rule added in a later genai-prices).
    inp = high if high is not None else low + _CHECK_SPAN
    cread, cwrite, out, reason = inp // 3, inp // 5, 98_765, 4_321
    predicted = Fraction(k0 + ki * inp + kr * cread + kw * cwrite + ko * out + kx * reason, scale)
    if predicted != cost(inp, cread, cwrite, out, reason):
        return _SLOW
    return _Affine(k0, ki, kr, kw, ko, kx, scale)
