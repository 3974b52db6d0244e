"""Delivery promises, each timed against its own bound in a real interpreter with tcc's own pipeline.

Every test runs a fresh interpreter that uses only the public API, configured from the environment, and
exports over real HTTP on loopback: into ``FaultyCollector`` (a collector that accepts and never answers,
for the time bounds) or ``OTLPReceiver`` (for what must arrive). The bounds are chosen so that a break is
told from a pass by a wide margin on a loaded 2-core machine:

- ``flush(timeout_millis)`` returns within its timeout plus a margin smaller than the timeout itself, so a
  flush waiting twice its timeout fails;
- exit waits ``TCC_SHUTDOWN_TIMEOUT_MILLIS=1000``, and the margin (1 s) keeps it far from the 5 s default;
- ``end()`` while an export hangs costs what it costs with no export at all, within 2x plus 1 ms: an
  ``end()`` that stalls 5 ms while an export is in flight fails.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

import pytest

from contextcompany.dev import OTLPReceiver
from tests.e2e.conftest import run_script
from tests.reliability.collector import FaultyCollector, spawn

pytestmark = pytest.mark.timeout(120)


def _child_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **extra}


def _report(stdout: str, tag: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith(tag + " "):
            loaded: dict[str, Any] = json.loads(line[len(tag) + 1 :])
            return loaded
    raise AssertionError(f"no {tag!r} line in the child's output: {stdout!r}")


# --- flush(timeout_millis) is bounded -------------------------------------------------------------------

FLUSH_TIMEOUT_MILLIS = 600
FLUSH_MARGIN_S = 0.45  # under the timeout itself: a flush that waits twice its timeout fails

HUNG_FLUSH = r"""
import json, sys, time
import contextcompany as tcc

r = tcc.run()
r.step().prompt("p").response("r").model("gpt-4o").tokens(10, 0, 5).end()
r.prompt("q").response("a").end()
kicked = tcc.flush(timeout_millis=0)  # the worker starts an export, which hangs
print("KICKED", json.dumps({"flushed": kicked}), flush=True)
sys.stdin.readline()  # the collector holds that export now
took = []
results = []
for timeout in (TIMEOUT, TIMEOUT, 0):
    started = time.monotonic()
    results.append(tcc.flush(timeout_millis=timeout))
    took.append(time.monotonic() - started)
print("REPORT", json.dumps({"took": took, "results": results}), flush=True)
""".replace("TIMEOUT", str(FLUSH_TIMEOUT_MILLIS))


def _in_flight(collector: FaultyCollector) -> None:
    """Wait until an export hangs in the collector (the child's first export imports the HTTP stack, which
    takes a while on a loaded machine)."""
    collector.wait_for_requests(lambda requests: any(r.mode == "hang" for r in requests), timeout=30)


def test_flush_returns_within_its_timeout_with_a_hung_collector() -> None:
    """tcc.flush(timeout_millis) in tcc's own pipeline, with an export hanging in a collector that accepts
    and never answers: it returns False within its timeout (plus a margin smaller than the timeout);
    flush(0) returns at once."""
    with FaultyCollector() as collector:
        collector.hang()
        env = _child_env(collector.endpoint, TCC_SHUTDOWN_TIMEOUT_MILLIS="200")
        with spawn(HUNG_FLUSH, env) as child:
            assert child.expect("KICKED") == {"flushed": False}
            _in_flight(collector)
            child.send("go")
            report = child.expect("REPORT")
            assert child.wait(30) == 0, child.stderr
    first, second, zero = report["took"]
    bound = FLUSH_TIMEOUT_MILLIS / 1000
    print(f"\nflush({FLUSH_TIMEOUT_MILLIS}) took {first:.3f} s and {second:.3f} s; flush(0) {zero:.3f} s")
    assert report["results"] == [False, False, False], report
    for took in (first, second):
        assert took <= bound + FLUSH_MARGIN_S, f"flush({FLUSH_TIMEOUT_MILLIS}) took {took:.3f} s"
        # It gives delivery the time it was given (a flush that gives up at once would return False too).
        assert took >= bound * 0.8, f"flush({FLUSH_TIMEOUT_MILLIS}) returned after only {took:.3f} s"
    assert zero <= FLUSH_MARGIN_S, f"flush(0) took {zero:.3f} s"


# --- bounded exit ---------------------------------------------------------------------------------------

EXIT_BOUND_S = 1.0
EXIT_MARGIN_S = 1.0  # tcc's exit delivery: 2 s at most, far from the 5 s default
EXIT_TEARDOWN_S = 3.0  # the whole exit, the interpreter's teardown included: 4 s, under the 5 s default

HUNG_EXIT = r"""
import atexit, sys, time

