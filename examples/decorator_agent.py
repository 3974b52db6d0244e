"""A support agent built with decorators: @tcc.agent records each call as a run, @tcc.tool each tool
call, and the steps inside attach to the current run. No API key needed.

    make demo
    python examples/decorator_agent.py   # sends to OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4318)
"""

from __future__ import annotations

import contextcompany as tcc

ORDERS = {"A-1001": {"status": "shipped", "eta": "Friday"}, "A-1002": {"status": "processing", "eta": None}}


@tcc.tool
def lookup_order(order_id: str) -> dict[str, object]:
    if order_id not in ORDERS:
        raise LookupError(f"unknown order {order_id}")
    return ORDERS[order_id]


@tcc.tool(name="send_email")
def notify(to: str, body: str, api_key: str = "sk-live-abcdefghijklmnopqrstuv") -> bool:
    return True  # api_key is recorded as [REDACTED]: its parameter name says it is a credential


def call_model(messages: list[dict[str, str]], reply: str) -> str:
    """One LLM call, recorded as a step of the current run (in OpenAI's message shape)."""
    with tcc.step() as s:
        s.prompt(messages).model(requested="gpt-4.1", used="gpt-4.1-2025-04-14")
        s.response({"role": "assistant", "content": reply}).finish_reason("stop")
        s.tokens(prompt_uncached=180 + 20 * len(messages), completion=len(reply.split()) * 2)
    return reply


@tcc.agent(name="support")
def support(question: str, order_id: str) -> str:
    messages = [
        {"role": "system", "content": "You answer order questions."},
        {"role": "user", "content": question},
    ]
    call_model(messages, f"Let me look up {order_id}.")
    try:
        order = lookup_order(order_id)
    except LookupError:
        return call_model(messages, f"I could not find order {order_id}.")
    answer = call_model(messages, f"Order {order_id} is {order['status']}.")
    notify("customer@example.com", answer)
    return answer


if __name__ == "__main__":
    print(support("Where is my order?", "A-1001"))
    print(support("Has it shipped yet?", "A-9999"))
