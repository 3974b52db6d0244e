"""The dev viewer at scale: ``python bench/bench_viewer.py`` (part of ``make bench``).

Builds a SQLite store the way ``python -m contextcompany dev`` does, over real OTLP/HTTP: protobuf
requests of 512 spans each are posted to an ``OTLPReceiver`` on loopback whose ``on_spans`` is the
store, until ``--spans`` spans (default 100,000) are stored: runs of 12 LLM steps and 12 tool calls
with realistic prompts, one run of 200 steps, and spans of no run. Then it measures:

- receiver:  spans per second stored (decode, store, summarise runs), from the client's side, and
             per CPU-second of this process (client included): on a shared machine the wall-clock rate
             measures the neighbours too; target at least 2,000 spans/s;
- runs list: ``GET /api/runs`` (the page's first query), and with each filter and a text search;
             median of ``--repeat`` requests, target under 300 ms;
- run page:  ``GET /api/runs/<id>`` of the 200-step run, median, target under 1 s;
- browser:   when Playwright and /usr/bin/chromium are there, the runs page and the 200-step run page
             loaded and drawn in Chromium (navigation until the rows or the cards are on the page).

Usage: python bench/bench_viewer.py [--spans N] [--repeat R] [--no-browser] [--strict]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from contextcompany import _semconv as sc
from contextcompany.dev import OTLPReceiver, SpanStore, Viewer

TARGET_SPANS_PER_S = 2_000
TARGET_LIST_MS = 300
TARGET_RUN_MS = 1_000
BATCH = 512
STEPS_PER_RUN = 12
BIG_RUN_STEPS = 200
CHROMIUM = "/usr/bin/chromium"
SYSTEM = "You are a support agent for an online shop. Use the tools to look orders up; answer briefly. " * 4
MODELS = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "claude-sonnet-4-5")


def _value(v: object) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def _span(  # noqa: PLR0917 (a span is these seven things)
    trace: bytes, span_id: int, parent: int | None, name: str, start: int, end: int, attrs: dict[str, object]
) -> Span:
    return Span(
        trace_id=trace,
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in attrs.items()],
        status=Status(code=Status.STATUS_CODE_OK),
    )


class Workload:
    """Spans in the order an exporter sends them: a run's children first, the run span last."""

    def __init__(self) -> None:
        self.next_id = 1
        self.t = 1_700_000_000_000_000_000
        self.big_run_id = ""

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def run(self, n: int, steps: int) -> list[Span]:
        trace = os.urandom(16)
        run_span, run_id = self._id(), f"run-{n:07d}"
        start = self.t
        self.t += 5_000_000_000
        model = MODELS[n % len(MODELS)]
        question = f"Where is my order {n}? It was due on Monday and the tracking page shows nothing."
        spans: list[Span] = []
        history = [question]
        t = start
        for i in range(steps):
            step = self._id()
            answer = f"Looking up order {n}, attempt {i}: calling lookup_order."
            spans.append(
                _span(
                    trace,
                    step,
                    run_span,
                    f"chat {model}",
                    t,
                    t + 300_000_000,
                    {
                        sc.OPERATION_NAME: sc.OP_CHAT,
                        sc.RUN_ID: run_id,
                        sc.STEP_ID: f"{run_id}-{i}",
                        sc.REQUEST_MODEL: model,
                        sc.RESPONSE_MODEL: model,
                        sc.SYSTEM_INSTRUCTIONS: sc.text_parts(SYSTEM),
                        sc.INPUT_MESSAGES: json.dumps(
                            [
                                {"role": "user", "parts": [{"type": "text", "content": h}]}
                                for h in history[-6:]
                            ]
                        ),
                        sc.OUTPUT_MESSAGES: sc.text_messages("assistant", answer, "tool_calls"),
                        sc.USAGE_INPUT_TOKENS: 1200 + 40 * i,
                        sc.USAGE_CACHE_READ_INPUT_TOKENS: 1024,
                        sc.USAGE_OUTPUT_TOKENS: 30,
                        sc.COST_USD: 0.0021,
                        sc.COST_SOURCE: sc.COST_SOURCE_COMPUTED,
                    },
                )
            )
            spans.append(
                _span(
                    trace,
                    self._id(),
                    step,
                    "execute_tool lookup_order",
                    t + 310_000_000,
                    t + 360_000_000,
                    {
                        sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL,
                        sc.RUN_ID: run_id,
                        sc.TOOL_NAME: "lookup_order",
                        sc.TOOL_CALL_ARGUMENTS: json.dumps({"order": n, "attempt": i}),
                        sc.TOOL_CALL_RESULT: json.dumps(
                            {"status": "in transit", "carrier": "DHL", "eta": "Friday"}
                        ),
                    },
                )
            )
            history.append(answer)
            t += 400_000_000
        spans.append(
            _span(
                trace,
                run_span,
                None,
                "invoke_agent support",
                start,
                t,
                {
                    sc.OPERATION_NAME: sc.OP_INVOKE_AGENT,
                    sc.RUN_ID: run_id,
                    sc.AGENT_NAME: "support" if n % 5 else "refunds",
                    sc.CONVERSATION_ID: f"session-{n // 4}",
                    sc.INPUT_MESSAGES: sc.text_messages("user", question),
                    sc.OUTPUT_MESSAGES: sc.text_messages(
                        "assistant", f"Order {n} arrives on Friday.", "stop"
                    ),
                    sc.RUN_INPUT_TOKENS: steps * 1500,
                    sc.RUN_CACHE_READ_TOKENS: steps * 1024,
                    sc.RUN_OUTPUT_TOKENS: steps * 30,
                    sc.RUN_COST_USD: steps * 0.0021,
                    sc.RUN_LLM_CALLS: steps,
                },
            )
        )
        return spans

    def loose(self, count: int) -> list[Span]:
        trace = os.urandom(16)
        return [
            _span(
                trace, self._id(), None, "GET /health", self.t, self.t + 1_000_000, {"http.route": "/health"}
            )
            for _ in range(count)
        ]


