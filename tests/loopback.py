"""A scripted HTTP server on 127.0.0.1 for testing real SDKs against a provider's wire format.

Each test gives a handler ``(request) -> Reply``; the server records every request, serves at most
``max_requests`` (then answers 503 and stops counting) and shuts down when the ``with`` block ends.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    """What the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    """What the server answers: JSON (``body``) or raw bytes (``raw``), after ``delay`` seconds."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Handler = Callable[[Request], Reply]


class LoopbackServer:
    """``with LoopbackServer(handler) as server: client(base_url=server.url)``; ``server.requests`` records calls."""

    def __init__(self, handler: Handler, *, max_requests: int = 500) -> None:
        self.handler = handler
        self.max_requests = max_requests
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._make_handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def requests_seen(self, expected: int | None, *, within: float = 1.0) -> int:
        """How many requests arrived, waiting up to ``within`` seconds for ``expected`` of them: under load an
        attempt the client already gave up on can still sit in the listen queue, unread."""
        deadline = time.monotonic() + within
        while expected is not None and len(self.requests) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.requests)

    def __enter__(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _respond(self, http: BaseHTTPRequestHandler, answer: Any) -> None:
        """Send what the handler answered (a :class:`Reply`); subclasses add answers of their own."""
        if answer.delay:
            time.sleep(answer.delay)
        payload = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
        headers = {"Content-Type": "application/json", **answer.headers, "Content-Length": str(len(payload))}
        http.send_response(answer.status)
        for key, value in headers.items():
            http.send_header(key, value)
        http.end_headers()
        http.wfile.write(payload)

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                  self.rfile.read(length) if length else b"")
                with server._lock:
                    server.requests.append(request)
                    over = len(server.requests) > server.max_requests
                answer = Reply(503, {"message": "loopback request limit reached"}) if over else server.handler(request)
                try:
                    server._respond(self, answer)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = _serve

        return _Handler


def sequence(*replies: Reply) -> Handler:
    """A handler answering ``replies`` in order, repeating the last one."""
    state = {"i": 0}
    lock = threading.Lock()

    def handler(request: Request) -> Reply:
        with lock:
            reply = replies[min(state["i"], len(replies) - 1)]
            state["i"] += 1
        return reply

    return handler
