"""After ``os.fork()``, a child reports its own metrics only: the parent's are never sent again from the
child (end to end, in a fresh interpreter that forks, against a collector on loopback)."""

from __future__ import annotations

import os
from collections import defaultdict

import pytest

from tests.reliability.collector import FaultyCollector, MetricPoint, spawn

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

# The parent records three runs (one priced step each), so that its export worker has recorded their
# metrics into tcc's own provider, which has exported nothing yet (the interval is a minute); then it
# forks. The child records two runs, flushes and leaves. The parent waits for the test's word (the test
# reads the collector in between: what is there came from the child), then exits, exporting its own.
FORK = """
import json, os, sys
import contextcompany as tcc

def calls(agent, n):
    for _ in range(n):
        r = tcc.run(name=agent)
        r.prompt("q")
        r.step().prompt("p").response("a").model("gpt-4o").tokens(100, 0, 10).end()
        r.response("a").end()

calls("parent", 3)
# The spans only (tcc.flush would export the metrics too): their metrics are recorded on the way.
assert tcc._pipeline._pipeline.processor.force_flush(10_000)
pid = os.fork()
if pid == 0:
    code = 1
    try:
        calls("child", 2)
        code = 0 if tcc.flush(10_000) else 2
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
print("CHILD " + json.dumps({"code": os.waitstatus_to_exitcode(status)}))
sys.stdin.readline()
"""


def _counts(points: list[MetricPoint], name: str) -> dict[str, int]:
    """The histogram count of each agent, summed over every export (each carries what is new)."""
    counts: dict[str, int] = defaultdict(int)
    for p in points:
        if p.name == name:
            counts[p.attributes["gen_ai.agent.name"]] += p.count or 0
    return dict(counts)


def _cost(points: list[MetricPoint]) -> dict[str, float]:
    costs: dict[str, float] = defaultdict(float)
    for p in points:
        if p.name == "tcc.client.cost.usd":
            costs[p.attributes["gen_ai.agent.name"]] += p.value
    return dict(costs)


@pytest.mark.slow
def test_a_forked_child_reports_only_its_own_metrics() -> None:
    with FaultyCollector() as collector:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            # Each export carries what is new since the last, so the sums below count each call once.
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
        }
        with spawn(FORK, env) as parent:
            assert parent.expect("CHILD", timeout=60)["code"] == 0, parent.stderr
            from_child = collector.metrics  # the parent has exported no metrics yet
            parent.send("exit")
            assert parent.wait(60) == 0, parent.stderr
        everything = collector.metrics
    assert "Traceback" not in parent.stderr, parent.stderr

    # The child's exports: its two runs (a run and a step each), and nothing of the parent's three.
    duration, tokens = "gen_ai.client.operation.duration", "gen_ai.client.token.usage"
    assert _counts(from_child, duration) == {"child": 4}
    assert _counts(from_child, tokens) == {"child": 4}  # input and output of two steps
    assert set(_cost(from_child)) == {"child"}
    # Then the parent's, at its exit: every call of both processes counted exactly once.
    assert _counts(everything, duration) == {"parent": 6, "child": 4}
    assert _counts(everything, tokens) == {"parent": 6, "child": 4}
    cost = _cost(everything)
    assert cost["parent"] == pytest.approx(1.5 * cost["child"], rel=1e-9)  # same price per call
