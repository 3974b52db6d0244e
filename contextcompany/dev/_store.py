"""Every received span kept in SQLite, and a summary row per run for the viewer's lists.

Spans are stored as they arrive (attributes and events as JSON). When a run's span arrives (it ends
after everything beneath it), its trace is read back once and the run's row is written: counts,
token totals, cost, models, previews, and the text the search looks through (an FTS5 trigram index,
so any substring of three characters or more is found without scanning). A span arriving later for
a run already summarised (feedback, say) summarises that run again.

Retention: beyond ``max_runs`` runs the oldest (by start time) are dropped with their spans, and a
span that belongs to no run is dropped once ``loose_span_window`` newer spans have arrived.

Threads: ``add`` runs on the receiver's thread, calls never overlap (the receiver serializes them);
queries run on the web server's threads. A file database gives each query a connection of its own
(WAL: readers never wait for the writer); ``:memory:`` has one connection, shared under a lock.

Example::

    store = SpanStore("dev.db", max_runs=10_000)
    store.add(received_spans)
    page = store.runs(RunQuery(status="error", text="rate limit"))
    detail = store.run(page[0]["run_id"])
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from contextcompany import _semconv as sc
from contextcompany.dev._receiver import ReceivedSpan
from contextcompany.dev._views import StoredSpan, Summary, run_id_of, span_kind, span_view, summarise

__all__ = ["RunQuery", "SpanStore", "default_db_path"]

SCHEMA_VERSION: Final = 1
MEMORY: Final = ":memory:"
DEFAULT_MAX_RUNS: Final = 10_000
DEFAULT_LOOSE_SPAN_WINDOW: Final = 100_000
MAX_PAGE: Final = 500
_IN_CHUNK: Final = 500  # SQLite caps the variables in one statement

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS spans (
    seq INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_id TEXT,
    run_id TEXT,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status INTEGER NOT NULL,
    status_message TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS spans_by_id ON spans (trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_by_run ON spans (run_id) WHERE run_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    name TEXT NOT NULL,
    agent TEXT,
    status TEXT NOT NULL,
    error TEXT,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    priced INTEGER NOT NULL,
    llm_calls INTEGER NOT NULL,
    tools INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    input_tokens INTEGER,
    cache_read_tokens INTEGER,
    cache_write_tokens INTEGER,
    output_tokens INTEGER,
    reasoning_tokens INTEGER,
    cost REAL,
    unpriced INTEGER NOT NULL,
    session TEXT,
    models TEXT NOT NULL,
    prompt TEXT,
    response TEXT,
    feedback TEXT,
    parent_run TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (start_ns);
CREATE INDEX IF NOT EXISTS runs_by_trace ON runs (trace_id);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, start_ns);
CREATE INDEX IF NOT EXISTS runs_by_agent ON runs (agent, start_ns);
CREATE INDEX IF NOT EXISTS runs_by_session ON runs (session, start_ns);
CREATE TABLE IF NOT EXISTS run_models (
    model TEXT NOT NULL, run INTEGER NOT NULL, start_ns INTEGER NOT NULL, PRIMARY KEY (model, start_ns, run)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS run_models_by_run ON run_models (run);
CREATE VIRTUAL TABLE IF NOT EXISTS run_text USING fts5 (body, tokenize = 'trigram');
"""

_RUN_COLUMNS: Final = (
    "run_id, trace_id, span_id, name, agent, status, error, start_ns, end_ns, steps, priced, llm_calls, "
    "tools, errors, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, "
    "cost, unpriced, session, models, prompt, response, feedback, parent_run"
)
_SPAN_COLUMNS: Final = (
    "trace_id, span_id, parent_id, name, kind, start_ns, end_ns, status, status_message, scope, "
    "resource, attributes, events"
)


