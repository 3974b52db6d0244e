"""Token usage of one LLM call, or the total of several: one type, read from and written to attributes.

    >>> u = Usage(input=5000, cache_read=4000, cache_write=100, output=350, reasoning=200)
    >>> u.to_attributes()[sc.USAGE_INPUT_TOKENS]
    5000
    >>> Usage.from_attributes(span.attributes) + u       # a total

Counts follow the GenAI convention: ``input`` counts every input token, cache reads and writes
included; ``output`` counts every output token, reasoning included. A count that was never given is
None, and stays absent on the wire; in a sum it counts as 0.

Cache writes have two names in use: ``gen_ai.usage.cache_creation.input_tokens`` (the installed
semantic-conventions package, Traceloop) and ``gen_ai.usage.cache_write.input_tokens``
(opentelemetry-util-genai, the anthropic SDK). Both are read; see ``_semconv`` for what is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.util.types import AttributeValue

from . import _semconv as sc


def count(value: object) -> int | None:
    """A token count read from any span: a non-negative int (not a bool); anything else is absent."""
    return value if type(value) is int and value >= 0 else None


def _plus(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else a + b


# Not frozen: a frozen dataclass costs three times as much to build, and a step builds one at end().
@dataclass(slots=True)
class Usage:
    input: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    output: int | None = None
    reasoning: int | None = None

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, Any] | Callable[[str], Any]) -> Usage | None:
        """The usage a span reports, or None when it reports neither input nor output tokens."""
        get = attributes if callable(attributes) else attributes.get
        input_tokens = count(get(sc.USAGE_INPUT_TOKENS))
        output_tokens = count(get(sc.USAGE_OUTPUT_TOKENS))
        if input_tokens is None and output_tokens is None:
            return None
        cache_write = count(get(sc.USAGE_CACHE_WRITE_INPUT_TOKENS))
        if cache_write is None:
            cache_write = count(get(sc.USAGE_CACHE_CREATION_INPUT_TOKENS))
        return cls(
            input_tokens,
            count(get(sc.USAGE_CACHE_READ_INPUT_TOKENS)),
            cache_write,
            output_tokens,
            count(get(sc.USAGE_REASONING_OUTPUT_TOKENS)),
        )

    def to_attributes(self, into: dict[str, AttributeValue] | None = None) -> dict[str, AttributeValue]:
        """The convention's attributes for the counts that are known (written into ``into``)."""
        out: dict[str, AttributeValue] = {} if into is None else into
        if self.input is not None:
            out[sc.USAGE_INPUT_TOKENS] = self.input
        if self.cache_read is not None:
            out[sc.USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read
        if self.cache_write is not None:
            for key in sc.USAGE_CACHE_WRITE_KEYS:
                out[key] = self.cache_write
        if self.output is not None:
            out[sc.USAGE_OUTPUT_TOKENS] = self.output
        if self.reasoning is not None:
            out[sc.USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning
        return out

    def to_run_attributes(self, into: dict[str, AttributeValue] | None = None) -> dict[str, AttributeValue]:
        """The run's totals (``tcc.run.usage.*``): every count written, 0 when none was reported."""
        out: dict[str, AttributeValue] = {} if into is None else into
        out[sc.RUN_INPUT_TOKENS] = self.input or 0
        out[sc.RUN_CACHE_READ_TOKENS] = self.cache_read or 0
        out[sc.RUN_CACHE_CREATION_TOKENS] = self.cache_write or 0
        out[sc.RUN_OUTPUT_TOKENS] = self.output or 0
        out[sc.RUN_REASONING_TOKENS] = self.reasoning or 0
        return out

    @classmethod
    def from_run_attributes(cls, attributes: Mapping[str, Any]) -> Usage | None:
        """A run's totals as the span processor wrote them, or None on a span without them."""
        if sc.RUN_INPUT_TOKENS not in attributes and sc.RUN_OUTPUT_TOKENS not in attributes:
            return None
        get = attributes.get
        return cls(
            count(get(sc.RUN_INPUT_TOKENS)),
            count(get(sc.RUN_CACHE_READ_TOKENS)),
            count(get(sc.RUN_CACHE_CREATION_TOKENS)),
            count(get(sc.RUN_OUTPUT_TOKENS)),
            count(get(sc.RUN_REASONING_TOKENS)),
        )

    @property
    def uncached_input(self) -> int:
        """Input tokens neither read from nor written to a cache."""
        return max((self.input or 0) - (self.cache_read or 0) - (self.cache_write or 0), 0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            _plus(self.input, other.input),
            _plus(self.cache_read, other.cache_read),
            _plus(self.cache_write, other.cache_write),
            _plus(self.output, other.output),
            _plus(self.reasoning, other.reasoning),
        )
