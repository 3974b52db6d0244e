"""Every setting tcc reads, declared once: its environment variable, type, default and what it sets.

    >>> ENDPOINT.get()                       # OTEL_EXPORTER_OTLP_ENDPOINT, parsed, or its default
    'http://localhost:4318'
    >>> configure(service_name="support-bot")  # code overrides the same settings
    >>> settings.capture_content               # the runtime settings records read on every end()
    True

Three kinds of setting live here, each in one place:

- ``VARIABLES``: the ``OTEL_*`` and ``TCC_*`` variables tcc parses itself. Each is read from the
  environment where it is used (never at import); each distinct value is parsed once, and a value that
  does not parse gets one warning naming the variable and falls back to the default: a bad variable never
  raises in the caller. ``PASSED_THROUGH`` names those the OpenTelemetry SDK or the OTLP exporter read for
  tcc, declared here so the documented list and the declared one can be compared (tests/test_settings.py).
- ``config``: what ``configure()`` set that decides how the pipeline is built (endpoint, key, ...). Fixed
  once the first record built the pipeline (``freeze()``, called by ``_pipeline``).
- ``settings``: what records read on every start and end (run timeout, content capture, mask, value
  limit). Plain attributes, so the caller's thread pays one attribute read; taken from the environment at
  first use, then changed only by ``configure()``.

The URL checks are here too, because they check both the variables and ``configure()``'s arguments;
``_destinations`` builds on them. Nothing here imports another tcc module above ``_checks`` / ``_diag``.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.sdk.trace import SpanProcessor as SdkSpanProcessor

from . import _checks as checks
from . import _diag as diag
from . import _forksafe as forksafe

T = TypeVar("T")

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


# --- URLs: the syntax accepted, and the one exposure refused ----------------------------------------------


def is_http_url(url: str) -> bool:
    """An http:// or https:// URL with a host (and a port from 0 to 65535, if any)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number from 0 to 65535
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. "http://[" or a port out of range
        return False


def check_url(url: str | None, where: str) -> None:
    """Raise at the call that passed a malformed URL (``where`` names it, e.g. ``tcc.run(tcc_url=...)``)."""
    if url is None:
        return
    if not isinstance(url, str):
        raise TypeError(f"[TCC] {where} expects a str URL or None, got {type(url).__name__}")
    if not is_http_url(url):
        raise ValueError(f"[TCC] {where} expects an http:// or https:// URL, got {checks.show(url)}")


def traces_endpoint(url: str) -> str:
    """The OTLP traces URL for a base or full URL: used as is when it ends in ``/v1/traces``, else that
    is appended, like ``OTEL_EXPORTER_OTLP_ENDPOINT``.

    >>> traces_endpoint("https://collector.example.com:4318")
    'https://collector.example.com:4318/v1/traces'
    """
    url = url.rstrip("/")
    return url if url.endswith("/v1/traces") else url + "/v1/traces"


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback


def exposure(endpoint: str, api_key: str | None, allowed: bool) -> str | None:
    """Why sending ``api_key`` to ``endpoint`` would expose it, if it would: a bearer key over plain http
    to a host that is not loopback, unless ``allowed``.

    >>> exposure("http://10.0.0.7:4318/v1/traces", "k", allowed=False)
    'an API key would be sent over plain http to 10.0.0.7, ...'
    """
    if api_key is None:
        return None
    parts = urlsplit(endpoint)
    if parts.scheme != "http" or is_loopback(parts.hostname or "") or allowed:
        return None
    return (
        f"an API key would be sent over plain http to {parts.hostname}, where anyone on the path can read "
        "it: use https, or allow it with configure(allow_insecure_http=True) or "
        "TCC_ALLOW_INSECURE_HTTP=true"
    )


# --- the environment variables ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cached(Generic[T]):
    raw: str
    value: T


