"""The content switch the GenAI instrumentations share, read as they read it (issue 9, item 5).

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` takes NO_CONTENT / SPAN_ONLY / EVENT_ONLY /
SPAN_AND_EVENT in current instrumentations (any case), and true/false in older ones. tcc writes content
on spans only, so it captures for SPAN_ONLY, SPAN_AND_EVENT and true, and not for NO_CONTENT, EVENT_ONLY
or false; any other value is a mistake it names once, and then it keeps its default (capture), as every
other variable tcc reads does.
Each value needs a fresh interpreter: the variable is read once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET = "my card number is 4111"
VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

SCRIPT = """
import json, logging
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import contextcompany as tcc

logging.basicConfig(level=logging.WARNING, format="%(message)s")
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tcc.configure(tracer_provider=provider)
for _ in range(2):  # twice: a warning about the value comes once
    tcc.run().prompt(SECRET).response("ok").end()
provider.force_flush()
print(json.dumps([dict(s.attributes or {}) for s in exporter.get_finished_spans()]))
""".replace("SECRET", repr(SECRET))

CAPTURES = ["SPAN_ONLY", "span_and_event", "Span_And_Event", "true", "TRUE"]
WITHHOLDS = ["NO_CONTENT", "no_content", "EVENT_ONLY", "event_only", "false", "False"]


def _run(values: list[str]) -> dict[str, subprocess.CompletedProcess[str]]:
    """One interpreter per value, all at once."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TCC_"))}
    running = {
        value: subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            env={**base, VARIABLE: value},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for value in values
    }
    done = {}
    for value, process in running.items():
        out, err = process.communicate(timeout=120)
        done[value] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        assert process.returncode == 0, err
    return done


def _exported_text(result: subprocess.CompletedProcess[str]) -> str:
    return json.dumps(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_values_instrumentations_use_switch_content_on_and_off() -> None:
    results = _run(CAPTURES + WITHHOLDS)
    for value in CAPTURES:
        assert SECRET in _exported_text(results[value]), value
    for value in WITHHOLDS:
        assert SECRET not in _exported_text(results[value]), value
    for value, result in results.items():
        assert value not in result.stderr, f"{value} is a known value and needs no warning: {result.stderr}"


def test_an_unknown_value_is_named_once_and_keeps_the_default() -> None:
    result = _run(["span-only-please"])["span-only-please"]
    assert SECRET in _exported_text(result)
    assert result.stderr.count("span-only-please") == 1, result.stderr
    assert VARIABLE in result.stderr


@pytest.mark.parametrize("value", ["", "   "])
def test_unset_or_blank_captures_as_before(value: str) -> None:
    assert SECRET in _exported_text(_run([value])[value])
