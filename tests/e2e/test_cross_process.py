"""Runs across processes, and what a process leaves open at exit, over real OTLP/HTTP."""

from __future__ import annotations

from contextcompany._ids import run_span_context
from contextcompany.dev import OTLPReceiver

from .conftest import run_script


def test_step_tool_call_and_feedback_from_another_process_join_the_run(receiver: OTLPReceiver) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
    agent = run_script(
        """
        import contextcompany as tcc
        with tcc.run(run_id="order-1234") as r:
            r.prompt("Where is my order?")
            r.response("It ships today.")
        """,
        env,
    )
    assert agent.returncode == 0, agent.stderr
    worker = run_script(  # knows only the run id, e.g. from a job queue
        """
        import contextcompany as tcc
        tcc.step(run_id="order-1234").prompt("summarise").response("ok").model("gpt-4o-mini").end()
        tcc.tool_call(run_id="order-1234", tool_name="refund").args({"amount": 5}).end()
        tcc.submit_feedback("order-1234", score="thumbs_up")
        """,
        env,
    )
    assert worker.returncode == 0, worker.stderr
    spans = {s.name: s for s in receiver.wait_for_spans(4)}
    run = spans["invoke_agent"]
    expected = run_span_context("order-1234")
    assert int(run.trace_id, 16) == expected.trace_id and int(run.span_id, 16) == expected.span_id
    for name in ("chat gpt-4o-mini", "execute_tool refund", "feedback"):
        assert spans[name].trace_id == run.trace_id
        assert spans[name].parent_span_id == run.span_id
        assert spans[name].attributes["tcc.run.id"] == "order-1234"


def test_what_is_open_at_exit_is_sent_as_errors(receiver: OTLPReceiver) -> None:
    result = run_script(
        """
        import contextcompany as tcc
        r = tcc.run()
        r.prompt("q")
        s = r.step().prompt("p")
        orphan = tcc.tool_call(run_id="elsewhere", tool_name="t")
        print("exiting without end()")
        """,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
    )
    assert result.returncode == 0, result.stderr
    spans = {s.name: s for s in receiver.wait_for_spans(3)}
    assert set(spans) == {"invoke_agent", "chat", "execute_tool t"}
    assert spans["invoke_agent"].status_code == 2
    assert spans["invoke_agent"].status_message == "the process exited before the run ended"
    assert spans["invoke_agent"].attributes["error.type"] == "tcc.process_exit"
    assert spans["chat"].status_message == "the run ended before this step"
    assert spans["execute_tool t"].attributes["error.type"] == "tcc.process_exit"