class Variable(Generic[T]):
    """One environment variable tcc reads: its name, parser, default, and what it sets.

    ``parse`` gets the value stripped of surrounding blanks (an empty value means the default) and raises
    ValueError when it cannot use it; ``expects`` says what it wanted, for the warning.

    >>> QUEUE = Variable("OTEL_BSP_MAX_QUEUE_SIZE", _positive_int, 2048, "spans queued", expects="...")
    >>> QUEUE.get()
    2048
    """

    __slots__ = ("_cached", "default", "doc", "expects", "instead", "name", "parse")

    def __init__(
        self,
        name: str,
        parse: Callable[[str], T],
        default: T,
        doc: str,
        *,
        expects: str,
        instead: str | None = None,
    ) -> None:
        self.name = name
        self.parse = parse
        self.default = default
        self.doc = doc
        self.expects = expects
        self.instead = instead  # what the warning says happens with a bad value (default: the default)
        self._cached: _Cached[T] | None = None

    def get(self) -> T:
        """The variable's value now; each distinct raw value is parsed (and warned about) once."""
        raw = os.environ.get(self.name)
        if raw is None:
            return self.default
        cached = self._cached
        if cached is not None and cached.raw == raw:
            return cached.value
        value = self._parse(raw)
        self._cached = _Cached(raw, value)  # one reference store: safe to race, both parse alike
        return value

    def invalid(self) -> str | None:
        """The variable's raw value when it is set but does not parse (it was warned about), else None."""
        raw = os.environ.get(self.name)
        if raw is None or not raw.strip():
            return None
        try:
            self.parse(raw.strip())
        except ValueError:
            return raw
        return None

    def _parse(self, raw: str) -> T:
        text = raw.strip()
        if not text:
            return self.default
        try:
            return self.parse(text)
        except ValueError:
            diag.warn_once(
                f"env {self.name}={raw!r}",
                "contextcompany: %s=%r is not %s; %s",
                self.name,
                raw,
                self.expects,
                self.instead or f"using the default ({self.default})",
            )
            return self.default

    def __repr__(self) -> str:
        return f"Variable({self.name!r}, default={self.default!r})"


@dataclass(frozen=True, slots=True)
class PassedThrough:
    """A variable tcc does not parse, honoured by the library that does (declared so it is documented)."""

    name: str
    read_by: str
    doc: str


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ValueError(text)


# The values current GenAI instrumentations (opentelemetry-util-genai) give this variable, and true/false
# (with their kin) as older ones and tcc 3.0 read it. tcc writes content on spans only, never as events:
# it captures when spans are to carry content (SPAN_ONLY, SPAN_AND_EVENT), and not for EVENT_ONLY.
_CAPTURE_OFF: Final = frozenset({"false", "0", "no", "off", "no_content", "event_only"})
_CAPTURE_ON: Final = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})


