"""Read one tcc run back from an MLflow tracking server through MLflow's own client.

Runs in MLflow's venv (``make interop`` creates it), never the project's:

    python read_mlflow.py http://127.0.0.1:5000 EXPERIMENT_ID RUN_ID

Prints one JSON document in the shape every reader here prints (see tests/interop/test_backends.py):
what the backend shows for the trace (session, cost) and for each span (parent, model, token counts,
messages, cost), each read the way MLflow's UI reads it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import mlflow


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _texts(messages: Any) -> list[str]:
    """The text parts of GenAI-format messages, as MLflow shows them in a span's inputs or outputs."""
    out: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        for part in message.get("parts", []) if isinstance(message, dict) else []:
            if isinstance(part, dict) and part.get("type") == "text":
                out.append(str(part.get("content")))
    return out


def main(base_url: str, experiment_id: str, run_id: str) -> None:
    mlflow.set_tracking_uri(base_url)
    deadline = time.monotonic() + 30
    while True:
        traces = mlflow.search_traces(locations=[experiment_id], return_type="list")
        found = [t for t in traces if any(s.attributes.get("tcc.run.id") == run_id for s in t.data.spans)]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not found:
        raise SystemExit(f"no trace with tcc.run.id={run_id} in experiment {experiment_id}")
    trace = found[0]
    metadata = trace.info.trace_metadata
    cost = _json(metadata.get("mlflow.trace.cost"))
    spans = []
    for s in trace.data.spans:
        a = s.attributes
        usage = _json(a.get("mlflow.chat.tokenUsage")) or {}
        span_cost = _json(a.get("mlflow.llm.cost")) or {}
        spans.append(
            {
                "id": s.span_id,
                "parent_id": s.parent_id,
                "name": s.name,
                "kind": s.span_type,
                "model": a.get("mlflow.llm.model"),
                "provider": a.get("mlflow.llm.provider"),
                "input_tokens": usage.get("input_tokens"),
                "output_tokens": usage.get("output_tokens"),
                "cache_read": usage.get("cache_read_input_tokens"),
                "cache_write": usage.get("cache_creation_input_tokens"),
                "input_messages": _texts(_json(a.get("mlflow.spanInputs"))),
                "output_messages": _texts(_json(a.get("mlflow.spanOutputs"))),
                "cost": span_cost.get("total_cost"),
                "tcc": {k: v for k, v in a.items() if k.startswith("tcc.")},
            }
        )
    print(
        json.dumps(
            {
                "session": metadata.get("mlflow.trace.session"),
                "cost": cost.get("total_cost") if isinstance(cost, dict) else None,
                "spans": spans,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
