"""SIGTERM (docker stop, Kubernetes, systemd): what was recorded is delivered, then the process dies of it.

Each case runs an agent in a fresh interpreter exporting over OTLP/HTTP to an ``OTLPReceiver`` in this
process, sends it SIGTERM the way a container platform does, and checks what arrived and how the child
ended (an exit code of -15: killed by signal 15, as its parent must see it).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from contextcompany.dev import OTLPReceiver, ReceivedSpan
from tests.reliability.collector import spawn

from ._children import by_id, terminate_after

TERMINATED = "process terminated by SIGTERM"

# A run with one finished step, then the run left open while the process waits to be stopped. The
# batch delay is the default (5 s): without tcc's handler the step would still be queued at SIGTERM.
AGENT = """
import json, os, signal, sys, time
{before}
import contextcompany as tcc
{after_import}
r = tcc.run(run_id="run-1")
r.prompt("What is the weather in London?")
s = r.step(step_id="step-1")
s.prompt("p").response("15°C and cloudy").model("gpt-4o").tokens(100, 0, 10)
s.end()
{after_record}
handler = signal.getsignal(signal.SIGTERM)
print("READY " + json.dumps({{"handler": getattr(handler, "__qualname__", None) or handler.name}}), flush=True)
time.sleep(60)
print("NOT STOPPED", flush=True)
"""

APP_HANDLER = """
def app_handler(signum, frame):
    print("APP HANDLER RAN", flush=True)
    sys.exit(3)
signal.signal(signal.SIGTERM, app_handler)
"""


@pytest.fixture
def rx() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(port=0) as receiver:
        yield receiver


def agent(before: str = "", after_import: str = "", after_record: str = "") -> str:
    return AGENT.format(before=before, after_import=after_import, after_record=after_record)


def wait_spans(rx: OTLPReceiver, count: int, timeout: float = 5.0) -> list[ReceivedSpan]:
    deadline = time.monotonic() + timeout
    while len(rx.spans) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return rx.spans


def test_a_step_ended_before_sigterm_arrives_and_the_open_run_arrives_as_an_error(rx: OTLPReceiver) -> None:
    with spawn(agent(), {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint}) as child:
        code = terminate_after(child, "READY", delay=1.0)
    assert code == -signal.SIGTERM, (code, child.stderr)  # the parent sees it killed by signal 15
    assert "NOT STOPPED" not in child.stdout_lines
    spans = wait_spans(rx, 2)
    steps, runs = by_id(spans, "tcc.step.id"), by_id(spans, "tcc.run.id")
    step = steps["step-1"]
    assert step.status_code != 2, step.status_message  # ended by the application, 1 s before: as it was
    run = next(s for s in spans if s.attributes.get("gen_ai.operation.name") == "invoke_agent")
    assert run.attributes["tcc.run.id"] == "run-1" and set(runs) == {"run-1"}
    assert run.status_code == 2  # ERROR
    assert TERMINATED in run.status_message
    assert run.attributes["error.type"] == "tcc.terminated"
    assert step.parent_span_id == run.span_id
    assert run.attributes["tcc.run.llm_calls"] == 1  # the roll-up saw the step before the run
    assert "Traceback" not in child.stderr, child.stderr


def test_an_open_step_and_tool_call_end_as_errors_too(rx: OTLPReceiver) -> None:
    code_text = agent(
        after_record='s2 = r.step(step_id="step-2")\ntc = r.tool_call("lookup", tool_call_id="t-1")'
    )
    with spawn(code_text, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint}) as child:
        code = terminate_after(child, "READY", delay=0.2)
    assert code == -signal.SIGTERM, (code, child.stderr)
    spans = wait_spans(rx, 4)
    steps = by_id(spans, "tcc.step.id")
    tool = next(s for s in spans if s.attributes.get("gen_ai.tool.call.id") == "t-1")
    for record in (steps["step-2"], tool):
        assert record.status_code == 2 and record.attributes["error.type"] == "tcc.terminated"
    assert steps["step-1"].status_code != 2


@pytest.mark.parametrize("where", ["before_import", "after_import", "after_first_record"])
def test_the_applications_own_handler_runs_and_is_never_replaced(rx: OTLPReceiver, where: str) -> None:
    code_text = agent(
        before=APP_HANDLER if where == "before_import" else "",
        after_import=APP_HANDLER if where == "after_import" else "",
        after_record=APP_HANDLER if where == "after_first_record" else "",
    )
    with spawn(code_text, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint}) as child:
        ready = child.expect("READY", timeout=60)
        assert ready["handler"] == "app_handler"  # tcc did not put its own in place of it
        child.process.send_signal(signal.SIGTERM)
        code = child.wait(30)
    assert "APP HANDLER RAN" in child.stdout_lines, child.stderr
    assert code == 3, child.stderr  # the application decided how to exit
    # It exited normally, so tcc's exit hook (not its SIGTERM handler) ended the open run.
    run = next(s for s in wait_spans(rx, 2) if s.attributes.get("gen_ai.operation.name") == "invoke_agent")
    assert run.attributes.get("error.type") == "tcc.process_exit", (run, child.stderr)
    assert TERMINATED not in run.status_message


@pytest.mark.parametrize("switch", ["env", "configure"])
def test_the_switch_leaves_sigterm_alone(rx: OTLPReceiver, switch: str) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint}
    if switch == "env":
        env["TCC_HANDLE_SIGTERM"] = "false"
        code_text = agent()
    else:
        code_text = agent(after_import="tcc.configure(handle_sigterm=False)")
    with spawn(code_text, env) as child:
        ready = child.expect("READY", timeout=60)
        assert ready["handler"] == "SIG_DFL"
        child.process.send_signal(signal.SIGTERM)
        code = child.wait(30)
    assert code == -signal.SIGTERM
    time.sleep(0.3)
    # Python's default: nothing runs, what was queued is lost (the docs say so).
    assert rx.spans == []


def test_sigterm_with_nothing_recorded_yet_just_terminates(rx: OTLPReceiver) -> None:
    code_text = """
