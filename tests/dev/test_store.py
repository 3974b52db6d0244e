"""SpanStore: runs summarised from their spans, search, filters, retention, restarts; the JSON API."""

from __future__ import annotations

import json
import math
import pathlib
import sqlite3
import urllib.error
import urllib.request
from typing import Any

import pytest

from contextcompany import _semconv as sc
from contextcompany.dev import OTLPReceiver, ReceivedEvent, ReceivedSpan, RunQuery, SpanStore, Viewer
from contextcompany.dev._store import default_db_path

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def span(
    name: str,
    trace: str,
    span_id: str,
    *,
    parent: str | None = None,
    start_ms: float = 0,
    end_ms: float | None = None,
    status: int = 0,
    message: str = "",
    events: tuple[ReceivedEvent, ...] = (),
    **attributes: Any,
) -> ReceivedSpan:
    return ReceivedSpan(
        name=name,
        trace_id=trace.rjust(32, "0"),
        span_id=span_id.rjust(16, "0"),
        parent_span_id=parent.rjust(16, "0") if parent else None,
        kind=1,
        start_time_unix_nano=T0 + int(start_ms * MS),
        end_time_unix_nano=T0 + int((end_ms if end_ms is not None else start_ms + 1) * MS),
        status_code=status,
        status_message=message,
        attributes=attributes,
        events=events,
        resource={"service.name": "store-test"},
        scope_name="test",
    )


def a(**kwargs: Any) -> dict[str, Any]:
    """Attributes by _semconv constant name: a(OPERATION_NAME="chat") -> {"gen_ai.operation.name": "chat"}."""
    return {getattr(sc, key): value for key, value in kwargs.items()}


def weather_run(
    trace: str = "a1", run_id: str = "run-1", start_ms: float = 0, **run_attrs: Any
) -> list[ReceivedSpan]:
    """A tcc run: a priced step with a tool call under it, a failed unpriced step, feedback; run last."""
    root = "1" + trace
    step1 = span(
        "chat gpt-4o",
        trace,
        "2" + trace,
        parent=root,
        start_ms=start_ms + 1,
        end_ms=start_ms + 50,
        **a(
            OPERATION_NAME=sc.OP_CHAT,
            RUN_ID=run_id,
            REQUEST_MODEL="gpt-4o",
            RESPONSE_MODEL="gpt-4o-2024-08-06",
            INPUT_MESSAGES=sc.text_messages("user", "Weather in Paris?"),
            OUTPUT_MESSAGES=sc.text_messages("assistant", "Calling the weather tool", "tool_calls"),
            USAGE_INPUT_TOKENS=1000,
            USAGE_CACHE_READ_INPUT_TOKENS=600,
            USAGE_CACHE_WRITE_INPUT_TOKENS=100,
            USAGE_OUTPUT_TOKENS=20,
            COST_USD=0.002,
            COST_SOURCE=sc.COST_SOURCE_COMPUTED,
        ),
    )
    tool = span(
        "execute_tool get_weather",
        trace,
        "3" + trace,
        parent="2" + trace,
        start_ms=start_ms + 10,
        **a(
            OPERATION_NAME=sc.OP_EXECUTE_TOOL,
            RUN_ID=run_id,
            TOOL_NAME="get_weather",
            TOOL_CALL_ARGUMENTS='{"city": "Paris"}',
            TOOL_CALL_RESULT='{"temp_c": 21}',
        ),
    )
    failed = span(
        "chat my-llm",
        trace,
        "4" + trace,
        parent=root,
        start_ms=start_ms + 60,
        status=2,
        message="upstream said no",
        events=(
            ReceivedEvent(
                "exception",
                T0,
                {"exception.type": "ProviderError", "exception.message": "upstream said no"},
            ),
        ),
        **a(OPERATION_NAME=sc.OP_CHAT, RUN_ID=run_id, REQUEST_MODEL="my-llm", ERROR_TYPE=sc.ERROR_TYPE_OTHER),
    )
    feedback = span(
        sc.FEEDBACK_SPAN_NAME,
        trace,
        "5" + trace,
        parent=root,
        start_ms=start_ms + 70,
        **a(RUN_ID=run_id, EVALUATION_SCORE_LABEL="thumbs_up", EVALUATION_NAME=sc.FEEDBACK_EVALUATION_NAME),
    )
    run = span(
        "invoke_agent weather",
        trace,
        root,
        start_ms=start_ms,
        end_ms=start_ms + 100,
        **a(
            OPERATION_NAME=sc.OP_INVOKE_AGENT,
            RUN_ID=run_id,
            AGENT_NAME="weather",
            CONVERSATION_ID="sess-1",
            INPUT_MESSAGES=sc.text_messages("user", "What is the weather in Paris?"),
            OUTPUT_MESSAGES=sc.text_messages("assistant", "Sunny, 21 °C.", "stop"),
            RUN_INPUT_TOKENS=1000,
            RUN_CACHE_READ_TOKENS=600,
            RUN_CACHE_CREATION_TOKENS=100,
            RUN_OUTPUT_TOKENS=20,
            RUN_REASONING_TOKENS=0,
            RUN_COST_USD=0.002,
            RUN_LLM_CALLS=1,
            RUN_UNPRICED_CALLS=1,
        ),
        **{sc.METADATA_PREFIX + "team": "qa"},
        **run_attrs,
    )
    return [step1, tool, failed, feedback, run]


