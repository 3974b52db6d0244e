"""fork(), multiprocessing and pre-fork servers never duplicate, lose, deadlock or mix spans.

Each case runs in a fresh interpreter (``run_script``) that exports over real OTLP/HTTP to an
``OTLPReceiver`` in this process. Every span is identified by its tcc id (``tcc.run.id`` for runs,
``tcc.step.id`` for steps, ``gen_ai.tool.call.id`` for tool calls) and must arrive exactly once, under
the right parent. Every wait is bounded: a child that does not finish in time is killed and reported
as ``"hung"``, and the script itself runs under a timeout.

The scripts share a small module written next to the test (``tcc_reliability_agent.py``): it is
importable by ``multiprocessing``'s spawned workers, which cannot import code from ``python -c``.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contextcompany._ids import run_span_context
from contextcompany.dev import OTLPReceiver, ReceivedSpan
from tests.e2e.conftest import run_script

SCRIPT_TIMEOUT = 60.0

# --- what the scripts run ------------------------------------------------------------------------------

AGENT_MODULE = '''
"""Shared by the scripts of tests/reliability/test_processes.py."""

import faulthandler
import json
import os
import signal
import sys
import time
import traceback

import contextcompany as tcc


def request(run_id, n_steps=2, tool=True):
    """One agent request: a run with LLM steps, each step calling a tool."""
    with tcc.run(run_id=run_id) as r:
        r.prompt("q").metadata(pid=os.getpid())
        for j in range(n_steps):
            with tcc.step(step_id=f"{run_id}-s{j}") as s:
                s.prompt("p").response("x").model("gpt-4o").tokens(100, 0, 10)
                if tool:
                    with tcc.tool_call("lookup", tool_call_id=f"{run_id}-s{j}-t") as tc:
                        tc.args({"j": j}).result("ok")
        r.response("a")


def agent(worker, runs, flush):
    """What a multiprocessing worker runs: a few requests, then (if asked) a flush."""
    for i in range(runs):
        request(f"{worker}-r{i}")
    if flush and not tcc.flush(10000):
        raise RuntimeError("tcc.flush() timed out")
    return os.getpid()


def wait_child(pid, timeout=20.0):
    """The child's exit code; "hung" (after killing it) when it did not finish in time."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hung"
        time.sleep(0.005)


def child_failed():
    """In a forked child: never fall back into the parent's code after an error."""
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(70)


def flush_and_exit():
    """How a forked child leaves without running the exit hook: flush, then os._exit (3 when its
    spans could not be delivered, with every thread's stack on stderr to show where it is stuck)."""
    try:
        ok = tcc.flush(10000)
        dropped = tcc.stats().spans_dropped
        if not ok or dropped:
            print(f"child {os.getpid()}: flush ok={ok}, dropped={dropped}; threads:", file=sys.stderr)
            faulthandler.dump_traceback(all_threads=True)
    except BaseException:
        child_failed()
    os._exit(0 if ok and dropped == 0 else 3)


def report(**facts):
    print("REPORT " + json.dumps(facts), flush=True)
