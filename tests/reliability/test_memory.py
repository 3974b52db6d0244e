"""Memory stays bounded while the collector is down: the queue drops the oldest spans, nothing else piles up."""

from __future__ import annotations

import pytest

from .collector import FaultyCollector, no_thread_leak, spawn

STEPS = 200_000
MAX_GROWTH_MB = 50.0

# The warm-up builds the pipeline, fills the queue and lets the first export fail, so "before" already holds
# what a running service holds (imports, exporter, a full queue); what 200,000 steps add comes after it.
CHILD = r"""
import dataclasses, gc, json, time
import contextcompany as tcc


def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def step(r):
    r.step().prompt("What is the weather in London?").response("15 C and cloudy.").model("gpt-4o").tokens(
        150, 50, 25
    ).end()


warm = tcc.run()
warm.prompt("warm-up")
for _ in range(4000):
    step(warm)
warm.response("done").end()
deadline = time.monotonic() + 20
while tcc.stats().exports_failed == 0 and time.monotonic() < deadline:
    time.sleep(0.05)

gc.collect()
before = rss_mb()
started = time.monotonic()
r = tcc.run()
r.prompt("load")
for _ in range(STEPS):
    step(r)
r.response("done").end()
seconds = time.monotonic() - started
gc.collect()
after = rss_mb()
print("REPORT", json.dumps({"before": before, "after": after, "seconds": seconds,
                            "stats": dataclasses.asdict(tcc.stats())}), flush=True)
"""


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_200k_steps_with_the_collector_down_grow_rss_by_less_than_50_mb() -> None:
    with no_thread_leak(), FaultyCollector() as collector:
        collector.refuse()  # nothing listens on the port: every export is refused
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2",  # the first export fails within seconds, not 10 s
            "TCC_SHUTDOWN_TIMEOUT_MILLIS": "1000",  # the exit is not what this test measures
        }
        with spawn(CHILD.replace("STEPS", str(STEPS)), env) as child:
            report = child.expect("REPORT", timeout=120)
            assert child.wait(30) == 0, child.stderr
            wall = child.wall
    growth = report["after"] - report["before"]
    stats = report["stats"]
    print(
        f"\nRSS {report['before']:.1f} MB -> {report['after']:.1f} MB (+{growth:.1f} MB) over {STEPS} steps "
        f"in {report['seconds']:.1f} s ({report['seconds'] / STEPS * 1e6:.0f} us/step); child {wall:.1f} s; "
        f"{stats}"
    )
    assert stats["spans_dropped"] >= STEPS, stats  # the collector really was down the whole time
    assert stats["exports_failed"] > 0, stats
    assert growth < MAX_GROWTH_MB, f"RSS grew by {growth:.1f} MB over {STEPS} steps with the collector down"