@pytest.fixture
def store() -> SpanStore:
    return SpanStore()


def test_a_run_is_summarised_when_its_span_arrives(store: SpanStore) -> None:
    spans = weather_run()
    store.add(spans[:-1])
    assert store.runs() == [] and store.version == 0  # steps wait for their run
    store.add(spans[-1:])
    assert store.version == 1
    (row,) = store.runs()
    assert row["run_id"] == "run-1" and row["agent"] == "weather" and row["status"] == "ok"
    assert (row["steps"], row["priced"], row["llm_calls"], row["tools"], row["errors"]) == (2, 1, 1, 1, 1)
    assert row["usage"] == {
        "input": 1000,
        "cache_read": 600,
        "cache_write": 100,
        "output": 20,
        "reasoning": 0,
    }
    assert row["cost"] == 0.002 and row["unpriced"] == 1
    assert row["models"] == ["gpt-4o-2024-08-06", "my-llm"]
    assert row["session"] == "sess-1" and row["feedback"] == "thumbs_up"
    assert row["prompt"] == "What is the weather in Paris?" and row["response"] == "Sunny, 21 °C."
    assert row["duration_ms"] == 100 and row["start_ms"] == T0 // MS and row["cursor"] == str(T0)


def test_the_run_detail_holds_every_span_as_a_view(store: SpanStore) -> None:
    store.add(weather_run())
    detail = store.run("run-1")
    assert detail is not None and detail["outside"] == 0
    root, *rest = detail["spans"]
    assert root["kind"] == "run" and root["metadata"] == {"team": "qa"} and root["session"] == "sess-1"
    assert [s["kind"] for s in rest] == ["step", "tool", "step", "feedback"]  # by start time
    step, tool, failed, feedback = rest
    assert step["model"] == "gpt-4o-2024-08-06" and step["request_model"] == "gpt-4o"
    assert step["usage"]["cache_write"] == 100 and step["cost"] == 0.002
    assert step["input"] == [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]
    assert step["finish_reasons"] == [] and step["output"][0]["finish_reason"] == "tool_calls"
    assert step["start_us"] == 1000 and step["duration_us"] == 49_000
    assert tool["tool"] == {
        "name": "get_weather",
        "call_id": None,
        "arguments": {"city": "Paris"},
        "result": {"temp_c": 21},
    }
    # error.type "_OTHER" says nothing: the exception event's type is shown instead
    assert failed["error"]["type"] == "ProviderError" and failed["error"]["message"] == "upstream said no"
    assert feedback["feedback"]["label"] == "thumbs_up"
    assert store.run("no-such-run") is None


def test_spans_of_other_instrumentations_and_outside_the_run(store: SpanStore) -> None:
    spans = weather_run()
    http = span("POST /chat/completions", "a1", "6a1", parent="2a1", start_ms=2, **{"http.method": "POST"})
    request = span("GET /ask", "a1", "7a1", start_ms=-5, end_ms=200)
    run = spans[-1]
    outer_run = ReceivedSpan(**{**_fields(run), "parent_span_id": "7a1".rjust(16, "0")})
    store.add([*spans[:-1], http, request, outer_run])
    detail = store.run("run-1")
    assert detail is not None
    assert "POST /chat/completions" in [s["name"] for s in detail["spans"]]
    assert detail["outside"] == 1  # the web request that called the agent


def _fields(s: ReceivedSpan) -> dict[str, Any]:
    return {f: getattr(s, f) for f in ReceivedSpan.__dataclass_fields__}