'''

IMPORTS = """
import os, sys, threading, time
sys.path.insert(0, {path!r})
from tcc_reliability_agent import *
import contextcompany as tcc
"""


@pytest.fixture
def rx() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(port=0) as receiver:
        yield receiver


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    (tmp_path / "tcc_reliability_agent.py").write_text(AGENT_MODULE)
    return tmp_path


def run(
    rx: OTLPReceiver, agent_dir: Path, body: str, env: dict[str, str] | None = None, **subs: str
) -> dict[str, Any]:
    """Run ``body`` in a fresh interpreter exporting to ``rx``; return what it reported."""
    code = textwrap.dedent(IMPORTS).format(path=str(agent_dir)) + textwrap.dedent(body)
    for key, value in subs.items():
        code = code.replace(key, value)
    try:
        result = run_script(
            code, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint, **(env or {})}, timeout=SCRIPT_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:  # pragma: no cover - only when something hangs
        pytest.fail(f"the script did not finish within {SCRIPT_TIMEOUT} s (deadlock?): {exc.stderr!r}")
    assert result.returncode == 0, result.stderr
    facts: dict[str, Any] = {}
    for line in result.stdout.splitlines():
        if line.startswith("REPORT "):
            facts.update(json.loads(line.removeprefix("REPORT ")))
    facts["stderr"] = result.stderr
    return facts


# --- what must have arrived ----------------------------------------------------------------------------

Key = tuple[str, str]


def key(span: ReceivedSpan) -> Key:
    a = span.attributes
    if a.get("gen_ai.operation.name") == "invoke_agent":
        return ("run", str(a["tcc.run.id"]))
    if "tcc.step.id" in a:
        return ("step", str(a["tcc.step.id"]))
    if "gen_ai.tool.call.id" in a:
        return ("tool", str(a["gen_ai.tool.call.id"]))
    return ("other", span.name)


def request_keys(run_id: str, n_steps: int = 2, tool: bool = True) -> set[Key]:
    keys = {("run", run_id)}
    for j in range(n_steps):
        keys.add(("step", f"{run_id}-s{j}"))
        if tool:
            keys.add(("tool", f"{run_id}-s{j}-t"))
    return keys


class Arrived:
    """The spans the receiver got, indexed by tcc id, once every process of the script has exited."""

    def __init__(self, rx: OTLPReceiver, expected: set[Key]) -> None:
        # Every process exported before exiting (the receiver answers only once a batch is recorded),
        # so this is only a bounded safety net; duplicates would already be here.
        try:
            spans = rx.wait_for(lambda sp: {key(s) for s in sp} >= expected, timeout=5)
        except TimeoutError:
            spans = rx.spans  # assert_exactly() says what is missing
        self.spans = spans
        self.by_key: dict[Key, list[ReceivedSpan]] = {}
        for span in spans:
            self.by_key.setdefault(key(span), []).append(span)

    def assert_exactly(self, expected: set[Key]) -> None:
        """Exactly the expected spans arrived, each exactly once."""
        same_span = [ids for ids, n in Counter((s.trace_id, s.span_id) for s in self.spans).items() if n > 1]
        duplicated = {k: len(v) for k, v in self.by_key.items() if len(v) > 1}
        missing = sorted(expected - set(self.by_key))
        unexpected = sorted(set(self.by_key) - expected)
        assert (duplicated, same_span, missing, unexpected) == ({}, [], [], []), (
            f"duplicated: {duplicated}, same span id twice: {same_span}, missing: {missing[:10]} "
            f"({len(missing)}), unexpected: {unexpected[:10]}"
        )

    def one(self, k: Key) -> ReceivedSpan:
        found = self.by_key.get(k, [])
        assert len(found) == 1, f"{k}: {len(found)} span(s)"
        return found[0]

    def assert_request(
        self, run_id: str, n_steps: int = 2, tool: bool = True, parent: ReceivedSpan | None = None
    ) -> ReceivedSpan:
        """A request's spans form the right tree: the run (a root with the trace and span ids derived
        from its run id, or the child of ``parent``), its steps, each step's tool call; all in the run's
        trace, carrying its run id, successful and priced."""
        run = self.one(("run", run_id))
        if parent is None:
            derived = run_span_context(run_id)
            assert run.parent_span_id is None
            assert (int(run.trace_id, 16), int(run.span_id, 16)) == (derived.trace_id, derived.span_id)
        else:
            assert (run.trace_id, run.parent_span_id) == (parent.trace_id, parent.span_id)
        assert run.status_code != 2, run.status_message
        assert run.attributes["tcc.run.llm_calls"] == n_steps
        for j in range(n_steps):
            step = self.one(("step", f"{run_id}-s{j}"))
            assert (step.trace_id, step.parent_span_id) == (run.trace_id, run.span_id), step
            assert step.attributes["tcc.run.id"] == run_id and step.status_code != 2, step.status_message
            assert step.attributes["tcc.cost.source"] == "computed", f"{run_id}-s{j} was not priced"
            if tool:
                call = self.one(("tool", f"{run_id}-s{j}-t"))
                assert (call.trace_id, call.parent_span_id) == (run.trace_id, step.span_id), call
                assert call.attributes["tcc.run.id"] == run_id and call.status_code != 2
        return run


# --- 1. os.fork() after the parent used tcc --------------------------------------------------------------

FORK_AFTER_USE = """
request("parent-warm")
assert tcc.flush(10000)
warm = tcc.stats()
# open at fork time: a run, its step and the step's tool call; queued: 20 requests not yet exported
open_run = tcc.run(run_id="parent-open").prompt("q")
open_step = open_run.step(step_id="parent-open-s0").prompt("p")
open_tool = open_step.tool_call("lookup", tool_call_id="parent-open-s0-t").args({"j": 0})
for i in range(20):
    request(f"parent-queued-{i}")
at_fork = tcc.stats()
report(warm_exported=warm.spans_exported, worker_alive=tcc._pipeline._pipeline.processor._batcher._worker.is_alive(),
       queued_at_fork=at_fork.queue_size)
pid = os.fork()
if pid == 0:
    try:
        for i in range(5):
            request(f"child-{i}")
        # the child knows the parent's run only by its id: its step still joins the run's trace
        tcc.step(run_id="parent-open", step_id="child-on-parent-run").prompt("p").response("x").model(
            "gpt-4o").tokens(100, 0, 10).end()
    except BaseException:
        child_failed()
    if "__EXIT__" == "os._exit":
        flush_and_exit()
    elif "__EXIT__" == "sys.exit":
        sys.exit(0)
    # "end_of_script": the child runs off the end of the script, as the parent would
else:
    code = wait_child(pid)
    open_tool.result("ok").end()
    open_step.response("x").model("gpt-4o").tokens(100, 0, 10).end()
    open_run.response("a").end()
    request("parent-after")
    report(child=code)
"""


@pytest.mark.parametrize("exit_how", ["os._exit", "sys.exit", "end_of_script"])
def test_fork_parent_and_child_each_deliver_their_spans_exactly_once(
    rx: OTLPReceiver, agent_dir: Path, exit_how: str
) -> None:
    """The parent has exported already, has spans queued and a run (with a step and a tool call)
    open when it forks. The child records its own requests and leaves by ``os._exit`` after
    ``tcc.flush()``, by ``sys.exit()``, or by running off the end of the script (both run the exit
    hook in the child). Every span of both processes arrives exactly once; the records open at fork
    time arrive once, as the parent ended them (successful, with their content), not again from the
    child's exit hook or garbage collector; the queued spans are sent by the parent only."""
    facts = run(rx, agent_dir, FORK_AFTER_USE, __EXIT__=exit_how)
    assert facts["child"] == 0, facts["stderr"]
    assert facts["warm_exported"] >= 5 and facts["worker_alive"], facts
    assert facts["queued_at_fork"] > 0, "the scenario needs spans still queued at fork time"

    parent_runs = ["parent-warm", *(f"parent-queued-{i}" for i in range(20)), "parent-after"]
    child_runs = [f"child-{i}" for i in range(5)]
    expected = {k for rid in parent_runs + child_runs for k in request_keys(rid)}
    expected |= request_keys("parent-open", n_steps=1) | {("step", "child-on-parent-run")}
    arrived = Arrived(rx, expected)
    arrived.assert_exactly(expected)
    for run_id in parent_runs + child_runs:
        arrived.assert_request(run_id)
    open_run = arrived.assert_request("parent-open", n_steps=1)  # successful: as the parent ended it
    assert open_run.attributes["gen_ai.output.messages"]
    from_child = arrived.one(("step", "child-on-parent-run"))
    assert (from_child.trace_id, from_child.parent_span_id) == (open_run.trace_id, open_run.span_id)
    pids = {arrived.one(("run", r)).attributes["tcc.metadata.pid"] for r in parent_runs}
    child_pids = {arrived.one(("run", r)).attributes["tcc.metadata.pid"] for r in child_runs}
    assert len(pids) == 1 and len(child_pids) == 1 and pids != child_pids


FORK_INSIDE_WITH_BLOCKS = """
request("parent-warm")
assert tcc.flush(10000)
with tcc.run(run_id="parent-open") as r:
    r.prompt("q")
    with r.step(step_id="parent-open-s0") as s:
        s.prompt("p")
        with s.tool_call("lookup", tool_call_id="parent-open-s0-t") as tc:
            tc.args({"j": 0})
            pid = os.fork()
            if pid == 0:
                try:
                    request("child-0")  # nests under the active span it inherited: the tool call
                except BaseException:
                    child_failed()
                if "__EXIT__" == "sys.exit":
                    sys.exit(0)  # unwinds the parent's with blocks in the child
            else:
                code = wait_child(pid)
            # "end_of_blocks": the child goes on with the parent's code and leaves the blocks normally
            tc.result("ok")
        s.response("x").model("gpt-4o").tokens(100, 0, 10)
    r.response("a")
if pid:
    request("parent-after")
    report(child=code)
"""


@pytest.mark.parametrize("exit_how", ["sys.exit", "end_of_blocks"])
def test_fork_child_leaving_the_parents_with_blocks_does_not_send_them_again(
    rx: OTLPReceiver, agent_dir: Path, exit_how: str
) -> None:
    """The fork happens inside the parent's ``with`` blocks of a run, a step and a tool call. The
    child leaves those blocks (``sys.exit()`` unwinding them, or running on to their end): the records
    belong to the parent, which ends and sends them; the child must not send any of them a second
    time (tcc forgets the inherited records at fork and ignores later calls on them)."""
    facts = run(rx, agent_dir, FORK_INSIDE_WITH_BLOCKS, __EXIT__=exit_how)
    assert facts["child"] == 0, facts["stderr"]
    expected = set().union(
        *(request_keys(r) for r in ("parent-warm", "child-0", "parent-after")),
        request_keys("parent-open", n_steps=1),
    )
    arrived = Arrived(rx, expected)
    arrived.assert_exactly(expected)
    arrived.assert_request("parent-warm")
    arrived.assert_request("parent-after")
    arrived.assert_request("parent-open", n_steps=1)  # sent once, successful: the parent's
    arrived.assert_request("child-0", parent=arrived.one(("tool", "parent-open-s0-t")))


# --- 2. multiprocessing ------------------------------------------------------------------------------------

MULTIPROCESSING = """
import multiprocessing
import threading

def join_pool(pool, timeout):
    pool.close()
    joiner = threading.Thread(target=pool.join, daemon=True)
    joiner.start()
    joiner.join(timeout)
    if joiner.is_alive():
        pool.terminate()
        return "hung"
    return "ok"

if __name__ == "__main__":
    request("parent-before")
    assert tcc.flush(10000)
    flush = __FLUSH__
    ctx = multiprocessing.get_context("__CTX__")
    procs = [ctx.Process(target=agent, args=(f"proc{w}", 2, flush)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    pool = ctx.Pool(2)
    pool_pids = pool.starmap_async(agent, [(f"pool{t}", 2, flush) for t in range(4)]).get(timeout=30)
    pool_exit = join_pool(pool, 30)
    request("parent-after")
    report(codes=codes, pool_pids=pool_pids, pool_exit=pool_exit)
"""


def _check_workers(rx: OTLPReceiver, facts: dict[str, Any]) -> None:
    assert facts["codes"] == [0, 0, 0], facts["stderr"]
    assert facts["pool_exit"] == "ok"
    workers = [f"proc{w}" for w in range(3)] + [f"pool{t}" for t in range(4)]
    worker_runs = [f"{w}-r{i}" for w in workers for i in range(2)]
    expected = {k for rid in ["parent-before", "parent-after", *worker_runs] for k in request_keys(rid)}
    arrived = Arrived(rx, expected)
    arrived.assert_exactly(expected)
    for run_id in ["parent-before", "parent-after", *worker_runs]:
        arrived.assert_request(run_id)  # a root run with its own derived trace, steps and tool calls
    pid_of = {rid: arrived.one(("run", rid)).attributes["tcc.metadata.pid"] for rid in worker_runs}
    process_pids = {pid_of[f"proc{w}-r0"] for w in range(3)}
    assert len(process_pids) == 3, "each Process reports from its own pid"
    assert all(pid_of[f"{w}-r0"] == pid_of[f"{w}-r1"] for w in workers)
    assert {pid_of[f"pool{t}-r0"] for t in range(4)} == set(facts["pool_pids"])
    parent_pid = arrived.one(("run", "parent-before")).attributes["tcc.metadata.pid"]
    assert parent_pid not in set(pid_of.values())


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_multiprocessing_workers_that_flush_deliver_exactly_once(
    rx: OTLPReceiver, agent_dir: Path, context: str
) -> None:
    """Three ``Process`` es and a ``Pool`` of two, started with the ``fork`` or the ``spawn`` context
    from a parent that already exported, each run an agent function that records requests and calls
    ``tcc.flush()`` before returning: every span of every worker, and of the parent, arrives exactly
    once, under the right parent, from the worker's own process."""
    facts = run(rx, agent_dir, MULTIPROCESSING, __CTX__=context, __FLUSH__="True")
    _check_workers(rx, facts)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_multiprocessing_workers_deliver_at_exit_without_flush(
    rx: OTLPReceiver, agent_dir: Path, context: str
) -> None:
    """The same workers, without ``tcc.flush()``: the functions just return, and the worker processes
    exit normally (``Process`` ends, ``Pool.close()`` + ``join()``). "Nothing lost: what is queued is sent
    at interpreter exit": every span still arrives exactly once."""
    facts = run(rx, agent_dir, MULTIPROCESSING, __CTX__=context, __FLUSH__="False")
    _check_workers(rx, facts)


# --- 3. a pre-fork server ----------------------------------------------------------------------------------

PREFORK = """
tcc.configure(service_name="prefork-api")
request("boot")
assert tcc.flush(10000)  # the pipeline is built and the exporter has talked to the collector
boot = tcc.stats()
pids = []
for w in range(4):
    pid = os.fork()
    if pid == 0:
        try:
            for q in range(5):
                request(f"worker{w}-req{q}")
        except BaseException:
            child_failed()
        flush_and_exit()
    pids.append(pid)
codes = [wait_child(pid) for pid in pids]
request("final")
report(codes=codes, boot_exported=boot.spans_exported)
"""


def test_prefork_server_workers_deliver_exactly_once(rx: OTLPReceiver, agent_dir: Path) -> None:
    """A parent configures tcc, serves one request (so the pipeline and the exporter's HTTP connection
    exist), forks four workers that each serve five requests, flush and exit, waits for them, serves
    one more request and exits. Every request arrives exactly once, with the configured service name,
    from the process that served it; nothing of the parent's is sent twice."""
    facts = run(rx, agent_dir, PREFORK)
    assert facts["codes"] == [0, 0, 0, 0], facts["stderr"]
    assert facts["boot_exported"] == 5
    worker_runs = [f"worker{w}-req{q}" for w in range(4) for q in range(5)]
    expected = {k for rid in ["boot", "final", *worker_runs] for k in request_keys(rid)}
    arrived = Arrived(rx, expected)
    arrived.assert_exactly(expected)
    for run_id in ["boot", "final", *worker_runs]:
        arrived.assert_request(run_id)
    assert {s.resource.get("service.name") for s in arrived.spans} == {"prefork-api"}
    pid_of = {rid: arrived.one(("run", rid)).attributes["tcc.metadata.pid"] for rid in ["boot", *worker_runs]}
    assert len({pid_of[f"worker{w}-req0"] for w in range(4)} | {pid_of["boot"]}) == 5
    assert all(pid_of[f"worker{w}-req{q}"] == pid_of[f"worker{w}-req0"] for w in range(4) for q in range(5))


PREFORK_BUSY = """
tcc.configure(service_name="prefork-busy")
request("boot")
assert tcc.flush(10000)
pids, queued = [], []
for rnd in range(6):
    # 150 requests of 4 spans: more than a batch, so the export worker is woken and busy when we fork
    for i in range(150):
        request(f"parent-{rnd}-{i}", n_steps=3, tool=False)
    queued.append(tcc.stats().queue_size)
    pid = os.fork()
    if pid == 0:
        try:
            for q in range(2):
                request(f"worker{rnd}-req{q}")
        except BaseException:
            child_failed()
        flush_and_exit()
    pids.append(pid)
codes = [wait_child(pid, 30) for pid in pids]
request("final")
assert tcc.flush(20000)
stats = tcc.stats()
report(codes=codes, queued=queued, dropped=stats.spans_dropped, failed=stats.exports_failed)
"""


def test_prefork_forks_while_the_export_worker_is_busy(rx: OTLPReceiver, agent_dir: Path) -> None:
    """The parent forks six times, each time right after ending 600 spans (so its export worker is
    draining a full queue over HTTP at the fork). No child hangs, and every span, the parent's 3,600 and
    the workers', arrives exactly once."""
    facts = run(rx, agent_dir, PREFORK_BUSY, env={"OTEL_BSP_MAX_QUEUE_SIZE": "50000"})
    assert facts["codes"] == [0] * 6, facts["stderr"]
    assert facts["dropped"] == 0 and facts["failed"] == 0, facts
    assert any(q > 0 for q in facts["queued"]), "the scenario needs spans queued at fork time"
    parent_runs = [f"parent-{rnd}-{i}" for rnd in range(6) for i in range(150)]
    worker_runs = [f"worker{rnd}-req{q}" for rnd in range(6) for q in range(2)]
    expected = {k for rid in ["boot", "final", *worker_runs] for k in request_keys(rid)}
    expected |= {k for rid in parent_runs for k in request_keys(rid, n_steps=3, tool=False)}
    arrived = Arrived(rx, expected)
    arrived.assert_exactly(expected)
    for run_id in ["boot", "final", *worker_runs]:
        arrived.assert_request(run_id)
    for run_id in parent_runs[::50]:
        arrived.assert_request(run_id, n_steps=3, tool=False)
    assert {s.resource.get("service.name") for s in arrived.spans} == {"prefork-busy"}


FORK_DURING_FIRST_EXPORT = """
request("boot", n_steps=1)  # queued; nothing exported yet
threading.Thread(target=tcc.flush, args=(20000,), daemon=True).start()  # the first export starts now
pids = []
for k in range(15):  # about 0.7 s of forks: the first export takes longer than that
    pid = os.fork()
    if pid == 0:
        try:
            request(f"child-{k}", n_steps=1)
        except BaseException:
            child_failed()
        flush_and_exit()
    pids.append(pid)
    time.sleep(0.04)
codes = [wait_child(pid, 30) for pid in pids]
report(codes=codes)
"""


@pytest.mark.slow
def test_fork_during_the_parents_first_export(rx: OTLPReceiver, agent_dir: Path) -> None:
    """The parent forks 15 times, 40 ms apart, while its export worker does its first export (which
    builds the HTTP exporter and loads the price database, importing modules as it goes). Every child
    still records, prices and delivers its request, exactly once, and exits in time."""
    facts = run(rx, agent_dir, FORK_DURING_FIRST_EXPORT)
    codes = facts["codes"]
    assert codes == [0] * 15, f"children that could not deliver (3) or hung: {codes}\n{facts['stderr']}"
    children = [f"child-{k}" for k in range(15)]
    expected = {k for rid in ["boot", *children] for k in request_keys(rid, n_steps=1)}
    arrived = Arrived(rx, expected)
    arrived.assert_exactly(expected)
    arrived.assert_request("boot", n_steps=1)
    unpriced = [
        rid
        for rid in children
        if arrived.one(("step", f"{rid}-s0")).attributes.get("tcc.cost.source") != "computed"
    ]
    assert unpriced == [], f"{len(unpriced)} of {len(children)} children never price a step: {unpriced}"
    for run_id in children:
        arrived.assert_request(run_id, n_steps=1)


# --- 4. fork while another thread is inside tcc -------------------------------------------------------------

FORK_WHILE_THREAD_RECORDS = """
request("boot")
assert tcc.flush(10000)
stop = threading.Event()
state = {"made": 0, "errors": []}

def busy():
    try:
        while not stop.is_set():
            request(f"thread-{state['made']}", n_steps=1)
            state["made"] += 1
    except BaseException as exc:
        state["errors"].append(repr(exc))

thread = threading.Thread(target=busy, daemon=True)
thread.start()
deadline = time.monotonic() + 10
while state["made"] < 20 and time.monotonic() < deadline:
    time.sleep(0.001)
pids = []
for k in range(10):
    time.sleep(0.015)
    pid = os.fork()
    if pid == 0:
        try:
            request(f"child-{k}")
        except BaseException:
            child_failed()
        flush_and_exit()
    pids.append(pid)
codes = [wait_child(pid, 15) for pid in pids]
stop.set()
thread.join(10)
assert tcc.flush(20000)
stats = tcc.stats()
report(codes=codes, made=state["made"], errors=state["errors"], alive=thread.is_alive(),
       dropped=stats.spans_dropped)
"""


@pytest.mark.parametrize("round_", range(2))
def test_fork_while_another_thread_is_inside_tcc(rx: OTLPReceiver, agent_dir: Path, round_: int) -> None:
    """A parent thread starts and ends runs, steps and tool calls in a tight loop while the main thread
    forks ten times: no lock is inherited in a held state, so every child records and exports its
    request within 15 s; the busy thread's spans each arrive once, none of them re-sent by a child."""
    facts = run(rx, agent_dir, FORK_WHILE_THREAD_RECORDS, env={"OTEL_BSP_MAX_QUEUE_SIZE": "100000"})
    assert facts["codes"] == [0] * 10, f"exit codes {facts['codes']}; {facts['stderr']}"
    assert facts["errors"] == [] and not facts["alive"] and facts["dropped"] == 0, facts
    thread_runs = [f"thread-{i}" for i in range(facts["made"])]
    children = [f"child-{k}" for k in range(10)]
    expected = {k for rid in ["boot", *children] for k in request_keys(rid)}
    expected |= {k for rid in thread_runs for k in request_keys(rid, n_steps=1)}
    arrived = Arrived(rx, expected)
    arrived.assert_exactly(expected)
    for run_id in ["boot", *children]:
        arrived.assert_request(run_id)
    for run_id in thread_runs[:: max(1, len(thread_runs) // 50)]:
        arrived.assert_request(run_id, n_steps=1)