import json, time
import contextcompany as tcc
print("READY {}", flush=True)
time.sleep(60)
"""
    with spawn(code_text, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint}) as child:
        code = terminate_after(child, "READY", delay=0.1)
    assert code == -signal.SIGTERM
    assert child.stderr == ""


def test_sigterm_delivery_is_bounded_by_the_shutdown_timeout_when_the_collector_hangs() -> None:
    from tests.reliability.collector import FaultyCollector

    with FaultyCollector() as collector:
        collector.hang()
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "TCC_SHUTDOWN_TIMEOUT_MILLIS": "1000"}
        with spawn(agent(), env) as child:
            child.expect("READY", timeout=60)
            child.process.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            code = child.wait(30)
            took = time.monotonic() - sent
    assert code == -signal.SIGTERM
    assert took < 1.0 + 1.5, took  # the bound, plus the time a loaded machine takes to reap a child


def test_sigterm_while_the_main_thread_holds_a_tcc_lock_does_not_deadlock(rx: OTLPReceiver) -> None:
    # The handler runs on the main thread between two bytecodes, maybe while that thread holds one of
    # tcc's locks: ending and delivering happen on a helper thread the handler waits for, within a bound.
    code_text = agent(
        after_record="""
from contextcompany import _pipeline
lock = _pipeline._pipeline.processor._batcher._lock
lock.acquire()
print("LOCKED {}", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(60)
"""
    )
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, "TCC_SHUTDOWN_TIMEOUT_MILLIS": "1000"}
    with spawn(code_text, env) as child:
        child.expect("LOCKED", timeout=60)
        started = time.monotonic()
        code = child.wait(30)
        took = time.monotonic() - started
    assert code == -signal.SIGTERM, child.stderr
    assert took < 1.0 + 1.5, took