def test_feedback_sent_later_in_its_own_trace_updates_the_run(store: SpanStore) -> None:
    spans = weather_run()
    store.add([s for s in spans if s.name != sc.FEEDBACK_SPAN_NAME])
    assert store.runs()[0]["feedback"] is None
    version = store.version
    store.add(
        [span(sc.FEEDBACK_SPAN_NAME, "f9", "9f9", **a(RUN_ID="run-1", EVALUATION_SCORE_LABEL="thumbs_down"))]
    )
    assert store.version > version
    assert store.runs()[0]["feedback"] == "thumbs_down"
    detail = store.run("run-1")
    assert detail is not None and detail["spans"][-1]["kind"] == "feedback"
    assert detail["spans"][-1]["parent"] == detail["spans"][0]["id"]


def test_another_sdks_agent_span_gets_totals_from_its_steps_without_double_counting(store: SpanStore) -> None:
    usage = a(OPERATION_NAME=sc.OP_CHAT, REQUEST_MODEL="m", USAGE_INPUT_TOKENS=10, USAGE_OUTPUT_TOKENS=5)
    store.add(
        [
            span("chat m", "b2", "2b2", parent="1b2", **usage, **a(COST_USD=0.5)),
            # an LLM library's own span inside that step, reporting the same call
            span("openai.chat", "b2", "3b2", parent="2b2", **usage),
            span("chat m", "b2", "4b2", parent="1b2", start_ms=5, **usage),
            span("invoke_agent other", "b2", "1b2", end_ms=10, **a(OPERATION_NAME=sc.OP_INVOKE_AGENT)),
        ]
    )
    (row,) = store.runs()
    assert row["run_id"] == "1b2".rjust(16, "0")  # no tcc run id: the span id
    assert row["agent"] == "other" and row["steps"] == 2 and row["priced"] == 1
    assert row["usage"]["input"] == 20 and row["usage"]["output"] == 10 and row["cost"] == 0.5


def test_filters_search_and_paging(store: SpanStore) -> None:
    for i in range(6):
        spans = weather_run(f"c{i}", f"run-{i}", start_ms=i * 1000)
        if i % 2:
            spans[-1] = ReceivedSpan(**{**_fields(spans[-1]), "status_code": 2, "status_message": "gave up"})
        if i == 5:
            spans[0].attributes[sc.RESPONSE_MODEL] = "claude-opus-4"
            spans[-1].attributes[sc.AGENT_NAME] = "planner"
            spans[-1].attributes[sc.CONVERSATION_ID] = "sess-2"
            spans[-1].attributes[sc.INPUT_MESSAGES] = sc.text_messages("user", "Book 100% of the_rooms")
        store.add(spans)
    ids = lambda q: [r["run_id"] for r in store.runs(q)]  # noqa: E731
    assert ids(RunQuery()) == [f"run-{i}" for i in (5, 4, 3, 2, 1, 0)]  # newest first
    assert ids(RunQuery(status="error")) == ["run-5", "run-3", "run-1"]
    assert ids(RunQuery(agent="planner")) == ["run-5"]
    assert ids(RunQuery(model="claude-opus-4")) == ["run-5"]
    assert ids(RunQuery(model="gpt-4o-2024-08-06", status="ok")) == ["run-4", "run-2", "run-0"]
    assert ids(RunQuery(session="sess-2")) == ["run-5"]
    assert ids(RunQuery(text="BOOK 100%")) == ["run-5"]  # any case; % is a character, not a wildcard
    assert ids(RunQuery(text="the_r")) == ["run-5"]
    assert ids(RunQuery(text="100_")) == []
    assert ids(RunQuery(text="%")) == ["run-5"]  # shorter than the trigram index: still found
    assert len(ids(RunQuery(text="calling the weather"))) == 6  # a step's text
    first = store.runs(RunQuery(limit=2))
    assert [r["run_id"] for r in first] == ["run-5", "run-4"]
    assert ids(RunQuery(limit=2, before=int(first[-1]["cursor"]))) == ["run-3", "run-2"]
    assert store.facets() == {
        "agents": ["planner", "weather"],
        "models": ["claude-opus-4", "gpt-4o-2024-08-06", "my-llm"],
        "sessions": ["sess-2", "sess-1"],
    }
    session = store.session("sess-1")
    assert session is not None and session["totals"]["runs"] == 5 and session["totals"]["errors"] == 2
    assert session["totals"]["input"] == 5000 and session["totals"]["cost"] == pytest.approx(0.01)
    assert [r["run_id"] for r in session["runs"]] == [f"run-{i}" for i in range(5)]  # oldest first
    assert store.session("nobody") is None


