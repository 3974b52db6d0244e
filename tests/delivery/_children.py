"""Shared by the delivery tests: child interpreters that record with tcc, and loopback ports.

Each test runs its agent in a fresh interpreter (``tests/reliability/collector.Child``), against a real
receiver on loopback (``OTLPReceiver`` or ``FaultyCollector``) or against a port where nothing listens.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable

from contextcompany.dev import ReceivedSpan
from tests.reliability.collector import Child, _free_port

# The README's first example, as a new user runs it.
FIRST_EXAMPLE = """
import contextcompany as tcc

r = tcc.run()
r.prompt("What is the weather in London?")
s = r.step()
s.prompt("You are a weather agent. The user asked: What is the weather in London?")
s.response("The weather in London is 15°C and cloudy.")
s.model(requested="gpt-4", used="gpt-4-0613").tokens(prompt_uncached=150, prompt_cached=50, completion=25)
s.end()
r.response("It is 15°C and cloudy in London.").end()
"""

# Prints a line the test reads as the moment the script's last line ran (CLOCK_MONOTONIC is the same
# clock in every process of this machine).
LAST_LINE = """
import json as _json, time as _time
print("LAST " + _json.dumps({"at": _time.monotonic()}), flush=True)
"""


def nothing_listening() -> str:
    """A base endpoint on loopback where nothing listens: every connection is refused."""
    return f"http://127.0.0.1:{_free_port()}"


def terminate_after(child: Child, ready: str, delay: float, timeout: float = 30.0) -> int:
    """Wait for the child's ``ready`` line, ``delay`` seconds more, then SIGTERM it; its exit code."""
    child.expect(ready, timeout=60)
    time.sleep(delay)
    child.process.send_signal(signal.SIGTERM)
    return child.wait(timeout)


def by_id(spans: Iterable[ReceivedSpan], key: str) -> dict[str, ReceivedSpan]:
    return {str(s.attributes[key]): s for s in spans if key in s.attributes}
