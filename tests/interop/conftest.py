"""Shared by the interoperability tests: the fake provider, a receiver, and a service in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contextcompany.dev import OTLPReceiver
from contextcompany.dev._receiver import ReceivedSpan
from tests.fakes.provider import FakeProvider

REPO = Path(__file__).resolve().parents[2]
# The real APIs answer with a dated snapshot of the model asked for.
OPENAI_MODEL_ANSWERED = "gpt-4o-2024-08-06"
ANTHROPIC_MODEL_ANSWERED = "claude-sonnet-4-5-20250929"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(
        openai_response_model=OPENAI_MODEL_ANSWERED, anthropic_response_model=ANTHROPIC_MODEL_ANSWERED
    ) as provider:
        yield provider


@dataclass
class Outcome:
    """One run of the service: what tcc exported for its trace, and what its provider calls reported."""

    calls: list[dict[str, Any]]
    spans: list[ReceivedSpan]
    provider_calls: int
    stderr: str = field(repr=False)

    def run(self) -> ReceivedSpan:
        runs = [s for s in self.spans if s.attributes.get("gen_ai.operation.name") == "invoke_agent"]
        assert len(runs) == 1, [s.name for s in self.spans]
        return runs[0]

    def usage_spans(self) -> list[ReceivedSpan]:
        """Every span that reports token usage (tcc's steps, the instrumentation's, the SDK's own)."""
        return [
            s
            for s in self.spans
            if "gen_ai.usage.input_tokens" in s.attributes or "gen_ai.usage.output_tokens" in s.attributes
        ]


def run_service(fake: FakeProvider, config: dict[str, Any], timeout: float = 120) -> dict[bool, Outcome]:
    """Run tests/interop/app.py in a fresh interpreter against ``fake``; what tcc exported, by run.

    The service makes one run with whole answers and one streamed; the result maps ``stream`` to each.
    """
    before = len(fake.requests)
    with OTLPReceiver(port=0) as rx:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TCC_", "ANTHROPIC_"))}
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = rx.traces_url
        env["FAKE_PROVIDER_URL"] = fake.openai_url if config["api"] == "openai" else fake.anthropic_url
        done = subprocess.run(
            [sys.executable, "-m", "tests.interop.app", json.dumps(config)],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["flushed"], done.stderr
        spans = list(rx.spans)
    requests = fake.requests[before:]
    outcomes: dict[bool, Outcome] = {}
    for run in report["runs"]:
        traces = {s.trace_id for s in spans if s.attributes.get("tcc.run.id") == run["run_id"]}
        assert len(traces) == 1, f"run {run['run_id']} is not in one trace"
        outcomes[run["stream"]] = Outcome(
            calls=run["calls"],
            spans=[s for s in spans if s.trace_id in traces],
            provider_calls=sum(1 for r in requests if r.stream == run["stream"]),
            stderr=done.stderr,
        )
    return outcomes
