"""What every section of ``make bench`` shares: the sink, the paired-rounds method, the report shape.

A section is a function ``(Settings) -> Report``: it measures, builds a rich table, and lists its
checks (a ratio against its target). ``bench_step.py`` runs the sections and decides the exit code, so
a new section (metrics on, viewer scale, ...) is one more function in one more module, named in
``SECTIONS`` there:

    >>> def my_section(settings: Settings) -> Report:
    ...     results = paired_rounds({"raw": raw, "tcc": tcc}, settings.rounds, settings.steps, warm_up=100)
    ...     ratio = paired_ratios(results, "raw")["tcc"][1]
    ...     return Report(table, [Check("tcc, all threads", ratio, 1.3)], "target: at most 1.3x")

Paired rounds: the sides take turns (a, b, b, a, ...), and a side's ratio is the median of its
per-round ratios against the baseline's round next to it, so a drift of the machine's speed (shared
CPUs, frequency changes) cancels out instead of landing on one side.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table


@dataclass(frozen=True)
class Settings:
    """What the command line asked for; each section scales its own sizes from it."""

    steps: int  # units of work per round (spans, steps), the size of the existing LLM-call section
    rounds: int  # paired rounds per side
    endpoint: str  # the sink's base URL, also tcc's OTEL_EXPORTER_OTLP_ENDPOINT


@dataclass(frozen=True)
class Check:
    """One measured ratio and the most it may be; ``--strict`` fails the run when it is over."""

    name: str
    ratio: float
    target: float

    @property
    def met(self) -> bool:
        return self.ratio <= self.target


@dataclass
class Report:
    """A section's output: its table, its checks, and the line that states the target."""

    table: Table
    checks: list[Check]
    footer: str = ""
    warnings: list[str] = field(default_factory=list)


def start_sink() -> tuple[subprocess.Popen[str], str]:
    """The loopback collector (bench/sink.py) in its own process, so its CPU is not counted."""
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("sink.py")), "0"], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    port = sink.stdout.readline().strip()
    return sink, f"http://127.0.0.1:{port}"


def capture(endpoint: str, send: Callable[[], None]) -> list[bytes]:
    """The OTLP request bodies the sink received while ``send()`` ran (it must flush what it sends)."""
    start = urllib.request.Request(endpoint + "/capture", data=b"", method="POST")
    with urllib.request.urlopen(start, timeout=30) as response:
        response.read()
    send()
    with urllib.request.urlopen(endpoint + "/captured", timeout=30) as response:
        data = response.read()
    bodies, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        bodies.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return bodies


def _nothing(n: int) -> None:
    pass


@dataclass(frozen=True)
class Side:
    """One contestant: ``work(n)`` does n units on the calling thread, ``flush()`` waits until they are
    exported, ``close()`` delivers the rest at the end; ``prepare(n)`` builds the input of the next
    ``work(n)`` outside the timed part."""

    work: Callable[[int], None]
    flush: Callable[[], object]
    close: Callable[[], object]
    prepare: Callable[[int], None] = _nothing


def measure(side: Side, n: int) -> tuple[float, float]:
    """µs per unit: (calling thread's CPU, whole process's CPU from the first unit until the flush that
    exported the last)."""
    side.prepare(n)
    side.flush()
    cpu0, thread0 = time.process_time_ns(), time.thread_time_ns()
    side.work(n)
    thread1 = time.thread_time_ns()
    side.flush()
    cpu1 = time.process_time_ns()
    return (thread1 - thread0) / n / 1000, (cpu1 - cpu0) / n / 1000


Results = dict[str, list[tuple[float, float]]]


def paired_rounds(sides: dict[str, Side], rounds: int, n: int, warm_up: int) -> Results:
    """Each side measured ``rounds`` times with n units, the sides taking turns; first one untimed pass
    of ``warm_up`` units each (imports, price look-ups, connections)."""
    for side in sides.values():
        measure(side, warm_up)
    results: Results = {name: [] for name in sides}
    names = list(sides)
    for round_number in range(rounds):
        order = names if round_number % 2 == 0 else names[::-1]  # no side always goes first
        for name in order:
            results[name].append(measure(sides[name], n))
    return results


def medians(results: Results) -> dict[str, tuple[float, float]]:
    """Per side, the median µs per unit: (caller thread, all threads)."""
    return {
        name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
        for name, rs in results.items()
    }


def paired_ratios(results: Results, base: str) -> dict[str, tuple[float, float]]:
    """Per side, the median of its per-round ratios to ``base``: (caller thread, all threads)."""
    return {
        name: (
            statistics.median(a[0] / b[0] for a, b in zip(rs, results[base], strict=True)),
            statistics.median(a[1] / b[1] for a, b in zip(rs, results[base], strict=True)),
        )
        for name, rs in results.items()
    }


def ratio_cell(ratio: float, target: float | None) -> str:
    """A ratio, green when within its target, red when over, plain when it has none."""
    if target is None:
        return f"{ratio:.2f}x"
    return f"[{'green' if ratio <= target else 'red'}]{ratio:.2f}x[/]"
