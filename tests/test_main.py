"""The command line: ``contextcompany dev`` with and without a command, and its errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from contextcompany import _semconv as sc
from contextcompany.__main__ import main

# A program exporting one run span to wherever the environment points, then exiting with 3.
CHILD = textwrap.dedent(
    f"""
    import os, sys
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    assert endpoint == os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/traces", endpoint
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint from the environment
    attributes = {{
        {sc.OPERATION_NAME!r}: {sc.OP_INVOKE_AGENT!r},
        {sc.RUN_ID!r}: "cli-run-7",
        {sc.INPUT_MESSAGES!r}: {sc.text_messages("user", "hello from the child")!r},
        {sc.RUN_COST_USD!r}: 0.0125,
    }}
    tracer = provider.get_tracer("child")
    with tracer.start_as_current_span("invoke_agent child_agent", attributes=attributes):
        print("child ran against", endpoint, flush=True)
    provider.shutdown()  # flushes: the run reaches the receiver before the program exits
    sys.exit(3)
    """
)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_dev_runs_a_command_and_prints_its_run(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An inherited endpoint must not redirect the command away from the receiver.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    monkeypatch.setenv("COLUMNS", "200")
    code = main(["dev", "--port", "0", "--", sys.executable, "-c", CHILD])
    out, err = capfd.readouterr()
    assert code == 3
    assert "child ran against http://127.0.0.1:" in out
    assert "invoke_agent child_agent" in out and "run cli-run-7" in out
    assert "prompt    hello from the child" in out and "$0.012500" in out
    assert re.search(r"exited with code 3; 1 run printed, 1 span received", err)
    assert "Traceback" not in err


def test_dev_returns_the_command_exit_code(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "--port", "0", "--", sys.executable, "-c", "pass"]) == 0
    assert "0 runs printed, 0 spans received" in capfd.readouterr().err


def test_port_taken(taken_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "--port", str(taken_port), "--", sys.executable, "-c", "raise SystemExit(1)"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"port {taken_port}" in err and "already in use" in err and "--port" in err


def test_command_not_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "--port", "0", "--", "contextcompany-no-such-command"]) == 127
    assert "command not found: contextcompany-no-such-command" in capsys.readouterr().err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "dev" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["dev", "--"])
    assert info.value.code == 2
    assert "expected a command after --" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["dev", "--port", "70000"])
    assert "between 0 and 65535" in capsys.readouterr().err


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_dev_serves_until_interrupted(stop_signal: signal.Signals) -> None:
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "contextcompany", "dev", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        match = re.search(r"OTEL_EXPORTER_OTLP_ENDPOINT=(http://127\.0\.0\.1:\d+)", banner)
        assert match, banner
        provider = TracerProvider(shutdown_on_exit=False)
        exporter = OTLPSpanExporter(endpoint=match.group(1) + "/v1/traces", timeout=5)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        attributes = {sc.OPERATION_NAME: sc.OP_INVOKE_AGENT, sc.RUN_ID: "served-run"}
        with provider.get_tracer("t").start_as_current_span("invoke_agent served", attributes=attributes):
            pass
        provider.shutdown()
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "invoke_agent served" in out and "served-run" in out
    assert "stopped; 1 run printed, 1 span received" in err
    assert "Traceback" not in err
