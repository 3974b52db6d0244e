"""A global TracerProvider set after tcc's first record gets one warning saying where tcc's spans go."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contextcompany.dev import OTLPReceiver
from tests.reliability.collector import spawn

CODE = """
import json
import contextcompany as tcc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

with tcc.run() as r:
    r.prompt("first").response("ok")
trace.set_tracer_provider(TracerProvider())
for i in range(3):
    with tcc.run() as r:
        r.prompt(f"later {i}").response("ok")
    tcc.flush(5000)
print("DONE " + json.dumps({"exported": tcc.stats().spans_exported}), flush=True)
"""


@pytest.fixture
def rx() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(port=0) as receiver:
        yield receiver


def test_one_warning_names_where_spans_go_and_the_fix(rx: OTLPReceiver) -> None:
    with spawn(CODE, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint}) as child:
        done = child.expect("DONE", timeout=60)
        code = child.wait(30)
    assert code == 0, child.stderr
    lines = [line for line in child.stderr.splitlines() if "TracerProvider" in line]
    assert len(lines) == 1, child.stderr
    assert rx.traces_url in lines[0]  # where tcc's spans keep going
    assert "before" in lines[0] and "configure(tracer_provider=" in lines[0]  # how to fix the order
    assert done["exported"] == 4  # tcc's spans still arrive, through tcc's own pipeline
    assert len(rx.spans) == 4


def test_no_warning_when_the_provider_comes_first(rx: OTLPReceiver) -> None:
    code_text = CODE.replace('with tcc.run() as r:\n    r.prompt("first").response("ok")\n', "")
    with spawn(code_text, {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.endpoint}) as child:
        child.expect("DONE", timeout=60)
        child.wait(30)
    assert "TracerProvider" not in child.stderr