def test_retention_drops_the_oldest_runs_with_their_spans(tmp_path: pathlib.Path) -> None:
    store = SpanStore(tmp_path / "dev.db", max_runs=3)
    for i in range(5):
        store.add(weather_run(f"d{i}", f"run-{i}", start_ms=i * 1000))
    assert [r["run_id"] for r in store.runs()] == ["run-4", "run-3", "run-2"]
    assert store.run_count == 3 and store.span_count() == 15
    assert store.run("run-0") is None
    assert store.runs(RunQuery(model="my-llm")) and len(store.runs(RunQuery(text="weather"))) == 3
    with sqlite3.connect(tmp_path / "dev.db") as conn:
        assert conn.execute("SELECT count(*) FROM run_models").fetchone()[0] == 6
        assert conn.execute("SELECT count(*) FROM run_text").fetchone()[0] == 3
    store.close()


def test_spans_no_run_claims_are_dropped_after_the_window() -> None:
    store = SpanStore(loose_span_window=50)
    store.add([span("GET /health", f"e{i}", f"1e{i}") for i in range(60)])
    store.add(weather_run("f1", "run-kept"))
    store.add([span("GET /health", f"g{i}", f"1g{i}") for i in range(10_000)])
    assert store.run("run-kept") is not None
    assert store.span_count() <= 5 + 10_000


def test_runs_survive_a_restart(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nested" / "dev.db"
    store = SpanStore(path)
    store.add(weather_run())
    store.close()
    store.close()  # twice is fine
    again = SpanStore(path)
    assert [r["run_id"] for r in again.runs()] == ["run-1"] and again.run_count == 1
    detail = again.run("run-1")
    assert detail is not None and len(detail["spans"]) == 5
    again.add(weather_run("a2", "run-2", start_ms=500))  # the same resource, stored once
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM resources").fetchone()[0] == 1
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema'")
    again.close()
    with pytest.raises(RuntimeError, match="another version of contextcompany dev"):
        SpanStore(path)


def test_values_json_cannot_hold_are_kept_as_text(store: SpanStore) -> None:
    spans = weather_run()
    spans[-1].attributes.update({"x.nan": math.nan, "x.bytes": b"\x00\xff", "x.list": (1.5, math.inf)})
    store.add(spans)
    detail = store.run("run-1")
    assert detail is not None
    attributes = detail["spans"][0]["attributes"]
    assert (
        attributes["x.nan"] == "nan"
        and attributes["x.bytes"] == "0x00ff"
        and attributes["x.list"] == [1.5, "inf"]
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_runs"):
        SpanStore(max_runs=0)


def test_default_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_db_path() == tmp_path / "contextcompany" / "dev.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_db_path() == pathlib.Path.home() / ".local" / "share" / "contextcompany" / "dev.db"


# --- the API, over real HTTP on the receiver's port ------------------------------------------------


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def test_the_api_and_pages_over_http(store: SpanStore) -> None:
    viewer = Viewer(store)
    with OTLPReceiver(port=0, on_spans=store.add, web=viewer.handle) as rx:
        store.add(weather_run())
        status, headers, body = get(rx.endpoint + "/api/runs?status=ok")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        data = json.loads(body)
        assert [r["run_id"] for r in data["runs"]] == ["run-1"] and data["version"] == 1
        status, _, body = get(rx.endpoint + "/api/runs/run-1")
        assert status == 200 and len(json.loads(body)["spans"]) == 5
        assert get(rx.endpoint + "/api/runs/nope")[0] == 404
        assert get(rx.endpoint + "/api/sessions/sess-1")[0] == 200
        assert get(rx.endpoint + "/api/runs?before=soon")[0] == 400
        assert json.loads(get(rx.endpoint + "/api/version")[2]) == {"version": 1, "runs": 1}
        for page in ("/", "/runs/run-1", "/sessions/sess-1"):
            status, headers, body = get(rx.endpoint + page)
            assert status == 200 and b'<script src="/static/app.js"' in body
            # no inline script can run, and nothing loads from elsewhere
            assert "script-src 'self'" in headers["Content-Security-Policy"]
            assert "default-src 'none'" in headers["Content-Security-Policy"]
        for name in ("app.js", "style.css", "favicon.svg"):
            assert get(rx.endpoint + "/static/" + name)[0] == 200
        assert get(rx.endpoint + "/static/../_store.py")[0] == 404
        assert get(rx.endpoint + "/nothing/here")[0] == 404
        # DNS rebinding: a page on another origin that resolves to 127.0.0.1 is refused
        assert get(rx.endpoint + "/api/runs", {"Host": "attacker.example:80"})[0] == 403
        assert get(rx.endpoint + "/api/runs", {"Host": f"localhost:{rx.port}"})[0] == 200
        # OTLP paths keep their collector answers
        assert get(rx.traces_url)[0] == 405