def default_db_path() -> Path:
    """Where ``contextcompany dev`` keeps its runs: ``$XDG_DATA_HOME/contextcompany/dev.db``.

    Without XDG_DATA_HOME: ``~/.local/share`` (``%LOCALAPPDATA%`` on Windows,
    ``~/Library/Application Support`` on macOS).
    """
    base = os.environ.get("XDG_DATA_HOME")
    if not base:
        if os.name == "nt":
            base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        elif os.uname().sysname == "Darwin":
            base = str(Path.home() / "Library" / "Application Support")
        else:
            base = str(Path.home() / ".local" / "share")
    return Path(base) / "contextcompany" / "dev.db"


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Filters for the runs list; every given filter must hold. ``before`` pages by start time (ns)."""

    status: str | None = None
    agent: str | None = None
    model: str | None = None
    session: str | None = None
    text: str | None = None
    limit: int = 100
    before: int | None = None


def _finite(value: Any) -> Any:
    # JSON has no NaN or Infinity; a browser's JSON.parse refuses them.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def to_json(value: Any) -> str:
    """Compact JSON for storage and answers: bytes as hex, non-finite floats as strings."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default)
    except ValueError:
        return json.dumps(
            _finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default
        )


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SpanStore:
    """Spans in SQLite with a summary row per run; see the module docstring for threads and retention."""

    def __init__(
        self,
        path: str | os.PathLike[str] = MEMORY,
        *,
        max_runs: int = DEFAULT_MAX_RUNS,
        loose_span_window: int = DEFAULT_LOOSE_SPAN_WINDOW,
    ) -> None:
        if max_runs < 1:
            raise ValueError(f"SpanStore(max_runs=...) expects an int >= 1, got {max_runs!r}")
        self.path = str(path)
        self._memory = self.path == MEMORY
        self._max_runs = max_runs
        self._loose_window = max(1, loose_span_window)
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect()
        self._write_lock = threading.Lock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._resources: dict[str, int] = {}
        self._version = 0
        self._since_loose_check = 0
        self._closed = False
        with self._write_lock, self._conn:
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise RuntimeError(
                    f"{self.path} was written by another version of contextcompany dev "
                    f"(schema {row[0]}, expected {SCHEMA_VERSION}); use another --db or remove the file"
                )
            self._run_count = int(self._conn.execute("SELECT count(*) FROM runs").fetchone()[0])
            for rid, body in self._conn.execute("SELECT id, body FROM resources"):
                self._resources[body] = rid

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False: connections are handed between server threads, never used by two
        # at once (the write lock, or the reader pool).
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        if not self._memory:
            conn.execute("PRAGMA journal_mode = WAL")
            # WAL with NORMAL: a crash loses at most the last transactions, never corrupts the file.
            conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    # -- lifecycle --

    def close(self) -> None:
        """Close every connection; safe to call twice."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()
            while True:
                try:
                    self._readers.get_nowait().close()
                except queue.Empty:
                    break

    @property
    def version(self) -> int:
        """Bumped whenever the runs change: a page polls it to know when to fetch again."""
        return self._version

    @property
    def run_count(self) -> int:
        return self._run_count

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if self._memory:
            with self._write_lock:
                yield self._conn
            return
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            if self._closed:
                conn.close()
            else:
                self._readers.put(conn)

    # -- writing --

    def add(self, spans: Sequence[ReceivedSpan]) -> None:
        """Store one request's spans and (re)summarise the runs they complete or add to."""
        if not spans:
            return
        with self._write_lock:
            if self._closed:
                return
            conn = self._conn
            with conn:  # one transaction per request: 2,000 spans a second is 2,000 rows, not commits
                rows = []
                # This request's spans, decoded already: a summary reads them instead of the database.
                fresh: dict[tuple[str, str], StoredSpan] = {}
                last_resource: Any = None
                resource_id = 0
                run_traces: dict[str, None] = {}
                other_traces: dict[str, None] = {}
                feedback_runs: dict[str, None] = {}
                for span in spans:
                    attributes = span.attributes
                    run_id = attributes.get(sc.RUN_ID)
                    # A request's spans share their process's resource: compared, not re-encoded.
                    if last_resource is None or span.resource != last_resource:
                        last_resource, resource_id = span.resource, self._resource_id(conn, span.resource)
                    events = [
                        {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": e.attributes}
                        for e in span.events
                    ]
                    fresh[(span.trace_id, span.span_id)] = StoredSpan(
                        trace_id=span.trace_id,
                        span_id=span.span_id,
                        parent_id=span.parent_span_id,
                        name=span.name,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status_code,
                        status_message=span.status_message,
                        scope=span.scope_name,
                        attributes=attributes,
                        events=events,
                        resource=span.resource,
                    )
                    rows.append(
                        (
                            span.trace_id,
                            span.span_id,
                            span.parent_span_id,
                            None if run_id is None else str(run_id),
                            span.name,
                            span.kind,
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            span.status_code,
                            span.status_message,
                            span.scope_name,
                            resource_id,
                            to_json(attributes),
                            to_json(events) if events else "[]",
                        )
                    )
                    kind = span_kind(span.name, attributes)
                    if kind == "run":
                        run_traces[span.trace_id] = None
                    else:
                        other_traces[span.trace_id] = None
                        if kind == "feedback" and run_id is not None:
                            feedback_runs[str(run_id)] = None
                conn.executemany(
                    f"INSERT OR REPLACE INTO spans (run_id, {_SPAN_COLUMNS}) "
                    "VALUES (?4, ?1, ?2, ?3, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    rows,
                )
                # Late spans (feedback, a slow tool) for runs already summarised: summarise again.
                late = [t for t in other_traces if t not in run_traces]
                for chunk in _chunks(late):
                    marks = ",".join("?" * len(chunk))
                    for (trace_id,) in conn.execute(
                        f"SELECT DISTINCT trace_id FROM runs WHERE trace_id IN ({marks})", chunk
                    ):
                        run_traces[trace_id] = None
                for chunk in _chunks(list(feedback_runs)):
                    marks = ",".join("?" * len(chunk))
                    for (trace_id,) in conn.execute(
                        f"SELECT trace_id FROM runs WHERE run_id IN ({marks})", chunk
                    ):
                        run_traces[trace_id] = None
                changed = False
                for trace_id in run_traces:
                    changed = self._summarise_trace(conn, trace_id, fresh) or changed
                if self._run_count > self._max_runs:
                    self._drop_oldest_runs(conn, self._run_count - self._max_runs)
                    changed = True
                self._since_loose_check += len(spans)
                if self._since_loose_check >= min(self._loose_window, 10_000):
                    self._since_loose_check = 0
                    self._drop_loose_spans(conn)
            if changed:
                self._version += 1

    def _resource_id(self, conn: sqlite3.Connection, resource: Any) -> int:
        # A process sends the same resource with every batch: stored once, referenced by id.
        body = to_json(resource)
        rid = self._resources.get(body)
        if rid is None:
            conn.execute("INSERT OR IGNORE INTO resources (body) VALUES (?)", (body,))
            rid = int(conn.execute("SELECT id FROM resources WHERE body = ?", (body,)).fetchone()[0])
            self._resources[body] = rid
        return rid

    def _summarise_trace(
        self, conn: sqlite3.Connection, trace_id: str, fresh: dict[tuple[str, str], StoredSpan]
    ) -> bool:
        spans = _load(conn, "WHERE s.trace_id = ?", (trace_id,), fresh)
        runs = [s for s in spans if span_kind(s.name, s.attributes) == "run"]
        if not runs:
            return False
        children: dict[str, list[StoredSpan]] = {}
        by_id = {s.span_id: s for s in spans}
        for span in spans:
            if span.parent_id is not None:
                children.setdefault(span.parent_id, []).append(span)
        for run in runs:
            run_id = run_id_of(run)
            below = _descendants(run, children)
            # Feedback sent later, in a trace of its own, names its run by id.
            below.extend(
                s
                for s in _load(conn, "WHERE s.run_id = ? AND s.trace_id != ?", (run_id, trace_id))
                if span_kind(s.name, s.attributes) == "feedback"
            )
            self._put_run(conn, summarise(run, below, _parent_run(run, by_id)))
        return True

    def _put_run(self, conn: sqlite3.Connection, s: Summary) -> None:
        u = s.usage
        values = (
            s.run_id,
            s.trace_id,
            s.span_id,
            s.name,
            s.agent,
            s.status,
            s.error,
            s.start_ns,
            s.end_ns,
            s.steps,
            s.priced,
            s.llm_calls,
            s.tools,
            s.errors,
            u.input,
            u.cache_read,
            u.cache_write,
            u.output,
            u.reasoning,
            s.cost,
            s.unpriced,
            s.session,
            to_json(s.models),
            s.prompt,
            s.response,
            s.feedback,
            s.parent_run,
        )
        row = conn.execute("SELECT id FROM runs WHERE run_id = ?", (s.run_id,)).fetchone()
        if row is None:
            marks = ",".join("?" * len(values))
            cursor = conn.execute(f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({marks})", values)
            rid = int(cursor.lastrowid or 0)
            self._run_count += 1
        else:
            rid = int(row[0])
            assignments = ", ".join(f"{c.strip()} = ?" for c in _RUN_COLUMNS.split(","))
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values, rid))
            conn.execute("DELETE FROM run_text WHERE rowid = ?", (rid,))
            conn.execute("DELETE FROM run_models WHERE run = ?", (rid,))
        conn.execute("INSERT INTO run_text (rowid, body) VALUES (?, ?)", (rid, s.search_text))
        conn.executemany(
            "INSERT OR IGNORE INTO run_models (model, run, start_ns) VALUES (?, ?, ?)",
            [(m, rid, s.start_ns) for m in s.models],
        )

    def _drop_oldest_runs(self, conn: sqlite3.Connection, count: int) -> None:
        doomed = conn.execute(
            "SELECT id, run_id, trace_id FROM runs ORDER BY start_ns LIMIT ?", (count,)
        ).fetchall()
        for rid, run_id, trace_id in doomed:
            conn.execute("DELETE FROM runs WHERE id = ?", (rid,))
            conn.execute("DELETE FROM run_text WHERE rowid = ?", (rid,))
            conn.execute("DELETE FROM run_models WHERE run = ?", (rid,))
            conn.execute("DELETE FROM spans WHERE run_id = ? AND trace_id != ?", (run_id, trace_id))
            conn.execute(
                "DELETE FROM spans WHERE trace_id = ? AND NOT EXISTS (SELECT 1 FROM runs WHERE trace_id = ?)",
                (trace_id, trace_id),
            )
            self._run_count -= 1

    def _drop_loose_spans(self, conn: sqlite3.Connection) -> None:
        # A span no run claims (a web request's trace, a run that never ended) is kept until
        # loose_span_window newer spans have arrived.
        row = conn.execute(
            "SELECT seq FROM spans ORDER BY seq DESC LIMIT 1 OFFSET ?", (self._loose_window,)
        ).fetchone()
        if row is None:
            return
        conn.execute(
            "DELETE FROM spans WHERE seq <= ? AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.trace_id = "
            "spans.trace_id) AND (run_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = "
            "spans.run_id))",
            (row[0],),
        )

    # -- reading --

    def runs(self, query: RunQuery | None = None) -> list[dict[str, Any]]:
        """The runs list, newest first, filtered by ``query``."""
        q = query or RunQuery()
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("status", q.status), ("agent", q.agent), ("session", q.session)):
            if value:
                where.append(f"r.{column} = ?")
                params.append(value)
        if q.before is not None:
            where.append("r.start_ns < ?")
            params.append(q.before)
        if q.model:
            where.append("r.id IN (SELECT run FROM run_models WHERE model = ?)")
            params.append(q.model)
        if q.text and q.text.strip():
            # The trigram index answers LIKE for three characters and more; shorter scans the text.
            where.append("r.id IN (SELECT rowid FROM run_text WHERE body LIKE ? ESCAPE '\\')")
            params.append(_like(q.text.strip()))
        sql = f"SELECT id, {_RUN_COLUMNS} FROM runs r"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.start_ns DESC LIMIT ?"
        params.append(max(1, min(q.limit, MAX_PAGE)))
        with self._read() as conn:
            return [_run_row(row) for row in conn.execute(sql, params)]

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run with every span beneath it, as views; None when it is not (or no longer) stored."""
        with self._read() as conn:
            row = conn.execute(f"SELECT id, {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            summary = _run_row(row)
            trace_id = summary["trace_id"]
            spans = _load(conn, "WHERE s.trace_id = ?", (trace_id,))
            feedback = [
                s
                for s in _load(conn, "WHERE s.run_id = ? AND s.trace_id != ?", (run_id, trace_id))
                if span_kind(s.name, s.attributes) == "feedback"
            ]
        by_id = {s.span_id: s for s in spans}
        root = by_id.get(summary["span_id"])
        if root is None:
            return None
        children: dict[str, list[StoredSpan]] = {}
        for span in spans:
            if span.parent_id is not None:
                children.setdefault(span.parent_id, []).append(span)
        below = _descendants(root, children)
        t0 = root.start_ns
        views = [span_view(s, t0) for s in [root, *sorted(below, key=lambda s: s.start_ns)]]
        for span in feedback:
            view = span_view(span, t0)
            view["parent"] = root.span_id  # shown under the run it is about
            views.append(view)
        return {
            "run": summary,
            "spans": views,
            # Spans of the same trace outside this run (the request that called the agent, say).
            "outside": len(spans) - 1 - len(below),
        }

    def session(self, session_id: str) -> dict[str, Any] | None:
        """A session's runs, oldest first, with totals; None when no stored run has that session."""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT id, {_RUN_COLUMNS} FROM runs WHERE session = ? ORDER BY start_ns LIMIT 5000",
                (session_id,),
            ).fetchall()
        if not rows:
            return None
        runs = [_run_row(r) for r in rows]
        totals: dict[str, Any] = {"runs": len(runs), "errors": sum(r["status"] == "error" for r in runs)}
        for key in ("steps", "llm_calls", "tools", "priced"):
            totals[key] = sum(r[key] for r in runs)
        for key in ("input", "cache_read", "cache_write", "output", "reasoning"):
            totals[key] = sum(r["usage"][key] or 0 for r in runs)
        costs = [r["cost"] for r in runs if r["cost"] is not None]
        totals["cost"] = sum(costs) if costs else None
        totals["start_ns"] = runs[0]["start_ns"]
        totals["end_ns"] = max(r["end_ns"] for r in runs)
        return {"session": session_id, "runs": runs, "totals": totals}

    def facets(self) -> dict[str, list[str]]:
        """The values the filters offer: agents, models and the most recent sessions."""
        with self._read() as conn:
            agents = [r[0] for r in conn.execute("SELECT DISTINCT agent FROM runs WHERE agent IS NOT NULL")]
            models = [r[0] for r in conn.execute("SELECT DISTINCT model FROM run_models")]
            sessions = [
                r[0]
                for r in conn.execute(
                    "SELECT session FROM runs WHERE session IS NOT NULL "
                    "GROUP BY session ORDER BY max(start_ns) DESC LIMIT 200"
                )
            ]
        return {"agents": sorted(agents), "models": sorted(models), "sessions": sessions}

    def span_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])