def _capture(text: str) -> bool:
    lowered = text.lower()
    if lowered in _CAPTURE_OFF:
        return False
    if lowered in _CAPTURE_ON:
        return True
    raise ValueError(text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _millis(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also catches nan
        raise ValueError(text)
    return value


def _metrics_exporter(text: str) -> bool:
    """OTEL_METRICS_EXPORTER: whether tcc builds its own OTLP metrics pipeline. ``none`` turns it off;
    ``otlp`` is the one exporter tcc builds; a list without it (``prometheus``, ``console``) is told once
    and turns tcc's own off (a global MeterProvider with that exporter gets tcc's instruments instead)."""
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    unsupported = sorted(names - {"otlp", "none"})
    if unsupported:
        diag.warn_once(
            f"env OTEL_METRICS_EXPORTER={text!r}",
            "contextcompany: OTEL_METRICS_EXPORTER=%r: tcc's own metrics go over OTLP only; %s is not built "
            "in (set a global MeterProvider with that exporter and tcc records on it)",
            text,
            ", ".join(unsupported),
        )
    return "otlp" in names


_TEMPORALITIES: Final = frozenset({"cumulative", "delta", "lowmemory"})


def _temporality(text: str) -> str:
    lowered = text.lower()
    if lowered not in _TEMPORALITIES:
        raise ValueError(text)
    return lowered


def _positive_millis(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(text)
    return value


def _url(text: str) -> str:
    if not is_http_url(text):
        raise ValueError(text)
    return text


def _url_or_none(text: str) -> str | None:
    return _url(text)


def _key(text: str) -> str | None:
    return text


# A malformed endpoint is not replaced by the default: spans would go to a collector nobody chose.
_NOT_SENT: Final = (
    "a URL needs http:// or https:// and a host (e.g. http://collector:4318); tcc sends no spans until "
    "it is fixed"
)

SDK_DISABLED: Final = Variable(
    "OTEL_SDK_DISABLED",
    _bool,
    False,
    "true: a no-op tracer; the API still validates, nothing is sent and no thread starts",
    expects="true or false",
)
ENDPOINT: Final = Variable(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    _url,
    "http://localhost:4318",
    "the collector's base URL; /v1/traces is appended",
    expects="an http:// or https:// URL",
    instead=_NOT_SENT,
)
TRACES_ENDPOINT: Final[Variable[str | None]] = Variable(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    _url_or_none,
    None,
    "the full traces URL, used as is (before OTEL_EXPORTER_OTLP_ENDPOINT)",
    expects="an http:// or https:// URL",
    instead=_NOT_SENT,
)
API_KEY: Final[Variable[str | None]] = Variable(
    "TCC_API_KEY",
    _key,
    None,
    "sent as Authorization: Bearer <key> (configure(api_key=) wins)",
    expects="a key",
)
ALLOW_INSECURE_HTTP: Final = Variable(
    "TCC_ALLOW_INSECURE_HTTP",
    _bool,
    False,
    "true: an API key may go over plain http to a host that is not loopback",
    expects="true or false",
)
SHUTDOWN_TIMEOUT_MILLIS: Final = Variable(
    "TCC_SHUTDOWN_TIMEOUT_MILLIS",
    _millis,
    5000.0,
    "how long shutdown() and interpreter exit wait for delivery, in ms",
    expects="a number >= 0",
)
BSP_SCHEDULE_DELAY: Final = Variable(
    "OTEL_BSP_SCHEDULE_DELAY",
    _positive_int,
    5000,
    "ms between two exports of the span processor's queue",
    expects="a positive integer",
)
BSP_MAX_QUEUE_SIZE: Final = Variable(
    "OTEL_BSP_MAX_QUEUE_SIZE",
    _positive_int,
    2048,
    "spans the span processor queues before it drops the oldest",
    expects="a positive integer",
)
BSP_MAX_EXPORT_BATCH_SIZE: Final = Variable(
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    _positive_int,
    512,
    "spans per export (and the queue length that wakes the export early)",
    expects="a positive integer",
)
CAPTURE_CONTENT: Final = Variable(
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    _capture,
    True,
    "NO_CONTENT or EVENT_ONLY (any case), or false (also 0, no, off): no content text is exported, only "
    "which attributes were withheld; SPAN_ONLY, SPAN_AND_EVENT or true capture",
    expects="NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT, true or false",
)
VALUE_LENGTH_LIMIT: Final = Variable(
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    _positive_int,
    262_144,
    "characters per string attribute; tcc cuts longer ones with a visible marker",
    expects="a positive integer",
)

# Backends that price spans themselves unless the span carries a cost in their own attribute. Named in
# TCC_COST_BACKENDS / configure(cost_backends=...), tcc writes its price there too (docs/cost.md).
COST_BACKENDS_KNOWN: Final = frozenset({"mlflow"})


def _backends(text: str) -> frozenset[str]:
    names = frozenset(n.strip().lower() for n in text.split(",") if n.strip())
    if not names <= COST_BACKENDS_KNOWN:
        raise ValueError(text)
    return names


COST_BACKENDS: Final[Variable[frozenset[str]]] = Variable(
    "TCC_COST_BACKENDS",
    _backends,
    frozenset(),
    "backends to write each call's cost for, comma-separated: mlflow (mlflow.llm.cost), so the backend "
    "shows tcc's price instead of its own estimate",
    expects="a comma-separated list of: mlflow",
)

METRICS_EXPORTER: Final = Variable(
    "OTEL_METRICS_EXPORTER",
    _metrics_exporter,
    True,
    "none: tcc builds no metrics pipeline of its own (otlp, the default, is the one it builds)",
    expects="otlp or none",
)
METRICS_ENDPOINT: Final[Variable[str | None]] = Variable(
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    _url_or_none,
    None,
    "the full metrics URL, used as is (before OTEL_EXPORTER_OTLP_ENDPOINT + /v1/metrics)",
    expects="an http:// or https:// URL",
)
METRIC_EXPORT_INTERVAL: Final = Variable(
    "OTEL_METRIC_EXPORT_INTERVAL",
    _positive_millis,
    60_000.0,
    "ms between two exports of tcc's own metrics",
    expects="a number of milliseconds > 0",
)
METRICS_TEMPORALITY: Final = Variable(
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    _temporality,
    "cumulative",
    "cumulative, delta or lowmemory: the temporality of tcc's own metrics",
    expects="cumulative, delta or lowmemory",
)
HANDLE_SIGTERM: Final = Variable(
    "TCC_HANDLE_SIGTERM",
    _bool,
    True,
    "false: tcc installs no SIGTERM handler (by default it delivers, then dies of the signal, when the "
    "application has no handler of its own)",
    expects="true or false",
)

VARIABLES: Final[tuple[Variable[Any], ...]] = (
    SDK_DISABLED,
    ENDPOINT,
    TRACES_ENDPOINT,
    API_KEY,
    ALLOW_INSECURE_HTTP,
    SHUTDOWN_TIMEOUT_MILLIS,
    BSP_SCHEDULE_DELAY,
    BSP_MAX_QUEUE_SIZE,
    BSP_MAX_EXPORT_BATCH_SIZE,
    CAPTURE_CONTENT,
    VALUE_LENGTH_LIMIT,
    COST_BACKENDS,
    METRICS_EXPORTER,
    METRICS_ENDPOINT,
    METRIC_EXPORT_INTERVAL,
    METRICS_TEMPORALITY,
    HANDLE_SIGTERM,
)

_SDK: Final = "the OpenTelemetry SDK"
_EXPORTER: Final = "the OTLP/HTTP exporter"
PASSED_THROUGH: Final = (
    PassedThrough("OTEL_SERVICE_NAME", _SDK, "the service.name of tcc's own provider's resource"),
    PassedThrough("OTEL_RESOURCE_ATTRIBUTES", _SDK, "the other attributes of that resource"),
    PassedThrough("OTEL_TRACES_SAMPLER", _SDK, "the sampler of tcc's own provider"),
    PassedThrough("OTEL_TRACES_SAMPLER_ARG", _SDK, "its argument"),
    PassedThrough("OTEL_EXPORTER_OTLP_HEADERS", _EXPORTER, "extra headers, k1=v1,k2=v2"),
    PassedThrough("OTEL_EXPORTER_OTLP_TRACES_HEADERS", _EXPORTER, "the same, for traces only"),
    PassedThrough("OTEL_EXPORTER_OTLP_TIMEOUT", _EXPORTER, "seconds per export, retries included"),
    PassedThrough("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", _EXPORTER, "the same, for traces only"),
    PassedThrough("OTEL_EXPORTER_OTLP_COMPRESSION", _EXPORTER, "gzip, deflate or none"),
    PassedThrough("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", _EXPORTER, "the same, for traces only"),
    PassedThrough("OTEL_EXPORTER_OTLP_CERTIFICATE", _EXPORTER, "the CA bundle that verifies the collector"),
    PassedThrough("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", _EXPORTER, "the same, for traces only"),
    PassedThrough("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", _EXPORTER, "the client certificate (mutual TLS)"),
    PassedThrough("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", _EXPORTER, "the same, for traces only"),
    PassedThrough("OTEL_EXPORTER_OTLP_CLIENT_KEY", _EXPORTER, "the client certificate's key"),
    PassedThrough("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", _EXPORTER, "the same, for traces only"),
    PassedThrough("OTEL_EXPORTER_OTLP_METRICS_HEADERS", _EXPORTER, "extra headers, for metrics only"),
    PassedThrough("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", _EXPORTER, "seconds per metrics export"),
    PassedThrough("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", _EXPORTER, "the same, for metrics only"),
    PassedThrough("OTEL_METRIC_EXPORT_TIMEOUT", _SDK, "ms the metrics reader allows one export"),
    PassedThrough("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", _EXPORTER, "the CA bundle, for metrics only"),
    PassedThrough("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", _EXPORTER, "the same, for metrics only"),
    PassedThrough("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", _EXPORTER, "the same, for metrics only"),
    PassedThrough(
        "OTEL_BSP_EXPORT_TIMEOUT",
        "nobody (the SDK only stores it)",
        "not applied: OTEL_EXPORTER_OTLP_TIMEOUT bounds each request",
    ),
)


def declared() -> frozenset[str]:
    """The name of every variable declared here, parsed by tcc or passed through."""
    return frozenset(v.name for v in VARIABLES) | frozenset(p.name for p in PASSED_THROUGH)


# --- what configure() sets before the pipeline is built ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    """What decides how the pipeline is built; fixed once the first record set it up (``built``)."""

    service_name: str | None = None
    endpoint: str | None = None  # a base URL or a full .../v1/traces URL
    headers: Mapping[str, str] = field(default_factory=dict)
    api_key: str | None = None
    span_processors: tuple[SdkSpanProcessor, ...] = ()
    tracer_provider: trace.TracerProvider | None = None
    meter_provider: metrics.MeterProvider | None = None
    shutdown_timeout_millis: float | None = None
    allow_insecure_http: bool | None = None
    handle_sigterm: bool | None = None
    built: bool = field(default=False, compare=False)  # a pipeline was built from it: no more changes

    def traces_url(self) -> str:
        """Where unrouted spans go: ``endpoint`` (base or full URL), else the variable
        ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as is, else ``OTEL_EXPORTER_OTLP_ENDPOINT`` + /v1/traces."""
        if self.endpoint is not None:
            return traces_endpoint(self.endpoint)
        return TRACES_ENDPOINT.get() or ENDPOINT.get().rstrip("/") + "/v1/traces"

    def metrics_url(self) -> str:
        """Where tcc's own metrics go: ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` as is, else the base URL
        (``endpoint`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``) + /v1/metrics."""
        return METRICS_ENDPOINT.get() or self.base_url() + "/v1/metrics"

    def traces_source(self) -> str:
        """Where ``traces_url()`` came from, for messages: ``configure(endpoint=...)``, the variable's name,
        or ``the default``."""
        if self.endpoint is not None:
            return "configure(endpoint=...)"
        if TRACES_ENDPOINT.get() is not None:
            return TRACES_ENDPOINT.name
        return ENDPOINT.name if os.environ.get(ENDPOINT.name, "").strip() else "the default"

    def endpoint_advice(self) -> str | None:
        """A warning for an endpoint that is a URL but most likely not the one meant: a base endpoint
        variable that already ends in ``/v1/traces`` (which the OTLP rules then append a second time)."""
        if self.endpoint is not None or TRACES_ENDPOINT.get() is not None:
            return None
        raw = os.environ.get(ENDPOINT.name, "").strip()
        if ENDPOINT.invalid() is None and raw.rstrip("/").endswith("/v1/traces"):
            return (
                f"{ENDPOINT.name}={raw!r} is a base URL, to which /v1/traces is appended, so spans go to "
                f"{self.traces_url()}: leave /v1/traces out, or give the full URL in {TRACES_ENDPOINT.name}"
            )
        return None

    def endpoint_problem(self) -> str | None:
        """Why nothing may be sent to the default destination: an endpoint variable that is not a URL (and
        that ``configure(endpoint=...)`` does not override). None when the endpoint is usable."""
        if self.endpoint is not None:
            return None
        for variable in (TRACES_ENDPOINT, ENDPOINT):
            raw = variable.invalid()
            if raw is not None:
                # Without the value: the warning at setup showed it, and this goes into stats().last_error.
                return f"{variable.name} is not an http:// or https:// URL, so tcc sends no spans"
            if variable.get() is not None and variable is TRACES_ENDPOINT:
                return None  # a good traces URL wins over the base endpoint, whatever that holds
        return None

    def handles_sigterm(self) -> bool:
        """``handle_sigterm``, else ``TCC_HANDLE_SIGTERM``, else True."""
        return self.handle_sigterm if self.handle_sigterm is not None else HANDLE_SIGTERM.get()

    def base_url(self) -> str:
        """The OTLP base URL: ``endpoint`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``, without ``/v1/traces``."""
        return (self.endpoint or ENDPOINT.get()).rstrip("/").removesuffix("/v1/traces")

    def key(self) -> str | None:
        """The bearer key: ``api_key``, else ``TCC_API_KEY``, else none."""
        return self.api_key or API_KEY.get()

    def insecure_http_allowed(self) -> bool:
        return self.allow_insecure_http if self.allow_insecure_http is not None else ALLOW_INSECURE_HTTP.get()

    def shutdown_millis(self) -> float:
        """``shutdown_timeout_millis``, else ``TCC_SHUTDOWN_TIMEOUT_MILLIS``, else 5000."""
        if self.shutdown_timeout_millis is not None:
            return self.shutdown_timeout_millis
        return SHUTDOWN_TIMEOUT_MILLIS.get()

    def __repr__(self) -> str:  # the key and header values are secrets: never in a log line or a repr
        return (
            f"Config(service_name={self.service_name!r}, endpoint={self.endpoint!r}, "
            f"headers={sorted(self.headers)}, api_key={'set' if self.api_key else None}, "
            f"span_processors={len(self.span_processors)}, tracer_provider={self.tracer_provider!r})"
        )


config = Config()
_lock = threading.Lock()


def freeze() -> Config:
    """The configuration, marked as built: from now on configure() may only repeat it."""
    global config
    with _lock:
        if not config.built:
            config = replace(config, built=True)
        return config


def _renew_lock() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time


forksafe.after_fork(_renew_lock, forksafe.Phase.LOCKS)


# --- what records read on every start and end -------------------------------------------------------------

RUN_TIMEOUT_SECONDS: Final = 20 * 60.0


@dataclass(slots=True)
class Settings:
    """What ``configure()`` can change at any time; records read it when they start or end."""

    run_timeout: float = RUN_TIMEOUT_SECONDS  # seconds; 0 disables
    capture_content: bool = CAPTURE_CONTENT.default
    mask: Callable[[str], str] | None = None
    value_limit: int = VALUE_LENGTH_LIMIT.default  # characters per content attribute
    cost_backends: frozenset[str] = COST_BACKENDS.default  # read by the Pricing stage, on the worker

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            capture_content=CAPTURE_CONTENT.get(),
            value_limit=VALUE_LENGTH_LIMIT.get(),
            cost_backends=COST_BACKENDS.get(),
        )


settings: Settings  # made at first use (see __getattr__), then only changed in place


def __getattr__(name: str) -> Settings:
    # The module attribute ``settings`` is made from the environment when it is first read, not at import:
    # a variable set after ``import contextcompany`` but before the first record still counts. Once made,
    # it is an ordinary module attribute and this function is no longer called for it.
    if name != "settings":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _runtime()


def _runtime() -> Settings:
    made = globals().get("settings")
    if made is None:
        with _lock:
            made = globals().get("settings")
            if made is None:
                made = globals()["settings"] = Settings.from_environment()
    assert isinstance(made, Settings)
    return made


def reset() -> None:
    """Forget configure() (tests): the configuration and the runtime settings as the environment says."""
    global config
    with _lock:
        config = Config()
    fresh = Settings.from_environment()
    current = _runtime()
    for f in fields(Settings):
        setattr(current, f.name, getattr(fresh, f.name))


def thaw() -> None:
    """The configuration may change again (tests, when they remove the pipeline)."""
    global config
    with _lock:
        config = replace(config, built=False)


# --- configure() ------------------------------------------------------------------------------------------


class _Unset(enum.Enum):
    UNSET = enum.auto()  # configure(mask=None) removes the mask; leaving mask out keeps it


_UNSET: Final = _Unset.UNSET


def _check_str(value: object, name: str) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise TypeError(
            f"[TCC] configure({name}=...) expects a non-empty str or None, got {checks.show(value)}"
        )


def configure(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
    capture_content: bool | None = None,
    mask: Callable[[str], str] | _Unset | None = _UNSET,
    run_timeout: float | None = None,
    span_processors: Sequence[SdkSpanProcessor] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    shutdown_timeout_millis: float | None = None,
    allow_insecure_http: bool | None = None,
    cost_backends: Sequence[str] | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    handle_sigterm: bool | None = None,
) -> None:
    """Set tcc up in code; every argument left out keeps its default (from the ``OTEL_*`` variables).

    ``capture_content``, ``mask``, ``run_timeout`` and ``cost_backends`` (e.g. ``["mlflow"]``: write each
    call's cost where MLflow reads it) apply at any time. The others decide how tcc's
    pipeline is built, so they must come before the first run, step or tool call; after it, the same
    values are accepted and different ones raise RuntimeError, changing nothing.

    >>> tcc.configure(service_name="support-bot", endpoint="https://otel.example.com", api_key="...")
    """
    _check_str(service_name, "service_name")
    _check_str(api_key, "api_key")
    check_url(endpoint, "configure(endpoint=...)")
    if headers is not None and (
        not isinstance(headers, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise TypeError("[TCC] configure(headers=...) expects a dict of str to str")
    for flag, name in (
        (capture_content, "capture_content"),
        (allow_insecure_http, "allow_insecure_http"),
        (handle_sigterm, "handle_sigterm"),
    ):
        checks.optional_bool(flag, f"configure({name}=...)")
    if not isinstance(mask, _Unset) and mask is not None and not callable(mask):
        raise TypeError(
            f"[TCC] configure(mask=...) expects a function str -> str or None, got {checks.show(mask)}"
        )
    timeout = checks.seconds(run_timeout, "configure(run_timeout=...)")
    backends: frozenset[str] | None = None
    if cost_backends is not None:
        if isinstance(cost_backends, str) or not isinstance(cost_backends, Sequence | frozenset | set):
            raise TypeError(
                f"[TCC] configure(cost_backends=...) expects a list of backend names, got "
                f"{checks.show(cost_backends)}"
            )
        names = [n.strip().lower() if isinstance(n, str) else n for n in cost_backends]
        unknown = [n for n in names if n not in COST_BACKENDS_KNOWN]
        if unknown:
            raise ValueError(
                f"[TCC] configure(cost_backends=...) knows {sorted(COST_BACKENDS_KNOWN)}, got {unknown!r}"
            )
        backends = frozenset(names)
    if shutdown_timeout_millis is not None and (
        isinstance(shutdown_timeout_millis, bool)
        or not isinstance(shutdown_timeout_millis, int | float)
        or not math.isfinite(shutdown_timeout_millis)
        or shutdown_timeout_millis < 0
    ):
        raise ValueError(
            "[TCC] configure(shutdown_timeout_millis=...) expects a number >= 0, "
            f"got {checks.show(shutdown_timeout_millis)}"
        )
    if span_processors is not None and (
        not isinstance(span_processors, Sequence)
        or not all(isinstance(p, SdkSpanProcessor) for p in span_processors)
    ):
        raise TypeError("[TCC] configure(span_processors=...) expects a list of OpenTelemetry SpanProcessors")
    if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
        raise TypeError("[TCC] configure(tracer_provider=...) expects an OpenTelemetry TracerProvider")
    if meter_provider is not None and not isinstance(meter_provider, metrics.MeterProvider):
        raise TypeError(
            "[TCC] configure(meter_provider=...) expects an OpenTelemetry MeterProvider, "
            f"got {checks.show(meter_provider)}"
        )
    if tracer_provider is not None and span_processors:
        raise ValueError(
            "[TCC] configure(span_processors=...) adds processors to tcc's own provider; with "
            "tracer_provider=..., add them to that provider instead"
        )

    global config
    runtime = _runtime()
    with _lock:
        changes: dict[str, object] = {
            name: value
            for name, value in (
                ("service_name", service_name),
                ("endpoint", endpoint),
                ("headers", dict(headers) if headers is not None else None),
                ("api_key", api_key),
                ("span_processors", tuple(span_processors) if span_processors is not None else None),
                ("tracer_provider", tracer_provider),
                ("meter_provider", meter_provider),
                ("shutdown_timeout_millis", shutdown_timeout_millis),
                ("allow_insecure_http", allow_insecure_http),
                ("handle_sigterm", handle_sigterm),
            )
            if value is not None
        }
        new = replace(config, **changes)  # type: ignore[arg-type]
        if endpoint is not None or api_key is not None or allow_insecure_http is not None:
            reason = exposure(new.traces_url(), new.key(), new.insecure_http_allowed())
            if reason is not None:
                raise ValueError(f"[TCC] configure(): {reason}")
        if config.built and new != config:
            differing = sorted(name for name in changes if getattr(new, name) != getattr(config, name))
            raise RuntimeError(
                f"[TCC] configure({', '.join(f'{n}=...' for n in differing)}) must come before the first "
                "run, step or tool call: tcc's pipeline is already built. Call configure() at startup."
            )
        config = new
        # Everything is checked: from here on nothing can fail, so nothing half-applies.
        if capture_content is not None:
            runtime.capture_content = capture_content
        if not isinstance(mask, _Unset):
            runtime.mask = mask
        if timeout is not None:
            runtime.run_timeout = timeout
        if backends is not None:
            runtime.cost_backends = backends