# Registered before tcc's own exit hook, so it runs after it (atexit runs last in, first out); threads
# joined at exit are joined before any atexit hook.
atexit.register(lambda: print("DELIVERED", time.monotonic(), flush=True))
import contextcompany as tcc

CONFIGURE
r = tcc.run()
r.prompt("q")
for _ in range(600):  # the first batch (512) goes out at once and hangs; the rest stays queued
    r.step().prompt("p").response("r").model("gpt-4o").tokens(10, 0, 5).end()
r.end()
print("READY", "{}", flush=True)
sys.stdin.readline()  # the collector holds the export now
print("ENDED", time.monotonic(), flush=True)
"""


def _reading(child_lines: list[str], tag: str) -> float:
    (line,) = [line for line in child_lines if line.startswith(tag + " ")]
    return float(line.split()[1])


@pytest.mark.parametrize(
    ("configure", "env"),
    [
        ("", {"TCC_SHUTDOWN_TIMEOUT_MILLIS": "1000"}),
        ("tcc.configure(shutdown_timeout_millis=1000)", {}),
    ],
    ids=["TCC_SHUTDOWN_TIMEOUT_MILLIS", "configure"],
)
def test_exit_waits_the_configured_bound_with_a_hung_collector(configure: str, env: dict[str, str]) -> None:
    """Interpreter exit with an export hanging and spans queued waits the configured 1 s, not the 5 s
    default: from the script's last line to the end of tcc's exit delivery, between 0.8 s and 2 s; the
    process is gone within 4 s (margins for a loaded machine)."""
    with FaultyCollector() as collector:
        collector.hang()
        code = HUNG_EXIT.replace("CONFIGURE", configure)
        with spawn(code, _child_env(collector.endpoint, **env)) as child:
            child.expect("READY")
            _in_flight(collector)
            child.send("exit")
            code_ = child.wait(30)
            exited = time.monotonic()
            assert code_ == 0, child.stderr
            lines, stderr = child.stdout_lines, child.stderr
    ended, delivered = _reading(lines, "ENDED"), _reading(lines, "DELIVERED")
    took, total = delivered - ended, exited - ended
    print(f"\nexit delivery took {took:.3f} s, the whole exit {total:.3f} s (bound {EXIT_BOUND_S:g} s)")
    assert took <= EXIT_BOUND_S + EXIT_MARGIN_S, f"exit took {took:.3f} s with a bound of {EXIT_BOUND_S:g} s"
    # It does try to deliver for that long: exit that drops what is queued at once would lose spans.
    assert took >= EXIT_BOUND_S * 0.8, f"exit gave up after {took:.3f} s of its {EXIT_BOUND_S:g} s"
    # The interpreter's own teardown comes on top; the process is gone well before the 5 s default.
    assert total <= EXIT_BOUND_S + EXIT_TEARDOWN_S, f"the process took {total:.3f} s to exit"
    assert "Traceback" not in stderr, stderr


# --- the caller never waits on the network ----------------------------------------------------------------

STEPS = 300  # per round: fewer than a batch (512), so no export starts during a round
ROUNDS = 4

CALLER = r"""
import json, sys, time
import contextcompany as tcc


def round_(steps):
    r = tcc.run()
    r.prompt("q")
    ready = [r.step().prompt("p").response("r").model("gpt-4o").tokens(10, 0, 5) for _ in range(steps)]
    took = []
    for s in ready:
        started = time.perf_counter_ns()
        s.end()
        took.append(time.perf_counter_ns() - started)
    r.response("a").end()
    return took


# Unmeasured: the first export imports the HTTP stack and the price data.
round_(50)
assert tcc.flush(10_000)
for line in sys.stdin:
    command = line.strip()
    if command == "idle":  # no export in flight: the collector is healthy and everything was delivered
        took = round_(STEPS)
        delivered = tcc.flush(10_000)
        print("IDLE", json.dumps({"took": took, "delivered": delivered}), flush=True)
    elif command == "start":  # an export goes out and hangs; this flush gives up at once
        round_(1)
        print("STARTED", json.dumps({"flushed": tcc.flush(timeout_millis=50)}), flush=True)
    elif command == "hung":  # end() while that export is in flight
        print("HUNG", json.dumps({"took": round_(STEPS)}), flush=True)
    elif command == "quit":
        break