# --- helpers ------------------------------------------------------------------------------------


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i : i + _IN_CHUNK]


def _load(
    conn: sqlite3.Connection,
    where: str,
    params: tuple[Any, ...],
    fresh: dict[tuple[str, str], StoredSpan] | None = None,
) -> list[StoredSpan]:
    """The spans ``where`` selects; those in ``fresh`` (just received) are taken as they are."""
    resources: dict[int, Any] = {}
    out: list[StoredSpan] = []
    rows = conn.execute(
        f"SELECT s.trace_id, s.span_id, s.parent_id, s.name, s.kind, s.start_ns, s.end_ns, s.status, "
        f"s.status_message, s.scope, s.resource, s.attributes, s.events FROM spans s {where}",
        params,
    ).fetchall()
    for row in rows:
        if fresh is not None:
            known = fresh.get((row[0], row[1]))
            if known is not None:
                out.append(known)
                continue
        rid = row[10]
        if rid not in resources:
            body = conn.execute("SELECT body FROM resources WHERE id = ?", (rid,)).fetchone()
            resources[rid] = json.loads(body[0]) if body else {}
        out.append(
            StoredSpan(
                trace_id=row[0],
                span_id=row[1],
                parent_id=row[2],
                name=row[3],
                kind=row[4],
                start_ns=row[5],
                end_ns=row[6],
                status_code=row[7],
                status_message=row[8],
                scope=row[9],
                attributes=json.loads(row[11]),
                events=json.loads(row[12]),
                resource=resources[rid],
            )
        )
    return out


