"""The command line: ``contextcompany dev`` with and without a command, and its errors."""

from __future__ import annotations

import json
import os
import pathlib
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
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from contextcompany import _semconv as sc
from contextcompany.__main__ import main
from contextcompany.dev import OTLPReceiver

from .conftest import Captured

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


@pytest.fixture(autouse=True)
def data_home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """The dev command's default database goes under the test's own directory, never the user's."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


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
    assert err.startswith("contextcompany dev: error: ")  # the program's name first, as argparse's errors


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
        assert f"viewer at {match.group(1)}/" in banner
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


def test_dev_without_the_double_dash_says_where_the_command_goes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["dev", "python", "agent.py"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: contextcompany dev")
    assert "contextcompany dev: error: unrecognized arguments: python agent.py" in err
    assert "put it after --: contextcompany dev -- python agent.py" in err
    with pytest.raises(SystemExit):
        main(["dev", "--colour"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --colour" in err and "put it after" not in err


def test_help_examples_exist_in_the_installed_package(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    monkeypatch.setenv("COLUMNS", "60")  # narrow: examples must still not be wrapped mid-command
    for command in ("dev", "import"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        examples = out[out.index("examples:") :].splitlines()[1:]
        assert examples, out
        for line in examples:
            assert line.startswith("  contextcompany ") or line.startswith("  gunzip"), line
    with pytest.raises(SystemExit):
        main(["dev", "--help"])
    assert "python -m contextcompany.dev.demo" in capsys.readouterr().out
    assert importlib.util.find_spec("contextcompany.dev.demo") is not None  # shipped, not in examples/


def test_dev_warns_when_listening_beyond_loopback(
    capfd: pytest.CaptureFixture[str], data_home: pathlib.Path
) -> None:
    assert main(["dev", "--host", "0.0.0.0", "--port", "0", "--", sys.executable, "-c", "pass"]) == 0
    err = capfd.readouterr().err
    assert "contextcompany dev: warning: listening on 0.0.0.0" in err
    assert "can read the prompts and responses" in err
    # the default database, under the user's data directory
    assert (data_home / "contextcompany" / "dev.db").exists()
    assert f"kept in {data_home / 'contextcompany' / 'dev.db'}" in err


def test_dev_with_a_database_it_cannot_open(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert (
        main(["dev", "--port", "0", "--db", str(blocker / "dev.db"), "--", sys.executable, "-c", "pass"]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("contextcompany dev: error: cannot open the database") and "--db" in err


METRICS_CHILD = textwrap.dedent(
    f"""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("child")
    meter.create_histogram("gen_ai.client.token.usage").record(
        1200, {{"gen_ai.token.type": "input", {sc.REQUEST_MODEL!r}: "gpt-4o"}}
    )
    meter.create_counter("tcc.cost", unit="USD").add(0.0042, {{{sc.REQUEST_MODEL!r}: "gpt-4o"}})
    provider.shutdown()
    """
)


def test_dev_shows_the_metrics_it_received_when_it_stops(capfd: pytest.CaptureFixture[str]) -> None:
    code = main(["dev", "--port", "0", "--db", ":memory:", "--", sys.executable, "-c", METRICS_CHILD])
    err = capfd.readouterr().err
    assert code == 0, err
    assert "kept in memory" in err
    assert "metrics received, by model:" in err
    assert "  gpt-4o: 1,200 input tokens · $0.004200" in err


def test_quiet_prints_no_trees(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "--quiet", "--port", "0", "--db", ":memory:", "--", sys.executable, "-c", CHILD]) == 3
    out, err = capfd.readouterr()
    assert "invoke_agent" not in out and "1 span received; 1 run kept in memory" in err


def test_without_rich_the_command_line_names_the_extra() -> None:
    # rich is the cli extra: blocked here as if it were not installed.
    code = textwrap.dedent(
        """
        import runpy, sys
        sys.modules["rich"] = None
        import contextcompany, contextcompany.dev
        sys.argv = ["contextcompany", "dev", "--port", "0"]
        runpy.run_module("contextcompany", run_name="__main__")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr == (
        "contextcompany: the command line needs the 'cli' extra: pip install 'contextcompany[cli]'\n"
    )


