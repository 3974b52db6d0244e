"""Where a record's spans go: the default destination, or the one a record names with its own
``api_key`` / ``tcc_url``, checked at the call that named it.

    >>> destination("tenant-key", "https://tenant.example.com", "tcc.run")
    Destination('https://tenant.example.com/v1/traces', api_key=set)
    >>> destination(None, None, "tcc.step") is None      # the common case: the default destination
    True

A bearer key is never sent over plain http to a host that is not loopback unless that was allowed
(``configure(allow_insecure_http=True)`` or ``TCC_ALLOW_INSECURE_HTTP=true``). The URL syntax and that
rule are ``_settings``'s (it checks the variables and configure() with them); this module applies them
to destinations. Everything here runs on the caller's thread, at the call that names a destination.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _settings
from ._settings import check_url, traces_endpoint

__all__ = [
    "Destination",
    "check_api_key",
    "check_url",
    "default_destination",
    "destination",
    "get_api_key",
    "get_url",
    "insecure_reason",
    "traces_endpoint",
]


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a tcc-owned exporter sends: a full OTLP traces URL and the bearer key, if any."""

    endpoint: str
    api_key: str | None
    # Where the endpoint came from, for messages ("OTEL_EXPORTER_OTLP_ENDPOINT", "configure(endpoint=...)",
    # "tcc.run(tcc_url=...)", "the default"); not part of what makes two destinations the same.
    source: str = field(default="", compare=False)

    def __repr__(self) -> str:  # never print the key
        return f"Destination({self.endpoint!r}, api_key={'set' if self.api_key else None})"


def default_destination(config: _settings.Config | None = None) -> Destination:
    """Where spans without a destination of their own go, per ``config`` (default: the current one)."""
    config = config or _settings.config
    return Destination(config.traces_url(), config.key(), config.traces_source())


def insecure_reason(destination: Destination, config: _settings.Config | None = None) -> str | None:
    """Why sending to ``destination`` would expose its key, if it would: a bearer key over plain http to
    a host that is not loopback, unless allowed (``TCC_ALLOW_INSECURE_HTTP=true``, or configure)."""
    allowed = (config or _settings.config).insecure_http_allowed()
    return _settings.exposure(destination.endpoint, destination.api_key, allowed)


def check_api_key(api_key: str | None, call: str) -> None:
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise TypeError(f"[TCC] {call}(api_key=...) expects a non-empty str or None")


def destination(api_key: str | None, tcc_url: str | None, call: str) -> Destination | None:
    """The destination a record with its own ``api_key`` / ``tcc_url`` goes to (None: the default).
    Checks both, and refuses at the call to send a key where it would be exposed."""
    if api_key is None and tcc_url is None:
        return None  # the common case, on every step and tool call: nothing to check
    check_api_key(api_key, call)
    check_url(tcc_url, f"{call}(tcc_url=...)")
    default = default_destination()
    dest = Destination(
        traces_endpoint(tcc_url) if tcc_url is not None else default.endpoint,
        api_key if api_key is not None else default.api_key,
        f"{call}(tcc_url=...)" if tcc_url is not None else default.source,
    )
    reason = insecure_reason(dest)
    if reason is not None:
        raise ValueError(f"[TCC] {call}(api_key=..., tcc_url=...): {reason}")
    return dest


# --- kept from contextcompany 2.0.0, whose __all__ exported them ------------------------------------


def get_api_key(api_key: str | None = None) -> str:
    """The API key tcc sends as ``Authorization: Bearer``: ``api_key``, else ``TCC_API_KEY``.

    Raises ValueError when neither is set (as in 2.0.0). tcc itself sends without a key then.

    >>> get_api_key("tcc_live_123")
    'tcc_live_123'
    """
    key = api_key or _settings.config.key()
    if not key:
        raise ValueError("[TCC] No API key: set the TCC_API_KEY environment variable or pass api_key=...")
    return key


def get_url(path: str, api_key: str | None = None) -> str:
    """``path`` joined to the OTLP base endpoint (``configure(endpoint=)``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
    else the OTLP default). ``api_key`` is accepted for compatibility with 2.0.0 and changes nothing.

    >>> get_url("/v1/traces")
    'http://localhost:4318/v1/traces'
    """
    return _settings.config.base_url() + "/" + path.lstrip("/")