def _bodies(total: int) -> tuple[list[bytes], str, int]:
    work = Workload()
    pending: list[Span] = []
    bodies: list[bytes] = []
    count = 0
    n = 0

    def flush() -> None:
        request = ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=pending[:BATCH])])]
        )
        bodies.append(request.SerializeToString())
        del pending[:BATCH]

    big_at = total // 2
    big_run_id = ""
    while count < total:
        if not big_run_id and count >= big_at:
            spans = work.run(n, BIG_RUN_STEPS)
            big_run_id = f"run-{n:07d}"
        elif n % 50 == 49:
            spans = work.loose(10)
        else:
            spans = work.run(n, STEPS_PER_RUN)
        n += 1
        pending.extend(spans)
        count += len(spans)
        while len(pending) >= BATCH:
            flush()
    while pending:
        flush()
    return bodies, big_run_id, count


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm (SQLite page cache, connection pool)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _get(url: str) -> Callable[[], object]:
    def fetch() -> object:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()

    return fetch


def _browser(base: str, big_run_id: str, repeat: int) -> list[tuple[str, float, float | None]]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("browser: skipped (playwright is not installed: pip install -e '.[dev]')")
        return []
    if not os.path.exists(CHROMIUM):
        print(f"browser: skipped ({CHROMIUM} is missing: apt-get install -y chromium)")
        return []
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    args += ["--disable-component-update", "--disable-sync", "--no-first-run"]
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        # bypass_csp: Playwright evaluates its wait conditions as strings, which the page's CSP forbids.
        page = browser.new_page(viewport={"width": 1440, "height": 900}, bypass_csp=True)

        def drawn(path: str, mark: str, count: int) -> float:
            # The page's own clock: from the start of navigation to the mark its script sets once the
            # data is fetched and drawn, then one more frame (the browser's layout and paint).
            times = []
            for _ in range(count + 1):
                page.goto(base + path)
                page.wait_for_function(f"performance.getEntriesByName({mark!r}).length > 0", timeout=60_000)
                times.append(
                    page.evaluate(
                        "m => new Promise(done => requestAnimationFrame(() => setTimeout(() => "
                        "done(performance.now()), 0)))",
                        mark,
                    )
                )
            return statistics.median(times[1:])

        out.append(
            (
                "browser: runs page, navigation to drawn",
                drawn("/", "tcc:runs-drawn", repeat),
                float(TARGET_LIST_MS),
            )
        )
        out.append(
            (
                f"browser: {BIG_RUN_STEPS}-step run page, navigation to drawn",
                drawn(f"/runs/{big_run_id}", "tcc:run-drawn", max(3, repeat // 3)),
                float(TARGET_RUN_MS),
            )
        )
        browser.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=100_000, help="spans to store (default 100,000)")
    parser.add_argument("--repeat", type=int, default=15, help="requests per query measured (default 15)")
    parser.add_argument("--no-browser", action="store_true", help="measure the API only")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    bodies, big_run_id, total = _bodies(args.spans)
    with tempfile.TemporaryDirectory() as tmp:
        store = SpanStore(Path(tmp) / "dev.db", max_runs=1_000_000)
        with OTLPReceiver(port=0, on_spans=store.add, max_kept_spans=0, web=Viewer(store).handle) as rx:
            start, cpu = time.perf_counter(), time.process_time()
            for body in bodies:
                _post(rx.traces_url, body)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            rate = total / elapsed
            db_mb = os.path.getsize(Path(tmp) / "dev.db") / 1e6
            print(
                f"stored {total:,} spans ({store.run_count:,} runs) in {elapsed:.1f} s "
                f"over {len(bodies)} requests; database {db_mb:.0f} MB"
            )
            base = rx.endpoint
            rows: list[tuple[str, float, float | None]] = [
                ("receiver: spans stored per second (wall)", rate, None),
                ("receiver: spans stored per CPU-second", total / cpu, None),
            ]
            for label, query in (
                ("runs list", ""),
                ("runs list, status=ok", "?status=ok"),
                ("runs list, agent=refunds", "?agent=refunds"),
                ("runs list, model filter", "?model=claude-sonnet-4-5"),
                ("runs list, session filter", "?session=session-100"),
                ("runs list, text search", "?q=order+1234"),
                ("runs list, search without match", "?q=no+such+words+anywhere"),
            ):
                rows.append(
                    (label, _median_ms(_get(base + "/api/runs" + query), args.repeat), float(TARGET_LIST_MS))
                )
            rows.append(
                (
                    f"run page API, {BIG_RUN_STEPS}-step run",
                    _median_ms(_get(f"{base}/api/runs/{big_run_id}"), args.repeat),
                    float(TARGET_RUN_MS),
                )
            )
            if not args.no_browser:
                rows.extend(_browser(base, big_run_id, args.repeat))
        store.close()

    missed = False
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(this machine: {os.cpu_count()} CPUs, load average {load:.1f} while measuring)")
    print(f"\n{'measure':52} {'value':>12} {'target':>12}")
    for label, value, target in rows:
        if target is None:
            ok = value >= TARGET_SPANS_PER_S
            print(f"{label:52} {value:>10,.0f}/s {'>= 2,000/s':>12}  {'ok' if ok else 'MISSED'}")
        else:
            ok = value < target
            print(f"{label:52} {value:>9.1f} ms {f'< {target:,.0f} ms':>12}  {'ok' if ok else 'MISSED'}")
        missed = missed or not ok
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
