"""Settings: every OTEL_*/TCC_* variable declared once, parsed once, documented; configure() over them."""

from __future__ import annotations

import ast
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import contextcompany as tcc
from contextcompany import _destinations, _pipeline, _settings

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "contextcompany"
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"


# --- the declarations -------------------------------------------------------------------------------------


def test_declared_variables_are_the_documented_ones() -> None:
    documented = {
        name
        for name in re.findall(r"^\| `([A-Z0-9_]+)` \|", CONFIGURATION_DOC.read_text(), flags=re.M)
        if name.startswith(("OTEL_", "TCC_"))
    }
    declared = _settings.declared()
    assert declared - documented == set(), "declared in _settings but not documented"
    assert documented - declared == set(), "documented but not declared in _settings"


def test_each_variable_is_declared_once_with_a_default_and_a_doc() -> None:
    names = [v.name for v in _settings.VARIABLES] + [p.name for p in _settings.PASSED_THROUGH]
    assert len(names) == len(set(names)), names
    assert all(name.startswith(("OTEL_", "TCC_")) for name in names), names
    for variable in _settings.VARIABLES:
        assert variable.doc and variable.expects, variable
    for passed in _settings.PASSED_THROUGH:
        assert passed.doc and passed.read_by, passed


def _environment_reads(path: Path) -> list[str]:
    """The OTEL_*/TCC_* names a module reads from the environment (writes, like the dev command's, excluded)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        name = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = ast.unparse(node.func)
            if called in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                name = node.args[0].value
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) in ("os.environ", "environ")
            and isinstance(node.slice, ast.Constant)
        ):
            name = node.slice.value
        if isinstance(name, str) and name.startswith(("OTEL_", "TCC_")):
            found.append(name)
    return found


def test_only_settings_reads_the_variables() -> None:
    readers = {
        str(path.relative_to(ROOT)): names
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_settings.py" and (names := _environment_reads(path))
    }
    assert readers == {}


def test_settings_reads_no_variable_by_a_name_of_its_own() -> None:
    # Inside _settings too, a variable is read only through its Variable (os.environ.get(self.name)).
    assert _environment_reads(PACKAGE / "_settings.py") == []


# --- parsing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        (_settings.SDK_DISABLED, "TRUE", True),
        (_settings.SDK_DISABLED, " false ", False),
        (_settings.BSP_MAX_QUEUE_SIZE, "7", 7),
        (_settings.SHUTDOWN_TIMEOUT_MILLIS, "250.5", 250.5),
        (_settings.CAPTURE_CONTENT, "off", False),
        (_settings.CAPTURE_CONTENT, "SPAN_AND_EVENT", True),
        (_settings.VALUE_LENGTH_LIMIT, "5000", 5000),
        (_settings.ENDPOINT, "https://otel.example.com", "https://otel.example.com"),
        (_settings.API_KEY, " tcc_live_1 ", "tcc_live_1"),
        (_settings.API_KEY, "", None),
    ],
)
def test_a_good_value_is_parsed(
    monkeypatch: pytest.MonkeyPatch, variable: _settings.Variable[object], raw: str, expected: object
) -> None:
    monkeypatch.setenv(variable.name, raw)
    assert variable.get() == expected


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        (_settings.SDK_DISABLED, "yes please"),
        (_settings.BSP_MAX_QUEUE_SIZE, "0"),
        (_settings.BSP_SCHEDULE_DELAY, "soon"),
        (_settings.SHUTDOWN_TIMEOUT_MILLIS, "nan"),
        (_settings.SHUTDOWN_TIMEOUT_MILLIS, "-1"),
        (_settings.CAPTURE_CONTENT, "NO_CONTENT"),
        (_settings.VALUE_LENGTH_LIMIT, "-5"),
        (_settings.ENDPOINT, "collector:4318"),
        (_settings.TRACES_ENDPOINT, "ftp://collector/v1/traces"),
        (_settings.ALLOW_INSECURE_HTTP, "1"),
    ],
)
def test_a_bad_value_warns_once_naming_the_variable_and_uses_the_default(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: _settings.Variable[object],
    raw: str,
) -> None:
    monkeypatch.setenv(variable.name, raw)
    with caplog.at_level(logging.WARNING, logger="contextcompany"):
        assert variable.get() == variable.default  # never raises
        assert variable.get() == variable.default
    warnings = [r.getMessage() for r in caplog.records if variable.name in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert repr(raw) in warnings[0] and variable.expects in warnings[0]


def test_each_value_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []

    def parse(text: str) -> int:
        parsed.append(text)
        return int(text)

    variable = _settings.Variable("TCC_TEST_ONLY", parse, 1, "a test", expects="an integer")
    assert variable.get() == 1 and parsed == []  # unset: the default, nothing parsed
    monkeypatch.setenv("TCC_TEST_ONLY", "5")
    assert [variable.get() for _ in range(3)] == [5, 5, 5]
    assert parsed == ["5"]
    monkeypatch.setenv("TCC_TEST_ONLY", "6")  # a new value (as a test or a parent process may set)
    assert variable.get() == 6 and parsed == ["5", "6"]


def test_nothing_is_read_at_import() -> None:
    code = """
        import logging, sys
        logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(message)s")
        import contextcompany
        from contextcompany import _settings
        print("imported", "settings" in vars(_settings))
        print("limit", _settings.settings.value_limit, _settings.settings.capture_content)
    """
    env = {
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "not-a-number",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
    }
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TCC_"))} | env
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "imported False"  # the runtime settings are made at first use, not at import
    assert "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT='not-a-number'" in lines[1]  # warned at that first use
    assert lines[2] == "limit 262144 False"


# --- one reading of TCC_API_KEY and OTEL_EXPORTER_OTLP_ENDPOINT -------------------------------------------


def test_the_key_and_the_endpoint_are_read_one_way(
    fresh_pipeline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TCC_API_KEY", "env-key")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example.com/base/")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    default = _destinations.default_destination()
    assert default == _destinations.Destination("https://otel.example.com/base/v1/traces", "env-key")
    assert tcc.get_api_key() == default.api_key
    assert tcc.get_url("/v1/traces") == default.endpoint
    tcc.configure(api_key="code-key", endpoint="https://code.example.com")  # configure wins, for both
    assert tcc.get_api_key() == _destinations.default_destination().api_key == "code-key"
    assert tcc.get_url("v1/traces") == _destinations.default_destination().endpoint


def test_configure_overrides_the_same_settings(fresh_pipeline: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TCC_SHUTDOWN_TIMEOUT_MILLIS", "100")
    monkeypatch.setenv("TCC_ALLOW_INSECURE_HTTP", "true")
    assert _settings.config.shutdown_millis() == 100.0 and _settings.config.insecure_http_allowed()
    tcc.configure(shutdown_timeout_millis=250, allow_insecure_http=False)
    assert _settings.config.shutdown_millis() == 250 and not _settings.config.insecure_http_allowed()


def test_the_runtime_settings_follow_the_environment_after_a_reset(
    fresh_pipeline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1234")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "no")
    _pipeline.reset_for_tests()
    assert _settings.settings.value_limit == 1234 and _settings.settings.capture_content is False
    assert _settings.settings.run_timeout == _settings.RUN_TIMEOUT_SECONDS and _settings.settings.mask is None


# --- configure() --------------------------------------------------------------------------------------------


def test_configure_before_first_use_builds_the_pipeline(fresh_pipeline: None) -> None:
    extra = InMemorySpanExporter()
    tcc.configure(
        service_name="support-bot",
        endpoint="https://otel.example.com/",
        headers={"x-tenant": "acme"},
        api_key="k1",
        span_processors=[SimpleSpanProcessor(extra)],
        run_timeout=30,
    )
    tcc.configure(shutdown_timeout_millis=250)  # calls add up until the first record
    r = tcc.run()
    r.prompt("q").end()
    pipeline = _pipeline.get()
    assert pipeline.default == _destinations.Destination("https://otel.example.com/v1/traces", "k1")
    assert isinstance(pipeline.provider, TracerProvider)
    assert pipeline.provider.resource.attributes["service.name"] == "support-bot"
    assert pipeline.processor is not None and pipeline.processor._batcher.shutdown_timeout == 0.25
    exporter = pipeline.processor._exporter._get()  # type: ignore[attr-defined]
    assert exporter._endpoint == "https://otel.example.com/v1/traces"
    assert [s.name for s in extra.get_finished_spans()] == ["invoke_agent"]
    assert r._timeout == 30


def test_configure_after_first_use_applies_or_raises_never_half(fresh_pipeline: None) -> None:
    tcc.configure(service_name="a", endpoint="https://one.example.com")
    tcc.run().prompt("q").end()
    tcc.configure(service_name="a", run_timeout=5, capture_content=False)  # same structure: fine
    assert _settings.settings.run_timeout == 5 and _settings.settings.capture_content is False
    with pytest.raises(RuntimeError, match=r"configure\(endpoint=\.\.\.\) must come before the first run"):
        tcc.configure(endpoint="https://two.example.com", run_timeout=99)
    assert _settings.settings.run_timeout == 5  # nothing of the failed call applied
    assert _settings.config.endpoint == "https://one.example.com"


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"service_name": 3}, TypeError, "configure(service_name=...)"),
        ({"endpoint": "collector:4318"}, ValueError, "configure(endpoint=...)"),
        ({"headers": {"a": 1}}, TypeError, "configure(headers=...)"),
        ({"api_key": ""}, TypeError, "configure(api_key=...)"),
        ({"capture_content": "no"}, TypeError, "configure(capture_content=...)"),
        ({"mask": "x"}, TypeError, "configure(mask=...)"),
        ({"run_timeout": -1}, ValueError, "configure(run_timeout=...)"),
        ({"span_processors": [object()]}, TypeError, "configure(span_processors=...)"),
        ({"tracer_provider": object()}, TypeError, "configure(tracer_provider=...)"),
        ({"shutdown_timeout_millis": float("nan")}, ValueError, "configure(shutdown_timeout_millis=...)"),
        ({"api_key": "k", "endpoint": "http://remote.example.com"}, ValueError, "plain http"),
    ],
)
def test_configure_checks_every_argument(
    fresh_pipeline: None, kwargs: dict[str, object], error: type[Exception], names: str
) -> None:
    with pytest.raises(error) as info:
        tcc.configure(**kwargs)  # type: ignore[arg-type]
    assert names in str(info.value)
    assert _settings.config == _settings.Config()
