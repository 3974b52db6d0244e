"""The seed scenario in real backends: Arize Phoenix and MLflow, each started from its PyPI package.

``make interop`` installs each backend in a venv of its own (``.venv-interop/phoenix``,
``.venv-interop/mlflow``; their dependencies clash with the project's and with each other's), then runs
this module with ``INTEROP_VENVS`` naming that folder. Each server runs on loopback; tcc sends the seed
scenario (tests/interop/seed.py) over OTLP/HTTP exactly as an application would; a reader script run in
the backend's own venv reads the trace back through the backend's own client
(tests/interop/backends/read_*.py) and prints what the backend shows. These tests compare that with
what was sent: the model, the token counts (cache included), the messages, the tool call's parent, the
session and the cost.

Without ``INTEROP_VENVS`` (a plain ``make test``) the module is skipped: the installs take minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.interop.seed import (
    CACHE_MODEL,
    CACHE_TOKENS,
    GIVEN_COST,
    RUN_PROMPT,
    RUN_RESPONSE,
    SEED_MODEL_REQUESTED,
    SEED_MODEL_USED,
    SEED_TOKENS,
    SESSION_ID,
    STEP_PROMPT,
    STEP_RESPONSE,
)

REPO = Path(__file__).resolve().parents[2]
VENVS = os.environ.get("INTEROP_VENVS")
READERS = Path(__file__).parent / "backends"
START_TIMEOUT = 600.0  # a cold start migrates a fresh database; on a busy 2-core machine that takes minutes

pytestmark = [
    pytest.mark.skipif(not VENVS, reason="needs the backends' venvs: run `make interop`"),
    pytest.mark.timeout(900),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Backend:
    name: str
    python: Path
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    traces_url: str
    headers: str  # OTEL_EXPORTER_OTLP_TRACES_HEADERS
    where: str  # the experiment or project the reader looks in
    settings: dict[str, str] = field(default_factory=dict)  # tcc settings a service would set for it

    def wait_healthy(self, path: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError(f"{self.name} did not start in time: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _start_mlflow(venv: Path, workdir: Path) -> Backend:
    port = _free_port()
    log = workdir / "mlflow.log"
    process = subprocess.Popen(
        [
            str(venv / "bin" / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{workdir}/mlflow.db",
            "--default-artifact-root",
            str(workdir / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    # Experiment 0 ("Default") exists in every fresh store; MLflow files OTLP spans by this header.
    # TCC_COST_BACKENDS=mlflow: tcc writes each call's cost where MLflow reads it (mlflow.llm.cost).
    return Backend("mlflow", venv / "bin" / "python", url, process, log, f"{url}/v1/traces",
                   "x-mlflow-experiment-id=0", "0", {"TCC_COST_BACKENDS": "mlflow"})  # fmt: skip


def _start_phoenix(venv: Path, workdir: Path) -> Backend:
    port = _free_port()
    log = workdir / "phoenix.log"
    env = {
        **os.environ,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(workdir),
    }
    process = subprocess.Popen(
        [str(venv / "bin" / "phoenix"), "serve"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    return Backend("phoenix", venv / "bin" / "python", url, process, log, f"{url}/v1/traces", "", "default")


HEALTH = {"mlflow": "/health", "phoenix": "/healthz"}


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, Backend]]:
    assert VENVS
    root = Path(VENVS).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="tcc-interop-"))
    started: dict[str, Backend] = {}
    try:
        # Both start at once: each spends most of its start-up migrating its database.
        for name, start in (("mlflow", _start_mlflow), ("phoenix", _start_phoenix)):
            (workdir / name).mkdir()
            started[name] = start(root / name, workdir / name)
        deadline = time.monotonic() + START_TIMEOUT
        for name, backend in started.items():
            t0 = time.monotonic()
            backend.wait_healthy(HEALTH[name], deadline)
            print(f"{name} healthy after {time.monotonic() - t0:.0f} s more", file=sys.stderr)
        yield started
    finally:
        for backend in started.values():
            backend.stop()
        shutil.rmtree(workdir, ignore_errors=True)


_shown: dict[str, dict[str, Any]] = {}


def shown(backends: dict[str, Backend], name: str) -> dict[str, Any]:
    """Send the seed scenario to one backend with tcc, then read it back with the backend's client."""
    if name in _shown:
        return _shown[name]
    backend = backends[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TCC_"))}
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = backend.traces_url
    if backend.headers:
        env["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = backend.headers
    env.update(backend.settings)
    sent = subprocess.run(
        [
            sys.executable,
            "-c",
            "import contextcompany as tcc; from tests.interop.seed import seed_scenario; "
            "run_id = seed_scenario(); assert tcc.flush(), tcc.stats(); print(run_id)",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    run_id = sent.stdout.strip().splitlines()[-1]
    read = subprocess.run(
        [str(backend.python), str(READERS / f"read_{name}.py"), backend.url, backend.where, run_id],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert read.returncode == 0, read.stderr[-3000:]
    _shown[name] = json.loads(read.stdout.strip().splitlines()[-1])
    return _shown[name]


def span(view: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in view["spans"] if s["name"] == name]
    assert len(found) == 1, [s["name"] for s in view["spans"]]
    return found[0]


BACKENDS = ["phoenix", "mlflow"]
# The model a backend shows for a call: MLflow shows the model that answered; Phoenix shows the model
# asked for (it reads gen_ai.request.model into llm.model_name).
SHOWN_MODEL = {"mlflow": SEED_MODEL_USED, "phoenix": SEED_MODEL_REQUESTED}


@pytest.mark.parametrize("name", BACKENDS)
def test_the_backend_shows_model_and_token_counts(backends: dict[str, Backend], name: str) -> None:
    view = shown(backends, name)
    seed = span(view, "chat gpt-4")
    assert seed["model"] == SHOWN_MODEL[name]
    assert seed["input_tokens"] == SEED_TOKENS["prompt_uncached"] + SEED_TOKENS["prompt_cached"]
    assert seed["cache_read"] == SEED_TOKENS["prompt_cached"]
    assert seed["output_tokens"] == SEED_TOKENS["completion"]
    cached = span(view, f"chat {CACHE_MODEL}")
    t = CACHE_TOKENS
    assert cached["model"] == CACHE_MODEL
    assert cached["input_tokens"] == t["prompt_uncached"] + t["prompt_cached"] + t["cache_write"]
    assert cached["cache_read"] == t["prompt_cached"]
    assert cached["cache_write"] == t["cache_write"]
    assert cached["output_tokens"] == t["completion"]


@pytest.mark.parametrize("name", BACKENDS)
def test_the_backend_shows_the_messages(backends: dict[str, Backend], name: str) -> None:
    view = shown(backends, name)
    run = span(view, "invoke_agent")
    assert run["input_messages"] == [RUN_PROMPT]
    assert run["output_messages"] == [RUN_RESPONSE]
    seed = span(view, "chat gpt-4")
    assert seed["input_messages"] == [STEP_PROMPT]
    assert seed["output_messages"] == [STEP_RESPONSE]


@pytest.mark.parametrize("name", BACKENDS)
def test_the_backend_shows_the_tool_call_under_its_run(backends: dict[str, Backend], name: str) -> None:
    view = shown(backends, name)
    assert span(view, "execute_tool get_weather")["parent_id"] == span(view, "invoke_agent")["id"]


@pytest.mark.parametrize("name", BACKENDS)
def test_the_backend_shows_the_session(backends: dict[str, Backend], name: str) -> None:
    assert shown(backends, name)["session"] == SESSION_ID


@pytest.mark.parametrize("name", BACKENDS)
def test_the_run_carries_the_cost_of_its_steps_in_the_backend(
    backends: dict[str, Backend], name: str
) -> None:
    """What the backend stores for the run is the sum of what it stores for the steps, a given cost
    (``s.cost()`` without tokens) included."""
    view = shown(backends, name)
    steps = [s for s in view["spans"] if "tcc.step.id" in s["tcc"]]
    step_costs = [s["tcc"]["tcc.cost.usd"] for s in steps if "tcc.cost.usd" in s["tcc"]]
    assert GIVEN_COST in step_costs
    run = span(view, "invoke_agent")
    assert run["tcc"]["tcc.run.cost.usd"] == pytest.approx(sum(step_costs), rel=1e-9)


def test_mlflow_shows_tccs_cost(backends: dict[str, Backend]) -> None:
    """MLflow prices spans itself unless they carry ``mlflow.llm.cost``; with tcc's cost written for it,
    what MLflow shows per call and for the trace is tcc's price (a given cost, cache pricing, and models
    MLflow's table lacks included)."""
    view = shown(backends, "mlflow")
    priced = [s for s in view["spans"] if "tcc.cost.usd" in s["tcc"]]
    assert len(priced) == 3
    for s in priced:
        assert s["cost"] == pytest.approx(s["tcc"]["tcc.cost.usd"], rel=1e-9), s["name"]
    assert view["cost"] == pytest.approx(sum(s["tcc"]["tcc.cost.usd"] for s in priced), rel=1e-9)
