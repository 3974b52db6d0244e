"""What tcc costs against raw OpenTelemetry, section by section: ``make bench``.

Every side exports over real OTLP/HTTP protobuf into a collector on loopback (bench/sink.py, in its own
process so its CPU is not counted); tcc is set up from the environment exactly as an application gets
it. The sections (each a function in a module of bench/; see harness.py for the shared method):

- llm-call (section_step.py): one recorded LLM call, a tcc step against a raw span, metrics on; target
  at most 1.0x on the caller thread, 1.3x on all threads.
- import (section_import.py): ``tcc.send_run`` of a complete run against raw spans carrying the same
  attributes, CPU per span, all threads; target at most 1.3x.
- long-prompt (section_end.py): ``end()`` of a step with a 1 MB and a 10 MB prompt against a short
  prompt, caller thread; target at most 2x.

CPU is measured as the calling thread's (``time.thread_time``, the part the agent pays) and the whole
process's (``time.process_time``) from the first unit until the flush that exported the round. Ratios
are medians of per-round ratios of paired rounds, so a drift of the machine's speed cancels out.

Usage: python bench/bench_step.py [--steps N] [--rounds R] [--section NAME ...] [--strict]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from harness import Report, Settings, start_sink
from section_end import long_prompt_end
from section_import import post_hoc_import
from section_step import llm_call

SECTIONS: dict[str, Callable[[Settings], Report]] = {
    "llm-call": llm_call,
    "import": post_hoc_import,
    "long-prompt": long_prompt_end,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=1500, help="steps (or spans) per round, each section scales from it"
    )
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds per side (default 15)")
    parser.add_argument(
        "--section",
        action="append",
        choices=list(SECTIONS),
        help="run only this section (repeatable; default: all)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a ratio misses its target")
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1")

    from rich.console import Console

    console = Console()
    sink, endpoint = start_sink()
    # Before contextcompany is first used: it reads its settings once.
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    settings = Settings(steps=args.steps, rounds=args.rounds, endpoint=endpoint)
    missed, warned = [], False
    try:
        for name in args.section or list(SECTIONS):
            with console.status(f"measuring {name}..."):
                report = SECTIONS[name](settings)
            console.print(report.table)
            console.print(report.footer)
            for warning in report.warnings:
                console.print(f"[red]warning:[/] {warning}")
                warned = True
            missed += [check for check in report.checks if not check.met]
            console.print()
    finally:
        sink.terminate()
        sink.wait()

    console.print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores.")
    if missed:
        console.print(
            "over target: "
            + "; ".join(f"{c.name} {c.ratio:.2f}x > {c.target}x" for c in missed)
            + ("" if args.strict else " (fails only with --strict)")
        )
    return 1 if (missed or warned) and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
