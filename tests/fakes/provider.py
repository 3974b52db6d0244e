"""A fake LLM provider on loopback: OpenAI chat completions and Anthropic messages, streamed and not.

The real ``openai`` and ``anthropic`` packages (and the instrumentations that patch them) talk to it
over real HTTP, so everything above the socket runs as it would against the real APIs. Answers are
shaped like the real ones, including the usage blocks that differ between the two providers:

- OpenAI: ``prompt_tokens`` counts every input token; ``prompt_tokens_details.cached_tokens`` the
  cache reads among them; ``completion_tokens`` counts every output token, and
  ``completion_tokens_details.reasoning_tokens`` the reasoning among them. OpenAI reports no cache
  writes. A stream carries usage only when the request asked for it
  (``stream_options={"include_usage": true}``), in a last chunk with no choices.
- Anthropic: ``input_tokens`` counts only the uncached input; ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens`` come beside it. A stream repeats the usage in ``message_start``
  and gives the final counts in ``message_delta``.

Example::

    with FakeProvider() as fake:
        client = openai.OpenAI(base_url=fake.openai_url, api_key="test")
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert fake.calls == 1

Run it alone (``python -m tests.fakes.provider``) to point a script at it by hand.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

__all__ = ["ANTHROPIC_USAGE", "OPENAI_USAGE", "AnthropicUsage", "FakeProvider", "OpenAIUsage", "Request"]

ANSWER: Final = "It is 15°C and cloudy in London."
# Streams send the answer in a few chunks, the first one after FIRST_CHUNK_DELAY (a time to first chunk
# that a test can tell from zero) and the rest CHUNK_DELAY apart.
FIRST_CHUNK_DELAY: Final = 0.05
CHUNK_DELAY: Final = 0.005


@dataclass(frozen=True, slots=True)
class OpenAIUsage:
    """An OpenAI usage block: ``prompt`` counts cache reads too, ``completion`` counts reasoning too."""

    prompt: int
    cached: int
    completion: int
    reasoning: int

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


@dataclass(frozen=True, slots=True)
class AnthropicUsage:
    """An Anthropic usage block: ``uncached`` input is apart from the cache reads and writes."""

    uncached: int
    cache_read: int
    cache_write: int
    output: int

    def to_json(self, output: int | None = None) -> dict[str, Any]:
        return {
            "input_tokens": self.uncached,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {"ephemeral_5m_input_tokens": self.cache_write, "ephemeral_1h_input_tokens": 0},
            "output_tokens": self.output if output is None else output,
            "service_tier": "standard",
        }


OPENAI_USAGE: Final = OpenAIUsage(prompt=1200, cached=1000, completion=300, reasoning=120)
ANTHROPIC_USAGE: Final = AnthropicUsage(uncached=200, cache_read=1000, cache_write=400, output=300)


@dataclass(frozen=True, slots=True)
class Request:
    """One provider call the fake answered."""

    api: str  # "openai" or "anthropic"
    model: str
    stream: bool
    body: dict[str, Any] = field(default_factory=dict)


def _chunks(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a test's output stays readable

    # -- plumbing --

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        value = json.loads(raw or b"{}")
        if not isinstance(value, dict):
            raise ValueError("the request body must be a JSON object")
        return value

    def _json(self, status: HTTPStatus, value: dict[str, Any]) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", f"req_fake_{self.server.next_id()}")
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_event(self, data: str, event: str | None = None) -> None:
        text = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
        payload = text.encode()
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        try:
            body = self._body()
        except ValueError as exc:
            self._json(
                HTTPStatus.BAD_REQUEST, {"error": {"type": "invalid_request_error", "message": str(exc)}}
            )
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        model = str(body.get("model") or "")
        stream = bool(body.get("stream"))
        if path.endswith("/chat/completions"):
            self.server.record(Request("openai", model, stream, body))
            self._openai(body, model, stream)
        elif path.endswith("/messages"):
            self.server.record(Request("anthropic", model, stream, body))
            self._anthropic(model, stream)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": {"type": "not_found", "message": self.path}})

    # -- OpenAI chat completions --

    def _openai(self, body: dict[str, Any], model: str, stream: bool) -> None:
        server = self.server
        ident = f"chatcmpl-fake{server.next_id()}"
        created = int(time.time())
        answered_model = server.openai_response_model or model
        usage = server.openai_usage.to_json()
        if not stream:
            self._json(
                HTTPStatus.OK,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": answered_model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": "fp_fake",
                },
            )
            return

        def chunk(delta: dict[str, Any], finish: str | None) -> str:
            return json.dumps(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": answered_model,
                    "system_fingerprint": "fp_fake",
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                    **({"usage": None} if _include_usage(body) else {}),
                }
            )

        self._start_stream()
        time.sleep(FIRST_CHUNK_DELAY)
        self._send_event(chunk({"role": "assistant", "content": "", "refusal": None}, None))
        for piece in _chunks(ANSWER):
            time.sleep(CHUNK_DELAY)
            self._send_event(chunk({"content": piece}, None))
        self._send_event(chunk({}, "stop"))
        if _include_usage(body):
            self._send_event(
                json.dumps(
                    {
                        "id": ident,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": answered_model,
                        "system_fingerprint": "fp_fake",
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        self._send_event("[DONE]")
        self._end_stream()

    # -- Anthropic messages --

    def _anthropic(self, model: str, stream: bool) -> None:
        server = self.server
        ident = f"msg_fake{server.next_id()}"
        answered_model = server.anthropic_response_model or model
        usage = server.anthropic_usage
        if not stream:
            self._json(
                HTTPStatus.OK,
                {
                    "id": ident,
                    "type": "message",
                    "role": "assistant",
                    "model": answered_model,
                    "content": [{"type": "text", "text": ANSWER}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage.to_json(),
                },
            )
            return
        self._start_stream()
        time.sleep(FIRST_CHUNK_DELAY)
        start = {
            "type": "message_start",
            "message": {
                "id": ident,
                "type": "message",
                "role": "assistant",
                "model": answered_model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage.to_json(output=1),  # as the API does: the output so far
            },
        }
        self._send_event(json.dumps(start), "message_start")
        self._send_event(
            json.dumps(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            ),
            "content_block_start",
        )
        self._send_event(json.dumps({"type": "ping"}), "ping")
        for piece in _chunks(ANSWER):
            time.sleep(CHUNK_DELAY)
            self._send_event(
                json.dumps(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    }
                ),
                "content_block_delta",
            )
        self._send_event(json.dumps({"type": "content_block_stop", "index": 0}), "content_block_stop")
        final = usage.to_json()
        del final["cache_creation"], final["service_tier"]
        self._send_event(
            json.dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": final,
                }
            ),
            "message_delta",
        )
        self._send_event(json.dumps({"type": "message_stop"}), "message_stop")
        self._end_stream()


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, provider: FakeProvider) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.openai_usage = provider.openai_usage
        self.anthropic_usage = provider.anthropic_usage
        self.openai_response_model = provider.openai_response_model
        self.anthropic_response_model = provider.anthropic_response_model

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class FakeProvider:
    """Serves both APIs on ``127.0.0.1:port`` (0: a free port) from a thread of its own.

    ``openai_response_model`` / ``anthropic_response_model`` name the model the answers report (the
    requested one when None), as the real APIs answer with a dated snapshot name.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        openai_usage: OpenAIUsage = OPENAI_USAGE,
        anthropic_usage: AnthropicUsage = ANTHROPIC_USAGE,
        openai_response_model: str | None = None,
        anthropic_response_model: str | None = None,
    ) -> None:
        self.openai_usage = openai_usage
        self.anthropic_usage = anthropic_usage
        self.openai_response_model = openai_response_model
        self.anthropic_response_model = anthropic_response_model
        self._server = _Server(port, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def openai_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Request]:
        with self._server._lock:
            return list(self._server.requests)

    @property
    def calls(self) -> int:
        return len(self.requests)

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":  # pragma: no cover - by hand: python -m tests.fakes.provider [port]
    import sys

    with FakeProvider(int(sys.argv[1]) if len(sys.argv) > 1 else 0) as fake:
        print(f"openai base_url={fake.openai_url}  anthropic base_url={fake.anthropic_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
