"""A wrong endpoint gives one warning that names the variable, the URL and the fix; stats() count it.

Each case runs the README's first example in a fresh interpreter against a real receiver on loopback
(``FaultyCollector``, which answers 404 to a path other than /v1/traces and can answer any status or
hang), then prints ``tcc.stats()`` after a bounded ``flush()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.reliability.collector import FaultyCollector, spawn

from ._children import FIRST_EXAMPLE

STATS = """
import json as _json
_flushed = tcc.flush(5000)
_s = tcc.stats()
print("STATS " + _json.dumps({"flushed": _flushed, "failed": _s.exports_failed, "dropped": _s.spans_dropped,
                               "exported": _s.spans_exported, "last_error": _s.last_error}), flush=True)
"""


@pytest.fixture
def collector() -> Iterator[FaultyCollector]:
    with FaultyCollector() as c:
        yield c


def run(env: dict[str, str], extra: str = "") -> tuple[dict[str, Any], str]:
    with spawn(FIRST_EXAMPLE + extra + STATS, env) as child:
        stats = child.expect("STATS", timeout=60)
        code = child.wait(30)
    assert code == 0, child.stderr
    assert "Traceback" not in child.stderr, child.stderr
    return stats, child.stderr


def test_a_base_endpoint_ending_in_v1_traces(collector: FaultyCollector) -> None:
    value = collector.endpoint + "/v1/traces"
    stats, stderr = run({"OTEL_EXPORTER_OTLP_ENDPOINT": value})
    # One warning at setup, naming the variable and the fix...
    assert stderr.count("OTEL_EXPORTER_OTLP_ENDPOINT") >= 1
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in stderr  # the variable that takes a full URL
    # ... and the failure names the URL tcc used and what the collector said.
    assert f"{value}/v1/traces" in stderr and "404" in stderr, stderr
    assert stats["flushed"] is False and stats["exported"] == 0
    assert stats["failed"] >= 1 and stats["dropped"] == 2, stats
    assert "404" in stats["last_error"]


def test_a_traces_endpoint_without_the_path(collector: FaultyCollector) -> None:
    value = collector.endpoint + "/"
    stats, stderr = run({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": value})
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in stderr and "404" in stderr, stderr
    assert "/v1/traces" in stderr  # the path it most likely lacks
    assert stats["failed"] >= 1 and stats["dropped"] == 2 and "404" in stats["last_error"], stats


@pytest.mark.parametrize("name", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_a_value_without_a_scheme(collector: FaultyCollector, name: str) -> None:
    value = f"127.0.0.1:{collector.port}"
    stats, stderr = run({name: value})
    setup = [line for line in stderr.splitlines() if name in line and value in line]
    assert len(setup) == 1, stderr  # one warning at setup, naming the variable and its value
    assert "http://" in setup[0]  # the fix
    # Nothing is sent anywhere else instead (not to the default either), and the stats say why.
    assert collector.requests == []
    assert stats["exported"] == 0 and stats["dropped"] == 2 and stats["failed"] >= 1, stats
    assert name in stats["last_error"], stats


def test_a_collector_answering_503(collector: FaultyCollector) -> None:
    collector.status(503)
    stats, stderr = run(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
    )
    assert "503" in stderr and collector.endpoint in stderr
    assert stats["failed"] >= 1 and stats["dropped"] == 2 and "503" in stats["last_error"], stats


def test_a_collector_answering_401(collector: FaultyCollector) -> None:
    collector.status(401)
    stats, stderr = run({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "TCC_API_KEY": "k-123"})
    assert "401" in stderr and "TCC_API_KEY" in stderr, stderr  # the likely fix: the key
    assert "k-123" not in stderr
    assert stats["failed"] >= 1 and stats["dropped"] == 2 and "401" in stats["last_error"], stats


def test_a_collector_that_never_answers(collector: FaultyCollector) -> None:
    collector.hang()
    stats, stderr = run(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
    )
    assert stats["failed"] >= 1 and stats["dropped"] == 2, stats
    assert "timed out" in stats["last_error"].lower() or "timeout" in stats["last_error"].lower(), stats
    assert collector.endpoint in stderr


def test_spans_dropped_at_shutdown_are_counted_with_the_reason(collector: FaultyCollector) -> None:
    collector.hang()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "TCC_SHUTDOWN_TIMEOUT_MILLIS": "500"}
    code_text = FIRST_EXAMPLE + "tcc.shutdown()\n" + STATS.replace("tcc.flush(5000)", "None")
    with spawn(code_text, env) as child:
        stats = child.expect("STATS", timeout=60)
        child.wait(30)
    assert stats["exported"] == 0 and stats["dropped"] == 2, stats
    assert "shutdown" in (stats["last_error"] or ""), stats


def test_recovery_is_logged_once(collector: FaultyCollector) -> None:
    collector.status(503, times=1)  # the first export fails (no retry within a 0.5 s timeout), then ok
    extra = """
tcc.flush(3000)
r2 = tcc.run(); r2.prompt("again"); r2.response("ok").end()
tcc.flush(3000)
"""
    stats, stderr = run(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "0.5"}, extra
    )
    assert stderr.count("exporting spans failed (HTTP 503") == 1, stderr  # one warning for the outage
    assert stderr.count("works again") == 1, stderr
    assert stats["exported"] >= 1
