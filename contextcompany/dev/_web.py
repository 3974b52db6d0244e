"""The viewer's web side: its pages, static files and JSON API, served by the OTLP receiver's port.

Routes (GET and HEAD):

    /                        the runs list          /api/runs?status=&agent=&model=&session=&q=&before=
    /runs/<run_id>           a run                  /api/runs/<run_id>
    /sessions/<session_id>   a session              /api/sessions/<session_id>
    /static/<file>           the page's JS and CSS  /api/facets   /api/version   /api/metrics

The three pages are one HTML file; its script reads the path. Everything the page shows is put in
with ``textContent``; the Content-Security-Policy forbids inline scripts and anything from another
origin, so a prompt holding ``<script>`` stays text even if a bug ever put it into HTML.

When the server listens on loopback, requests whose ``Host`` is not a loopback name are refused:
a web page elsewhere cannot then read the runs through DNS rebinding.

Example::

    viewer = Viewer(store, metrics=totals)
    OTLPReceiver(on_spans=store.add, on_metrics=totals, web=viewer.handle)
"""

from __future__ import annotations

import importlib.resources
import re
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from contextcompany.dev._metrics import MetricTotals
from contextcompany.dev._receiver import WebResponse
from contextcompany.dev._store import RunQuery, SpanStore, to_json

__all__ = ["Viewer"]

STATIC_FILES: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_PAGE: Final = re.compile(r"^/(?:runs/[^/]+|sessions/[^/]+)?/?$")


def _static(name: str) -> bytes:
    return importlib.resources.files("contextcompany.dev").joinpath("static", name).read_bytes()


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Viewer:
    """Answers the viewer's GET requests from a ``SpanStore``; use its ``handle`` as ``web=``.

    ``loopback_only``: refuse requests whose Host header is not a loopback name (set it when the
    server listens on 127.0.0.1 or ::1).
    """

    def __init__(self, store: SpanStore, *, metrics: MetricTotals | None = None, loopback_only: bool = True):
        self.store = store
        self.metrics = metrics
        self.loopback_only = loopback_only
        # Read once: the files ship inside the package and do not change while it runs.
        self._static = {name: _static(name) for name in STATIC_FILES}
        self._index = _static("index.html")

    def handle(self, target: str, headers: dict[str, str]) -> WebResponse:
        """Answer one GET (or HEAD) for ``target``, the path with its query string."""
        if self.loopback_only and _host_name(headers.get("host", "")) not in _LOOPBACK_NAMES:
            return self._text(403, "this viewer answers on localhost only (see --host)\n")
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if path.startswith("/api/"):
            return self._api(path[len("/api/") :], query)
        if path.startswith("/static/"):
            name = path[len("/static/") :]
            if name not in self._static:
                return self._text(404, "not found\n")
            return WebResponse(
                200, self._static[name], {"Content-Type": STATIC_FILES[name], **_SECURITY_HEADERS}
            )
        if path == "/favicon.ico":
            return WebResponse(
                200,
                self._static["favicon.svg"],
                {"Content-Type": STATIC_FILES["favicon.svg"], **_SECURITY_HEADERS},
            )
        if _PAGE.match(path):
            return WebResponse(
                200, self._index, {"Content-Type": "text/html; charset=utf-8", **_SECURITY_HEADERS}
            )
        return self._text(404, "not found\n")

    def _api(self, route: str, query: dict[str, str]) -> WebResponse:
        # Read before the query: a change that lands during it makes the page's next poll fetch again.
        version = self.store.version
        if route == "version":
            return self._json({"version": version, "runs": self.store.run_count})
        if route == "runs":
            try:
                before = int(query["before"]) if query.get("before") else None
                limit = int(query.get("limit") or 100)
            except ValueError:
                return self._json({"error": "before and limit must be integers"}, status=400)
            runs = self.store.runs(
                RunQuery(
                    status=query.get("status") or None,
                    agent=query.get("agent") or None,
                    model=query.get("model") or None,
                    session=query.get("session") or None,
                    text=query.get("q") or None,
                    limit=limit,
                    before=before,
                )
            )
            return self._json({"version": version, "runs": runs})
        if route.startswith("runs/"):
            detail = self.store.run(unquote(route[len("runs/") :]))
            if detail is None:
                return self._json(
                    {"error": "no such run (it may have been dropped by --max-runs)"}, status=404
                )
            return self._json({**detail, "version": version})
        if route.startswith("sessions/"):
            session = self.store.session(unquote(route[len("sessions/") :]))
            if session is None:
                return self._json({"error": "no stored run has this session"}, status=404)
            return self._json({**session, "version": version})
        if route == "facets":
            return self._json(self.store.facets())
        if route == "metrics":
            return self._json(
                self.metrics.as_dict() if self.metrics is not None else {"requests": 0, "models": {}}
            )
        return self._json({"error": "no such API route"}, status=404)

    @staticmethod
    def _json(data: Any, status: int = 200) -> WebResponse:
        body = to_json(data).encode("utf-8")
        return WebResponse(
            status, body, {"Content-Type": "application/json; charset=utf-8", **_SECURITY_HEADERS}
        )

    @staticmethod
    def _text(status: int, text: str) -> WebResponse:
        return WebResponse(
            status, text.encode("utf-8"), {"Content-Type": "text/plain; charset=utf-8", **_SECURITY_HEADERS}
        )
