"""Shared by the end-to-end tests: a real receiver on loopback, and fresh interpreters to run code in."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from contextcompany.dev import OTLPReceiver

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver(port=0) as rx:
        yield rx


def run_script(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with only the given OTEL_/TCC_ settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TCC_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=clean,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )
