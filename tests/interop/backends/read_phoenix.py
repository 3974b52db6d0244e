"""Read one tcc run back from an Arize Phoenix server through Phoenix's own client.

Runs in Phoenix's venv (``make interop`` creates it), never the project's:

    python read_phoenix.py http://127.0.0.1:6006 PROJECT RUN_ID

Prints one JSON document in the shape every reader here prints (see tests/interop/test_backends.py).
Phoenix turns GenAI attributes into OpenInference ones when it ingests them; what it shows is read from
those (``llm.model_name``, ``llm.token_count.*``, ``llm.input_messages``, ``session.id``). Phoenix prices
calls itself from its own model table and has no attribute through which a sender can give a cost, so
"cost" is Phoenix's own estimate (read with its GraphQL API, which its UI uses) and the tcc attributes
are passed along for the test to compare.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx
from phoenix.client import Client

_COSTS = """
query {
  projects { edges { node { name spans(first: 1000) { edges { node {
    spanId costSummary { total { cost } }
  } } } } } }
}
"""


def _messages(a: dict[str, Any], prefix: str) -> list[str]:
    out = []
    index = 0
    while f"{prefix}.{index}.message.role" in a:
        out.append(str(a.get(f"{prefix}.{index}.message.content")))
        index += 1
    return out


def _costs(base_url: str, project: str) -> dict[str, float | None]:
    answer = httpx.post(f"{base_url}/graphql", json={"query": _COSTS}, timeout=30)
    answer.raise_for_status()
    if answer.json().get("errors"):
        raise SystemExit(f"Phoenix's GraphQL API refused the cost query: {answer.json()['errors']}")
    costs: dict[str, float | None] = {}
    for edge in answer.json()["data"]["projects"]["edges"]:
        if edge["node"]["name"] != project:
            continue
        for span in edge["node"]["spans"]["edges"]:
            summary = span["node"]["costSummary"]
            costs[span["node"]["spanId"]] = summary["total"]["cost"] if summary else None
    return costs


def main(base_url: str, project: str, run_id: str) -> None:
    client = Client(base_url=base_url)
    deadline = time.monotonic() + 30
    while True:
        spans = client.spans.get_spans(project_identifier=project, limit=1000)
        traces = {s["context"]["trace_id"] for s in spans if s["attributes"].get("tcc.run.id") == run_id}
        mine = [s for s in spans if s["context"]["trace_id"] in traces]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if not mine:
        raise SystemExit(f"no span with tcc.run.id={run_id} in project {project}")
    costs = _costs(base_url, project)
    out = []
    sessions = set()
    for s in mine:
        a = s["attributes"]
        if a.get("session.id"):
            sessions.add(a["session.id"])
        span_id = s["context"]["span_id"]
        out.append(
            {
                "id": span_id,
                "parent_id": s.get("parent_id"),
                "name": s["name"],
                "kind": s.get("span_kind"),
                "model": a.get("llm.model_name"),
                "provider": a.get("llm.provider"),
                "input_tokens": a.get("llm.token_count.prompt"),
                "output_tokens": a.get("llm.token_count.completion"),
                "cache_read": a.get("llm.token_count.prompt_details.cache_read"),
                "cache_write": a.get("llm.token_count.prompt_details.cache_write"),
                "input_messages": _messages(a, "llm.input_messages"),
                "output_messages": _messages(a, "llm.output_messages"),
                "cost": costs.get(span_id),
                "tcc": {k: v for k, v in a.items() if k.startswith("tcc.")},
            }
        )
    print(
        json.dumps(
            {
                "session": sessions.pop() if len(sessions) == 1 else sorted(sessions) or None,
                "cost": None,  # Phoenix sums its own estimates; the test reads tcc's totals from the run
                "spans": out,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
