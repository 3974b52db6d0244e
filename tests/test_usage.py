"""The one usage type: read from any span's attributes, written as the convention says, summed."""

from __future__ import annotations

from contextcompany import _semconv as sc
from contextcompany._usage import Usage


def test_round_trip_through_attributes() -> None:
    usage = Usage(input=5000, cache_read=4000, cache_write=100, output=350, reasoning=200)
    attributes = usage.to_attributes()
    assert attributes == {
        sc.USAGE_INPUT_TOKENS: 5000,
        sc.USAGE_CACHE_READ_INPUT_TOKENS: 4000,
        sc.USAGE_CACHE_CREATION_INPUT_TOKENS: 100,
        sc.USAGE_OUTPUT_TOKENS: 350,
        sc.USAGE_REASONING_OUTPUT_TOKENS: 200,
    }
    assert Usage.from_attributes(attributes) == usage
    assert usage.uncached_input == 900


def test_counts_never_given_stay_absent() -> None:
    usage = Usage(output=25)
    assert usage.to_attributes() == {sc.USAGE_OUTPUT_TOKENS: 25}
    assert Usage.from_attributes({sc.USAGE_OUTPUT_TOKENS: 25}) == usage


def test_a_span_without_input_or_output_has_no_usage() -> None:
    assert Usage.from_attributes({sc.USAGE_CACHE_READ_INPUT_TOKENS: 5}) is None
    assert Usage.from_attributes({}) is None


def test_both_cache_write_names_are_read() -> None:
    util_genai = {sc.USAGE_INPUT_TOKENS: 300, sc.USAGE_CACHE_WRITE_INPUT_TOKENS: 120}
    semconv = {sc.USAGE_INPUT_TOKENS: 300, sc.USAGE_CACHE_CREATION_INPUT_TOKENS: 120}
    assert Usage.from_attributes(util_genai) == Usage.from_attributes(semconv) == Usage(300, None, 120)


def test_anything_but_a_non_negative_int_counts_as_absent() -> None:
    usage = Usage.from_attributes(
        {sc.USAGE_INPUT_TOKENS: -1, sc.USAGE_OUTPUT_TOKENS: 7, sc.USAGE_CACHE_READ_INPUT_TOKENS: True}
    )
    assert usage == Usage(output=7)


def test_a_sum_adds_every_token_type_and_keeps_unknown_as_absent() -> None:
    a = Usage(input=100, cache_read=10, cache_write=5, output=20, reasoning=3)
    b = Usage(input=1, cache_read=2, cache_write=3, output=4, reasoning=1)
    assert a + b == Usage(101, 12, 8, 24, 4)
    assert Usage(output=1) + Usage(output=2) == Usage(output=3)
    totals = (a + b).to_run_attributes()
    assert totals[sc.RUN_CACHE_CREATION_TOKENS] == 8
    assert Usage.from_run_attributes(totals) == a + b
    assert Usage(output=3).to_run_attributes()[sc.RUN_INPUT_TOKENS] == 0