""".replace("STEPS", str(STEPS))


def test_end_costs_the_same_while_an_export_hangs() -> None:
    """The caller's time per end() while an export hangs in flight is at most 2x (plus 1 ms) its time with
    no export at all. A cost of 100 µs or so against a 1 ms slack: an end() that waits on the export, even
    for 5 ms, fails."""
    with FaultyCollector() as collector:
        env = _child_env(collector.endpoint, TCC_SHUTDOWN_TIMEOUT_MILLIS="300")
        with spawn(CALLER, env) as child:
            idle: list[int] = []
            for _ in range(ROUNDS):
                child.send("idle")
                report = child.expect("IDLE")
                assert report["delivered"], "the healthy collector did not get the round"
                idle += report["took"]
            collector.hang()
            child.send("start")
            child.expect("STARTED")
            _in_flight(collector)
            hung: list[int] = []
            for _ in range(ROUNDS):
                child.send("hung")
                hung += child.expect("HUNG")["took"]
            # Still hanging after the rounds: every one of them ran with the export in flight.
            assert collector.mode.name == "hang"
            assert [r.mode for r in collector.requests].count("hang") == 1
            child.send("quit")
            assert child.wait(30) == 0, child.stderr
    idle_median, hung_median = statistics.median(idle) / 1e6, statistics.median(hung) / 1e6
    print(
        f"\nend(): {idle_median * 1000:.0f} µs with no export, {hung_median * 1000:.0f} µs with one hanging"
    )
    assert hung_median <= 2 * idle_median + 1.0, (
        f"end() took {hung_median:.3f} ms (median) with an export in flight, {idle_median:.3f} ms without"
    )


# --- nothing lost at exit -------------------------------------------------------------------------------

AT_EXIT = r"""
import json
import contextcompany as tcc

ids = {"runs": [], "steps": [], "tools": []}
for i in range(12):
    r = tcc.run(name=f"agent-{i}")
    r.prompt(f"question {i}")
    for j in range(40):
        s = r.step().prompt(f"prompt {i}.{j}").response(f"answer {i}.{j}").model("gpt-4o").tokens(10, 2, 5)
        s.end()
        ids["steps"].append(s.step_id)
    tc = r.tool_call("lookup").args({"i": i}).result("ok")
    tc.end()
    ids["tools"].append(tc.tool_call_id)
    r.response(f"answer {i}").end()
    ids["runs"].append(r.run_id)
# Left open: exit ends it (as an error) and delivers it too.
open_run = tcc.run(name="still-open")
open_run.prompt("never finished")
ids["open"] = open_run.run_id
print("IDS", json.dumps(ids), flush=True)
"""


def test_every_span_arrives_when_the_interpreter_exits_without_flush() -> None:
    """A script that never calls flush() and exits normally: every run, step and tool call it ended (more
    than a batch, with a schedule delay longer than the script) and a run left open arrive, each once."""
    with OTLPReceiver(port=0) as receiver:
        # Nothing is exported on a timer while the script runs: what arrives was sent at exit.
        env = _child_env(receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="60000")
        result = run_script(AT_EXIT, env)
        assert result.returncode == 0, result.stderr
        ids = _report(result.stdout, "IDS")
        expected = len(ids["runs"]) + len(ids["steps"]) + len(ids["tools"]) + 1
        spans = receiver.wait_for_spans(expected, timeout=5)
    runs = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]
    steps = [
        s.attributes.get("tcc.step.id") for s in spans if s.attributes.get("gen_ai.operation.name") == "chat"
    ]
    tools = [s.attributes.get("gen_ai.tool.call.id") for s in spans if s.name.startswith("execute_tool")]
    assert len(spans) == expected, f"{len(spans)} spans arrived, {expected} expected"
    assert sorted(steps) == sorted(ids["steps"])
    assert sorted(tools) == sorted(ids["tools"])
    assert sorted(s.attributes["tcc.run.id"] for s in runs) == sorted([*ids["runs"], ids["open"]])
    finished = [s for s in runs if s.attributes["tcc.run.id"] != ids["open"]]
    assert all(s.status_code != 2 for s in finished)
    (left_open,) = [s for s in runs if s.attributes["tcc.run.id"] == ids["open"]]
    assert left_open.status_code == 2, "a run open at exit is ended as an error"
