"""What one recorded LLM call costs, tcc against a raw OpenTelemetry span: ``make bench``.

Both sides export over real OTLP/HTTP protobuf into a collector on loopback (bench/sink.py, in its
own process so its CPU is not counted):

- raw:  the SDK's TracerProvider + BatchSpanProcessor + OTLPSpanExporter; each iteration starts a span
        under a run span, sets the same attributes a fully populated tcc step carries (messages built
        with json.dumps, as hand-written instrumentation would) and ends it.
- tcc:  ``tcc`` set up from the environment exactly as an application gets it; each iteration is
        ``r.step()``, every setter, then ``end()``. Two variants: with ``cost()`` (reported cost) and
        without it (the cost is computed from model and tokens with genai-prices on the export thread).

Measured per step, in rounds that take turns (raw, tcc, tcc, raw, ...):

- caller: CPU time of the calling thread (``time.thread_time``), the part the agent pays;
- all threads: CPU time of the whole process (``time.process_time``) from the first step until the
  flush that exported the round, so the export work is included.

The ratios are the medians of the per-round ratios against the raw round next to them, so a drift of
the machine's speed (shared CPUs, frequency changes) cancels out instead of landing on one side.

Usage: python bench/bench_step.py [--steps N] [--rounds R] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

TARGET = 1.3
PROMPT = "You are a weather agent. The user asked: What is the weather in London? Answer briefly."
RESPONSE = "The weather in London is 15°C and cloudy, with a light breeze from the west (source: Met Office)."
TOOLS = '[{"name": "get_weather", "description": "Get the weather for a location"}]'


def start_sink() -> tuple[subprocess.Popen[str], str]:
    sink = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("sink.py")), "0"], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    port = sink.stdout.readline().strip()
    return sink, f"http://127.0.0.1:{port}"


Side = tuple[Callable[[int], None], Callable[[], object], Callable[[], None]]  # steps, flush, close


def raw_side(endpoint: str) -> Side:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces"))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("raw")
    run_span = tracer.start_span("invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent"})
    parent = trace.set_span_in_context(run_span)
    dumps = json.dumps

    def steps(n: int) -> None:
        for i in range(n):
            span = tracer.start_span(
                "chat",
                context=parent,
                kind=trace.SpanKind.CLIENT,
                attributes={"gen_ai.operation.name": "chat", "tcc.step.id": f"step-{i}", "tcc.run.id": "run"},
            )
            span.set_attributes(
                {
                    "gen_ai.input.messages": dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": PROMPT}]}]
                    ),
                    "gen_ai.output.messages": dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": RESPONSE}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.response.model": "gpt-4o-2024-08-06",
                    "gen_ai.usage.input_tokens": 150 + i % 100 + 50,
                    "gen_ai.usage.cache_read.input_tokens": 50,
                    "gen_ai.usage.output_tokens": 25 + i % 50,
                    "gen_ai.response.finish_reasons": ("stop",),
                    "gen_ai.tool.definitions": TOOLS,
                }
            )
            span.update_name("chat gpt-4o")
            span.end()

    def close() -> None:
        run_span.end()
        provider.shutdown()

    return steps, processor.force_flush, close


def tcc_side(endpoint: str, with_cost: bool) -> Side:
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    import contextcompany as tcc

    run = tcc.run()
    run.prompt("What is the weather in London?")

    def steps(n: int) -> None:
        for i in range(n):
            s = run.step()
            s.prompt(PROMPT)
            s.response(RESPONSE)
            s.model(requested="gpt-4o", used="gpt-4o-2024-08-06")
            s.tokens(prompt_uncached=150 + i % 100, prompt_cached=50, completion=25 + i % 50)
            s.finish_reason("stop")
            s.tool_definitions(TOOLS)
            if with_cost:
                s.cost(0.0012)
            s.end()

    def close() -> None:
        run.end()
        tcc.flush()

    return steps, tcc.flush, close


def measure(steps: Callable[[int], None], flush: Callable[[], object], n: int) -> tuple[float, float]:
    flush()
    cpu0, thread0 = time.process_time_ns(), time.thread_time_ns()
    steps(n)
    thread1 = time.thread_time_ns()
    flush()
    cpu1 = time.process_time_ns()
    return (thread1 - thread0) / n / 1000, (cpu1 - cpu0) / n / 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1500, help="steps per round (default 1500)")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds per side (default 15)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a ratio misses the target")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    sink, endpoint = start_sink()
    try:
        sides = {
            "raw OTel span": raw_side(endpoint),
            "tcc step, cost computed": tcc_side(endpoint, with_cost=False),
            "tcc step, cost reported": tcc_side(endpoint, with_cost=True),
        }
        for steps, flush, _ in sides.values():  # warm up: imports, price look-ups, connections
            measure(steps, flush, 500)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        with console.status("measuring..."):
            names = list(sides)
            for round_number in range(args.rounds):
                order = names if round_number % 2 == 0 else names[::-1]  # no side always goes first
                for name in order:
                    steps, flush, _ = sides[name]
                    results[name].append(measure(steps, flush, args.steps))
        for _, _, close in sides.values():  # deliver everything while the collector is still there
            close()
    finally:
        sink.terminate()
        sink.wait()

    base = "raw OTel span"
    caller = {name: statistics.median(r[0] for r in rs) for name, rs in results.items()}
    total = {name: statistics.median(r[1] for r in rs) for name, rs in results.items()}
    ratios = {
        name: (
            statistics.median(a[0] / b[0] for a, b in zip(rs, results[base], strict=True)),
            statistics.median(a[1] / b[1] for a, b in zip(rs, results[base], strict=True)),
        )
        for name, rs in results.items()
    }
    table = Table(
        title=f"One LLM call: medians over {args.rounds} paired rounds x {args.steps} steps (µs per step)"
    )
    table.add_column("")
    table.add_column("caller thread", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("all threads, export included", justify="right")
    table.add_column("ratio", justify="right")
    missed = False
    for name in sides:
        r1, r2 = ratios[name]
        if name != base:
            missed |= r1 > TARGET or r2 > TARGET

        def mark(ratio: float, is_base: bool = name == base) -> str:
            if is_base:
                return "1.00x"
            return f"[{'green' if ratio <= TARGET else 'red'}]{ratio:.2f}x[/]"

        table.add_row(name, f"{caller[name]:.1f}", mark(r1), f"{total[name]:.1f}", mark(r2))
    console.print(table)
    console.print(
        f"target: at most {TARGET}x on both. Python {sys.version.split()[0]}, {os.cpu_count()} cores."
    )
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
