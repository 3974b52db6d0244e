"""A minimal OTLP/HTTP collector for benchmarks: reads each request, answers 200, keeps nothing.

Run in its own process so its CPU never counts against the code being measured:

    python bench/sink.py 4319

A benchmark that needs to see what was sent (to replay the same spans elsewhere) asks for it:
``POST /capture`` starts keeping request bodies, ``GET /captured`` returns them (each prefixed by its
length, 4 bytes big-endian) and stops keeping them. Outside such a window nothing is kept.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_lock = threading.Lock()
_captured: list[bytes] | None = None  # a list only between /capture and /captured


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        global _captured
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with _lock:
            if self.path == "/capture":
                _captured = []
            elif _captured is not None and self.path == "/v1/traces":  # spans only, not tcc's metrics
                _captured.append(body)
        self._answer(b"", "application/x-protobuf")

    def do_GET(self) -> None:
        global _captured
        if self.path != "/captured":
            self.send_error(404)
            return
        with _lock:
            bodies, _captured = _captured or [], None
        self._answer(b"".join(len(b).to_bytes(4, "big") + b for b in bodies), "application/octet-stream")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), _Sink)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
