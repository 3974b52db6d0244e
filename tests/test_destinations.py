"""Destinations: the traces URL, the key and URL checks, and a key never sent where it is exposed."""

from __future__ import annotations

import pytest

import contextcompany as tcc
from contextcompany import _destinations, _pipeline, _settings


def test_traces_endpoint() -> None:
    assert _destinations.traces_endpoint("http://c:4318") == "http://c:4318/v1/traces"
    assert _destinations.traces_endpoint("http://c:4318/") == "http://c:4318/v1/traces"
    assert _destinations.traces_endpoint("https://c/otlp/v1/traces") == "https://c/otlp/v1/traces"
    assert _destinations.traces_endpoint("https://c/otlp") == "https://c/otlp/v1/traces"


def test_2_0_0_helpers_are_still_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TCC_API_KEY", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    with pytest.raises(ValueError, match="TCC_API_KEY"):
        tcc.get_api_key()
    assert tcc.get_api_key("k") == "k"
    monkeypatch.setenv("TCC_API_KEY", "env-key")
    assert tcc.get_api_key() == "env-key"
    assert tcc.get_url("/v1/traces") == "http://localhost:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example.com/")
    assert tcc.get_url("v1/traces", api_key="k") == "https://otel.example.com/v1/traces"


@pytest.mark.parametrize(
    ("kwargs", "allowed"),
    [
        ({"api_key": "k", "tcc_url": "http://collector.example.com:4318"}, False),
        ({"api_key": "k", "tcc_url": "http://10.0.0.7:4318"}, False),
        ({"api_key": "k", "tcc_url": "https://collector.example.com"}, True),
        ({"api_key": "k", "tcc_url": "http://127.0.0.1:4318"}, True),
        ({"api_key": "k", "tcc_url": "http://localhost:4318"}, True),
        ({"api_key": "k", "tcc_url": "http://[::1]:4318"}, True),
        ({"tcc_url": "http://collector.example.com"}, True),  # no key, nothing to expose
    ],
)
def test_a_key_is_never_sent_over_plain_http_to_a_remote_host(
    fresh_pipeline: None, kwargs: dict[str, str], allowed: bool
) -> None:
    if allowed:
        tcc.run(**kwargs).prompt("q").end()
    else:
        with pytest.raises(
            ValueError, match=r"tcc\.run\(api_key=\.\.\., tcc_url=\.\.\.\): an API key would be sent"
        ):
            tcc.run(**kwargs)


def test_insecure_http_can_be_allowed_explicitly(fresh_pipeline: None) -> None:
    url = "http://collector.internal:4318"
    with pytest.raises(ValueError, match="an API key would be sent over plain http"):
        tcc.run(api_key="k", tcc_url=url)
    tcc.configure(allow_insecure_http=True)
    r = tcc.run(api_key="k", tcc_url=url)
    r.prompt("q").end()
    # The run goes to that destination with that key, and the exporter made for it is a real one.
    assert r._dest == _destinations.Destination(url + "/v1/traces", "k")
    assert _destinations.insecure_reason(r._dest) is None
    exporter = _pipeline._exporter(r._dest, _settings.config)
    assert not isinstance(exporter, _pipeline._Refusing)
    exporter.shutdown()