def test_importing_the_sdk_never_imports_rich() -> None:
    code = (
        "import sys, contextcompany, contextcompany.dev, contextcompany.__main__; "
        "from contextcompany.dev import SpanStore, Viewer, OTLPReceiver; "
        "assert 'rich' not in sys.modules, sorted(m for m in sys.modules if m.startswith('rich'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


# --- import -------------------------------------------------------------------------------------


def _line(record: object) -> str:
    return json.dumps(record) + "\n"


GOOD_RUN = {
    "run_id": "cli-import-1",
    "prompt": {"user_prompt": "Weather in Paris?", "system_prompt": "You are a weather agent."},
    "response": "18°C and sunny.",
    "start_time": "2025-01-01T12:00:00Z",
    "end_time": "2025-01-01T12:00:03Z",
    "steps": [{"prompt": "Weather in Paris?", "response": "18°C and sunny.", "model": "gpt-4o"}],
    "tool_calls": [{"tool_name": "get_weather", "args": {"city": "Paris"}, "result": "18°C"}],
}
FAILED_RUN = {"run_id": "cli-import-2", "prompt": None, "status_code": 2, "status_message": "crashed"}


def _import_in_subprocess(
    args: list[str], endpoint: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    # tcc sets up its pipeline once per process, from the environment: a fresh process per import.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "COLUMNS": "200"}
    code = f"import sys; from contextcompany.__main__ import main; sys.exit(main({['import', *args]!r}))"
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_import_sends_the_good_lines_and_reports_the_rest(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text(
        _line(GOOD_RUN)  # 1
        + "\n"  # 2: blank, skipped
        + '{"run_id": "cli-bad-json", "prompt": \n'  # 3
        + _line(["not", "an", "object"])  # 4
        + _line(
            {
                "run_id": "cli-bad-field",
                "prompt": "q",
                "steps": [
                    {"prompt": "p", "response": "r"},
                    {"prompt": "p", "response": "r", "completion_tokens": "25"},
                ],
            }
        )  # 5
        + "   \n"  # 6: blank
        + _line(FAILED_RUN)  # 7
        + _line({"run_id": "cli-unknown", "prompt": "q", "colour": "blue"}),  # 8
        encoding="utf-8",
    )
    with OTLPReceiver(port=0) as rx:
        result = _import_in_subprocess([str(path)], rx.endpoint)
        # tcc.flush() ran before the process exited, and the receiver answers after recording
        spans = rx.spans
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert sorted((s.attributes["tcc.run.id"], s.name, s.status_code) for s in spans) == [
        ("cli-import-1", "chat gpt-4o", 0),
        ("cli-import-1", "execute_tool get_weather", 0),
        ("cli-import-1", "invoke_agent", 0),
        ("cli-import-2", "invoke_agent", 2),
    ]
    run = next(s for s in spans if s.name == "invoke_agent" and s.attributes["tcc.run.id"] == "cli-import-1")
    assert run.start_time_unix_nano == 1_735_732_800_000_000_000
    assert run.end_time_unix_nano == 1_735_732_803_000_000_000
    for child in spans:
        if child.attributes["tcc.run.id"] == "cli-import-1" and child is not run:
            assert child.parent_span_id == run.span_id and child.trace_id == run.trace_id
    assert result.stdout.splitlines() == [
        f"contextcompany import: {path}: 2 runs sent, 4 lines rejected",
        "  line 3: invalid JSON: Expecting value at column 38",
        "  line 4: not a JSON object but an array",
        "  line 5: steps[1].completion_tokens: [TCC] s.tokens(completion=...) expects an int >= 0 or None, "
        "got str '25'",
        "  line 8: send_run() got an unexpected keyword argument 'colour'",
    ]


def test_import_all_good_from_stdin_with_tcc_url(tmp_path: pathlib.Path) -> None:
    with OTLPReceiver(port=0) as rx:
        # --tcc-url wins over the environment, which points nowhere
        result = _import_in_subprocess(
            ["-", "--quiet", "--tcc-url", rx.endpoint],
            "http://127.0.0.1:9",
            stdin=_line(GOOD_RUN) + _line(FAILED_RUN),
        )
        spans = rx.spans
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "contextcompany import: standard input: 2 runs sent, 0 lines rejected\n"
    assert result.stderr == ""
    assert len(spans) == 4
    assert {s.attributes["tcc.run.id"] for s in spans} == {"cli-import-1", "cli-import-2"}


def test_import_reports_the_first_50_rejections(
    captured: Captured, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(_line(n) for n in range(60)) + _line({"prompt": "the one good line"}))
    assert main(["import", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("bad.jsonl: 1 run sent, 60 lines rejected")
    assert out[1:51] == [f"  line {n}: not a JSON object but a number" for n in range(1, 51)]
    assert out[51:] == ["  ... and 10 more rejected lines"]
    assert [s.name for s in captured.spans()] == ["invoke_agent"]


def test_import_unreadable_file(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.jsonl"
    assert main(["import", str(missing)]) == 2
    assert (
        capsys.readouterr().err
        == f"contextcompany import: error: cannot read {missing}: No such file or directory\n"
    )
    assert main(["import", str(tmp_path)]) == 2
    assert "Is a directory" in capsys.readouterr().err


def test_import_warns_when_spans_are_not_delivered(
    captured: Captured,
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import contextcompany.__main__ as cli

    path = tmp_path / "runs.jsonl"
    path.write_text(_line(GOOD_RUN))
    monkeypatch.setattr(captured.exporter, "export", lambda spans: SpanExportResult.FAILURE)
    monkeypatch.setattr(cli, "flush", lambda: captured.processor.force_flush() and False)
    assert main(["import", str(path)]) == 1  # every line was sent, but not delivered
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        f"contextcompany import: {path}: 1 run sent, 0 lines rejected",
        "warning: tcc.flush() timed out: some spans may not have been delivered",
    ]
    # the run's 3 spans, in one export or more, depending on when the export worker woke up
    assert re.fullmatch(
        r"warning: 3 spans could not be delivered \(\d failed exports?; "
        r"last error: the exporter reported a failure\)",
        out[2],
    )
    assert len(out) == 3
