"""What ``end()`` costs the caller when the prompt is long (issue 13): a step whose prompt is 1 MB and
10 MB (1,000,000 and 10,000,000 characters of text), against the same step with a short prompt.

Each round times, on the calling thread (``time.thread_time``), one ``end()`` of a long-prompt step and
the ``end()`` of a few short-prompt steps after it; the round's ratio is the long one over the median
of the short ones, and the reported ratio is the median over rounds. Before each timed part everything
is flushed, so the export of a long prompt never runs beside a timed ``end()``, and then a few untimed
short steps warm the code path up again (both sides alike).

The ``setters + end()`` column times the setters too, with no target of its own: it shows where the
work went if it moves from ``end()`` into ``prompt()``.

    >>> report = long_prompt_end(Settings(steps=1500, rounds=15, endpoint="http://127.0.0.1:4318"))
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from harness import Check, Report, Settings, ratio_cell
from rich.table import Table

TARGET = 2.0
SHORT = "You are a weather agent. The user asked: What is the weather in London? Answer briefly."
RESPONSE = "The weather in London is 15°C and cloudy."
SHORT_PER_ROUND = 5
WARM_AFTER_FLUSH = 3
# Text, not one repeated character, so whatever scans the prompt (checks, redaction) sees words.
_PARAGRAPH = (
    "Context document 17. The customer reported that the forecast for London showed 15°C and cloud "
    "cover through the afternoon, with a light westerly breeze; the Met Office issued no warnings. "
)


def long_text(chars: int) -> str:
    return (_PARAGRAPH * (chars // len(_PARAGRAPH) + 1))[:chars]


def _timed_step(run: Any, prompt: str) -> tuple[float, float]:
    """µs of caller-thread CPU: (end(), setters + end()) of one fully populated step."""
    s = run.step()
    t0 = time.thread_time_ns()
    s.prompt(prompt)
    s.response(RESPONSE)
    s.model(requested="gpt-4o", used="gpt-4o-2024-08-06")
    s.tokens(prompt_uncached=len(prompt) // 4, completion=12)
    s.finish_reason("stop")
    t1 = time.thread_time_ns()
    s.end()
    t2 = time.thread_time_ns()
    return (t2 - t1) / 1000, (t2 - t0) / 1000


def _settle(run: Any) -> None:
    """Wait until everything is exported, then warm the step's code path up again: a flush leaves the
    caller's caches cold, which triples a short step's ``end()`` and would flatter the ratio."""
    import contextcompany as tcc

    tcc.flush()
    for _ in range(WARM_AFTER_FLUSH):
        _timed_step(run, SHORT)


def long_prompt_end(settings: Settings) -> Report:
    """end() with a 1 MB and a 10 MB prompt against end() with a short one; target at most 2x."""
    import contextcompany as tcc

    # The 10 MB case takes a tenth of a second or more per round: a third of the rounds.
    sizes = {1_000_000: settings.rounds, 10_000_000: max(1, settings.rounds // 3)}
    run = tcc.run().prompt("Summarise the documents.")
    for _ in range(20):  # warm up: price look-ups, the export connection
        _timed_step(run, SHORT)
    tcc.flush()

    rows: list[tuple[str, int, float, float, float, float]] = []
    short_all: list[tuple[float, float]] = []
    checks = []
    for chars, rounds in sizes.items():
        prompt = long_text(chars)
        long_times: list[tuple[float, float]] = []
        round_ratios: list[tuple[float, float]] = []
        for _ in range(rounds):
            _settle(run)
            long_time = _timed_step(run, prompt)
            _settle(run)
            short = [_timed_step(run, SHORT) for _ in range(SHORT_PER_ROUND)]
            short_end = statistics.median(t[0] for t in short)
            short_both = statistics.median(t[1] for t in short)
            long_times.append(long_time)
            short_all += short
            round_ratios.append((long_time[0] / short_end, long_time[1] / short_both))
        ratio_end = statistics.median(r[0] for r in round_ratios)
        ratio_both = statistics.median(r[1] for r in round_ratios)
        checks.append(Check(f"end() with a {chars // 1_000_000} MB prompt", ratio_end, TARGET))
        rows.append(
            (
                f"{chars // 1_000_000} MB prompt",
                rounds,
                statistics.median(t[0] for t in long_times),
                ratio_end,
                statistics.median(t[1] for t in long_times),
                ratio_both,
            )
        )
    run.response("Done.").end()
    tcc.flush()

    table = Table(title="end() with a long prompt: caller-thread CPU, medians (µs per step)")
    table.add_column("")
    table.add_column("steps timed", justify="right")
    table.add_column("end()", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("setters + end()", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(
        f"short prompt ({len(SHORT)} chars)",
        str(len(short_all)),
        f"{statistics.median(t[0] for t in short_all):.1f}",
        "1.00x",
        f"{statistics.median(t[1] for t in short_all):.1f}",
        "1.00x",
    )
    for label, rounds, end_us, ratio_end, both_us, ratio_both in rows:
        table.add_row(
            label,
            str(rounds),
            f"{end_us:,.1f}",
            ratio_cell(ratio_end, TARGET),
            f"{both_us:,.1f}",
            ratio_cell(ratio_both, None),
        )
    return Report(
        table,
        checks,
        f"target: end() at most {TARGET}x the short prompt's (1 MB = 1,000,000 chars; each round's "
        f"ratio is to the {SHORT_PER_ROUND} short steps after its long one).",
    )