def _descendants(root: StoredSpan, children: dict[str, list[StoredSpan]]) -> list[StoredSpan]:
    out: list[StoredSpan] = []
    seen = {root.span_id}  # malformed ids (a span its own ancestor) must not loop forever
    stack = list(children.get(root.span_id, ()))
    while stack:
        span = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        out.append(span)
        stack.extend(children.get(span.span_id, ()))
    return out


def _parent_run(run: StoredSpan, by_id: dict[str, StoredSpan]) -> str | None:
    parent = by_id.get(run.parent_id or "")
    seen = {run.span_id}
    while parent is not None and parent.span_id not in seen:
        if span_kind(parent.name, parent.attributes) == "run":
            return run_id_of(parent)
        seen.add(parent.span_id)
        parent = by_id.get(parent.parent_id or "")
    return None


def _run_row(row: Sequence[Any]) -> dict[str, Any]:
    (
        _id,
        run_id,
        trace_id,
        span_id,
        name,
        agent,
        status,
        error,
        start_ns,
        end_ns,
        steps,
        priced,
        llm_calls,
        tools,
        errors,
        input_tokens,
        cache_read,
        cache_write,
        output,
        reasoning,
        cost,
        unpriced,
        session,
        models,
        prompt,
        response,
        feedback,
        parent_run,
    ) = row
    return {
        "run_id": run_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "name": name,
        "agent": agent,
        "status": status,
        "error": error,
        "start_ns": start_ns,
        # The page's "older runs" cursor: a string, since a JavaScript number cannot hold nanoseconds.
        "cursor": str(start_ns),
        # Milliseconds since the epoch fit a JavaScript number exactly; nanoseconds do not.
        "start_ms": start_ns // 1_000_000,
        "end_ns": end_ns,
        "duration_ms": max(0, end_ns - start_ns) / 1e6,
        "steps": steps,
        "priced": priced,
        "llm_calls": llm_calls,
        "tools": tools,
        "errors": errors,
        "usage": {
            "input": input_tokens,
            "cache_read": cache_read,
            "cache_write": cache_write,
            "output": output,
            "reasoning": reasoning,
        },
        "cost": cost,
        "unpriced": unpriced,
        "session": session,
        "models": json.loads(models),
        "prompt": prompt,
        "response": response,
        "feedback": feedback,
        "parent_run": parent_run,
    }
