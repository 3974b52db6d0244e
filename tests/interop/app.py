"""A service as it would run beside tcc: its own TracerProvider, an instrumentation, a provider SDK.

Run in a fresh interpreter per scenario (instrumentations patch the SDKs for the whole process):

    python -m tests.interop.app '{"api": "openai", "instrumentation": "genai-openai"}'

Environment: ``FAKE_PROVIDER_URL`` (the fake provider's base URL for this API) and
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (where ``tcc.SpanProcessor`` exports, over real OTLP/HTTP).

Two runs, one with whole answers and one streamed, each with three provider calls made as a service
would make them:

1. a bare call inside the run (only the instrumentation and the SDK describe it);
2. a call inside a tcc step that records the tokens the response reported (``s.tokens``);
3. a call inside a tcc step that records prompt, response and model but no tokens.

It prints one JSON line: each run's id and what each call's response reported, for the test to
compare with.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider

import contextcompany as tcc

PROMPT = "What is the weather in London?"


@dataclass
class Reported:
    """One call's usage, as the response reported it, in the GenAI convention's terms."""

    model: str
    response_id: str
    input: int
    cache_read: int
    cache_write: int
    output: int
    reasoning: int
    text: str


def instrument(name: str, provider: TracerProvider) -> None:
    if name == "genai-openai":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=provider)
    elif name == "genai-anthropic":
        from opentelemetry.instrumentation.genai.anthropic import AnthropicInstrumentor as GenAI

        GenAI().instrument(tracer_provider=provider)
    elif name == "traceloop-anthropic":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as Traceloop

        Traceloop().instrument(tracer_provider=provider)
    elif name != "none":
        raise SystemExit(f"unknown instrumentation {name!r}")


def openai_call(client: Any, model: str, stream: bool) -> Reported:
    messages = [{"role": "user", "content": PROMPT}]
    if not stream:
        r = client.chat.completions.create(model=model, messages=messages)
        usage, text, answered, ident = r.usage, r.choices[0].message.content, r.model, r.id
    else:
        parts: list[str] = []
        usage = None
        answered = ident = ""
        for chunk in client.chat.completions.create(
            model=model, messages=messages, stream=True, stream_options={"include_usage": True}
        ):
            answered, ident = chunk.model, chunk.id
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                parts.append(choice.delta.content or "")
        text = "".join(parts)
    assert usage is not None, "the answer carried no usage"
    return Reported(
        model=answered,
        response_id=ident,
        input=usage.prompt_tokens,
        cache_read=usage.prompt_tokens_details.cached_tokens,
        cache_write=0,
        output=usage.completion_tokens,
        reasoning=usage.completion_tokens_details.reasoning_tokens,
        text=text,
    )


def anthropic_call(client: Any, model: str, stream: bool) -> Reported:
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 512,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if not stream:
        message = client.messages.create(**kwargs)
    else:
        with client.messages.stream(**kwargs) as events:
            for _ in events.text_stream:
                pass
            message = events.get_final_message()
    u = message.usage
    read, written = u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0
    return Reported(
        model=message.model,
        response_id=message.id,
        input=u.input_tokens + read + written,  # Anthropic's input_tokens leaves the cache out
        cache_read=read,
        cache_write=written,
        output=u.output_tokens,
        reasoning=0,
        text="".join(block.text for block in message.content if block.type == "text"),
    )


def main(config: dict[str, Any]) -> None:
    provider = TracerProvider()
    processor = tcc.SpanProcessor(OTLPSpanExporter(), schedule_delay_millis=50)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    instrument(config["instrumentation"], provider)

    url = os.environ["FAKE_PROVIDER_URL"]
    api = config["api"]
    if api == "openai":
        import openai

        client: Any = openai.OpenAI(base_url=url, api_key="test-key", max_retries=0)
        model, make_call = "gpt-4o", openai_call
    else:
        import anthropic

        client = anthropic.Anthropic(base_url=url, api_key="test-key", max_retries=0)
        model, make_call = "claude-sonnet-4-5", anthropic_call

    runs = []
    for stream in (False, True):  # one run each; the interpreter's start-up is paid once
        reported: list[Reported] = []
        with tcc.run(session_id="interop-session") as r:
            r.prompt(PROMPT)
            reported.append(make_call(client, model, stream))  # 1. bare

            with r.step() as s:  # 2. a step that records the tokens the response reported
                got = make_call(client, model, stream)
                reported.append(got)
                s.prompt(PROMPT).response(got.text).model(requested=model, used=got.model)
                s.tokens(
                    prompt_uncached=got.input - got.cache_read - got.cache_write,
                    prompt_cached=got.cache_read,
                    completion=got.output,
                    cache_write=got.cache_write,
                    reasoning=got.reasoning,
                )

            with r.step() as s:  # 3. a step around the call that records no tokens
                got = make_call(client, model, stream)
                reported.append(got)
                s.prompt(PROMPT).response(got.text).model(requested=model, used=got.model)
            r.response(got.text)
        runs.append({"stream": stream, "run_id": r.run_id, "calls": [asdict(x) for x in reported]})
    ok = tcc.flush()
    provider.shutdown()
    print(json.dumps({"flushed": ok, "runs": runs}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
