"""A small OpenAI-compatible server for tests, on 127.0.0.1, with scripted behaviour."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Stub:
    def __init__(self) -> None:
        self.models = ["stub-model"]
        self.reply = ["Hello", " from", " the", " server", "."]
        self.delay = 0.0  # seconds between chunks
        self.mode = "ok"  # ok | error500 | unauthorized | drop | hang | error-chunk
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.chunks_sent = 0
        self.client_gone = threading.Event()
        self.usage = True
        # A reply made from the request (the judge tests' scripted verdicts), or None
        # for ``reply`` every time.
        self.respond: Callable[[dict[str, Any]], str] | None = None
        self.lock = threading.Lock()
        self.streaming = 0  # replies being sent right now
        self.logprobs = True  # answer "logprobs": true as OpenAI does (False: ignore it)
        self.most_streaming = 0  # the most at once


class _Handler(BaseHTTPRequestHandler):
    stub: Stub

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.stub.headers.append(dict(self.headers))
        if self.path.rstrip("/") == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [{"id": m, "object": "model"} for m in self.stub.models],
                },
            )
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.stub.requests.append(body)
        self.stub.headers.append(dict(self.headers))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": "not found"}})
            return
        refusal = self._refusal(body)
        if refusal is not None:
            self._json(*refusal)
            return
        if self.stub.mode == "hang":
            time.sleep(5)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        with self.stub.lock:
            self.stub.streaming += 1
            self.stub.most_streaming = max(self.stub.most_streaming, self.stub.streaming)
        try:
            self._stream(body)
        except (BrokenPipeError, ConnectionResetError):
            self.stub.client_gone.set()
        finally:
            with self.stub.lock:
                self.stub.streaming -= 1

    def _refusal(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if self.stub.mode == "unauthorized":
            return 401, {"error": {"message": "Incorrect API key provided"}}
        if self.stub.mode == "echo-key":  # a server that quotes the key it was sent
            sent = self.headers.get("Authorization", "").removeprefix("Bearer ")
            return 401, {"error": {"message": f"Incorrect API key provided: {sent}"}}
        if self.stub.mode == "error500":
            return 500, {"error": {"message": "CUDA out of memory on worker 2"}}
        if body.get("model") not in self.stub.models:
            return 404, {"error": {"message": f"The model {body.get('model')} does not exist"}}
        return None

    def _stream(self, body: dict[str, Any]) -> None:
        self.wfile.write(b": keep-alive\n\n")
        pieces = self.stub.reply
        if self.stub.respond is not None:
            with self.stub.lock:
                pieces = [self.stub.respond(body)]
        for index, piece in enumerate(pieces):
            if self.stub.mode == "drop" and index == 2:
                self.connection.shutdown(2)
                return
            if self.stub.mode == "error-chunk" and index == 2:
                self._event({"error": {"message": "worker crashed"}})
                return
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {"content": piece},
                "finish_reason": None,
            }
            if body.get("logprobs") and self.stub.logprobs:  # each piece a token, made up
                alternatives = [
                    {"token": piece, "logprob": -0.25},
                    {"token": piece.upper(), "logprob": -1.5},
                ][: int(body.get("top_logprobs") or 0)]
                choice["logprobs"] = {
                    "content": [{"token": piece, "logprob": -0.25, "top_logprobs": alternatives}]
                }
            self._event({"choices": [choice]})
            self.stub.chunks_sent += 1
            time.sleep(self.stub.delay)
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if self.stub.usage and body.get("stream_options", {}).get("include_usage"):
            self._event(
                {
                    "choices": [],
                    "usage": {
                        "prompt_tokens": 12,
                        "completion_tokens": len(pieces),
                        "total_tokens": 12 + len(pieces),
                    },
                }
            )
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"stub": stub})


@contextmanager
def serve(stub: Stub | None = None) -> Iterator[tuple[str, Stub]]:
    """Run the stub on a free port; yields (base URL ending in /v1, the stub)."""
    stub = stub or Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", stub
    finally:
        server.shutdown()
        server.server_close()
