"""Fault-injecting HTTP servers on 127.0.0.1 and each backend's wire format, for the fault matrix.

A :class:`FaultServer` is a :class:`tests.loopback.LoopbackServer` that can also misbehave below HTTP:
a handler returns a :class:`~tests.loopback.Reply` as usual, or one of the socket-level faults
:data:`RESET` (close with a TCP reset, no answer), :data:`SILENT` (accept, never answer) or
:class:`Trickle` (send headers, then one body byte per interval, forever). Every server is bounded:
handler threads are daemons, silent and trickling connections end when the ``with`` block ends, and
after ``max_requests`` requests every answer is a plain 503.

:class:`Wire` describes one backend's wire format (success body, error body, where the result indices
live) so that :data:`FAULTS` builds the same fault for every backend.
"""

from __future__ import annotations

import copy
import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Union

from tests import chat_completions_server as openai_wire
from tests import messages_server as anthropic_wire
from tests.api_servers import (
    cohere_handler,
    infinity_handler,
    overlap_score,
    rewrite,
    scripted,
    tei_handler,
    voyage_handler,
)
from tests.loopback import Handler, LoopbackServer, Reply, Request
from tests.wire_fakes import (
    bedrock_error,
    bedrock_handler,
    detail_error,
    jina_handler,
    mixedbread_handler,
    nvidia_handler,
    pinecone_error,
    pinecone_handler,
    vllm_error,
    vllm_rerank_handler,
    vllm_score_handler,
)

QUERY = "reset password account"
DOCS = ["the cat", "reset my password", "how do i reset my password for my account", "python error"]

#: Seconds between the bytes a :class:`Trickle` server sends.
TRICKLE_INTERVAL = 0.3


class _Action:
    """A socket-level fault a handler can return instead of a :class:`Reply`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Read the request, then close the socket with SO_LINGER 0 (a TCP RST), answering nothing.
RESET = _Action("RESET")
#: Read the request, then never answer (until the server shuts down).
SILENT = _Action("SILENT")


@dataclass(frozen=True)
class Trickle:
    """Send ``200`` headers announcing a large JSON body, then one byte every ``interval`` seconds, forever."""

    interval: float = TRICKLE_INTERVAL


FaultHandler = Callable[[Request], Union[Reply, _Action, Trickle]]


class FaultServer(LoopbackServer):
    """A :class:`~tests.loopback.LoopbackServer` whose handler may also answer :data:`RESET`, :data:`SILENT` or a
    :class:`Trickle`; silent and trickling connections end when the ``with`` block ends."""

    def __init__(self, handler: FaultHandler, *, max_requests: int = 50) -> None:
        super().__init__(handler, max_requests=max_requests)  # type: ignore[arg-type]
        self.closing = threading.Event()

    def __exit__(self, *exc_info: Any) -> None:
        self.closing.set()  # ends silent and trickling connections
        super().__exit__(*exc_info)

    def _respond(self, http: BaseHTTPRequestHandler, answer: Any) -> None:
        if answer is RESET:
            http.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            http.connection.close()
            http.close_connection = True
        elif answer is SILENT:
            self.closing.wait()
            http.close_connection = True
        elif isinstance(answer, Trickle):
            http.send_response(200)
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", "10000000")
            http.end_headers()
            http.close_connection = True
            while not self.closing.wait(answer.interval):
                http.wfile.write(b" ")
        else:
            super()._respond(http, answer)


def always(answer: Reply | _Action | Trickle) -> FaultHandler:
    """A handler giving the same answer to every request."""
    return lambda request: answer


# --------------------------------------------------------------------------------------------------
# Wire formats


@dataclass(frozen=True)
class Wire:
    """How one backend's service answers: success handler, error body, and where result indices live.

    ``entries(body)`` is the (mutable) list of results inside a success body, ``first_id`` the smallest
    valid index (0 for rerank APIs, 1 for Claude's passage ids), ``listed(body)`` the body's results as a
    bare top-level list (``None`` where a list is the correct shape, as for TEI).
    """

    name: str
    ok: Callable[[], Handler]
    error_body: Callable[[int, str], Any]
    entries: Callable[[Any], list[Any]]
    results_key: str
    first_id: int = 0
    listed: Callable[[Any], Any] | None = None
    #: Where results sit inside an encoded field (OpenAI tool arguments are a JSON string): unpack, repack.
    decode: Callable[[Any], Any] = lambda body: body
    encode: Callable[[Any], Any] = lambda body: body

    def id_of(self, entry: Any) -> Any:
        return entry["index"] if isinstance(entry, dict) else entry

    def with_id(self, entry: Any, value: Any) -> Any:
        return {**entry, "index": value} if isinstance(entry, dict) else value


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 422: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error",
}


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fault"}


def _claude_ok() -> Handler:
    return anthropic_wire.ranking_by(lambda passage: overlap_score(QUERY, passage))


def _openai_error(status: int, message: str) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _openai_arguments(body: Any, change: Callable[[str | Any], Any]) -> Any:
    function = body["choices"][0]["message"]["tool_calls"][0]["function"]
    function["arguments"] = change(function["arguments"])
    return body


WIRES: dict[str, Wire] = {
    "cohere": Wire("cohere", cohere_handler, lambda status, m: {"message": m}, lambda b: b["results"], "results",
                   listed=lambda b: b["results"]),
    "voyage": Wire("voyage", voyage_handler, lambda status, m: {"detail": m}, lambda b: b["data"], "data",
                   listed=lambda b: b["data"]),
    "tei": Wire("tei", tei_handler, lambda status, m: {"error": m, "error_type": "Validation"}, lambda b: b,
                "results"),
    "infinity": Wire("infinity", infinity_handler, lambda status, m: {"detail": m}, lambda b: b["results"],
                     "results", listed=lambda b: b["results"]),
    "claude": Wire("claude", _claude_ok, _anthropic_error, lambda b: b["content"][0]["input"]["ranking"], "content",
                   first_id=1, listed=lambda b: b["content"]),
    "openai": Wire("openai", lambda: openai_wire.judge(overlap_score), _openai_error,
                   lambda b: b["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]["ranking"],
                   "choices", first_id=1, listed=lambda b: b["choices"],
                   decode=lambda b: _openai_arguments(b, json.loads),
                   encode=lambda b: _openai_arguments(b, json.dumps)),
    "http-cohere": Wire("http-cohere", vllm_rerank_handler, vllm_error, lambda b: b["results"], "results",
                        listed=lambda b: b["results"]),
    "vllm-score": Wire("vllm-score", vllm_score_handler, vllm_error, lambda b: b["data"], "data",
                       listed=lambda b: b["data"]),
    "jina": Wire("jina", jina_handler, detail_error, lambda b: b["results"], "results", listed=lambda b: b["results"]),
    "nvidia": Wire("nvidia", nvidia_handler, detail_error, lambda b: b["rankings"], "rankings",
                   listed=lambda b: b["rankings"]),
    "mixedbread": Wire("mixedbread", mixedbread_handler, detail_error, lambda b: b["data"], "data",
                       listed=lambda b: b["data"]),
    "pinecone": Wire("pinecone", pinecone_handler, pinecone_error, lambda b: b["data"], "data",
                     listed=lambda b: b["data"]),
    "bedrock": Wire("bedrock", bedrock_handler, bedrock_error, lambda b: b["results"], "results",
                    listed=lambda b: b["results"]),
}


# --------------------------------------------------------------------------------------------------
# Faults: name -> (wire -> handler); a fault that does not apply to a wire returns None.


def _status(status: int, message: str = "fault injected", headers: dict[str, str] | None = None):
    def build(wire: Wire) -> FaultHandler:
        return always(Reply(status, wire.error_body(status, message), headers=dict(headers or {})))

    return build


def _then_ok(status: int, headers: dict[str, str]):
    def build(wire: Wire) -> FaultHandler:
        return scripted(Reply(status, wire.error_body(status, "rate limited"), headers=headers), then=wire.ok())

    return build


def _echo(status: int):
    """An error body that quotes the credentials the request carried, as some proxies and servers do."""

    def build(wire: Wire) -> FaultHandler:
        def handle(request: Request) -> Reply:
            sent = " / ".join(request.headers[h] for h in ("authorization", "x-api-key", "api-key")
                              if h in request.headers)
            return Reply(status, wire.error_body(status, f"credentials {sent!r} rejected for this route"))

        return handle

    return build


def _body(change: Callable[[Wire, Reply], Reply], applies: Callable[[Wire], bool] = lambda wire: True):
    """The success answer rewritten by ``change``; ``None`` for a wire where the fault does not apply."""

    def build(wire: Wire) -> FaultHandler | None:
        if not applies(wire):
            return None
        return rewrite(wire.ok(), lambda reply: change(wire, Reply(reply.status, copy.deepcopy(reply.body),
                                                                   headers=dict(reply.headers))))

    return build


def _truncated(wire: Wire, reply: Reply) -> Reply:
    payload = json.dumps(reply.body).encode()
    return Reply(200, raw=payload[: len(payload) // 2], headers=reply.headers)


def _html(wire: Wire, reply: Reply) -> Reply:
    page = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body><h1>It works!</h1></body></html>"
    return Reply(200, raw=page, headers={"Content-Type": "text/html; charset=utf-8"})


def _top_level_list(wire: Wire, reply: Reply) -> Reply:
    assert wire.listed is not None
    return Reply(200, wire.listed(reply.body), headers=reply.headers)


def _null(wire: Wire, reply: Reply) -> Reply:
    return Reply(200, None, headers=reply.headers)


def _results_null(wire: Wire, reply: Reply) -> Reply:
    return Reply(200, {wire.results_key: None}, headers=reply.headers)


def _index(mutate: Callable[[Wire, list[Any], int], None]):
    """Change the result for ``DOCS[1]`` (index 1, or Claude's passage id 2) with ``mutate``."""

    def change(wire: Wire, reply: Reply) -> Reply:
        body = wire.decode(reply.body)
        entries = wire.entries(body)
        target = wire.first_id + 1
        position = next((i for i, e in enumerate(entries) if wire.id_of(e) == target), None)
        if position is not None:
            mutate(wire, entries, position)
        reply.body = wire.encode(body)
        return reply

    return _body(change)


def _set(value: Callable[[Wire, Any], Any]):
    def mutate(wire: Wire, entries: list[Any], position: int) -> None:
        entries[position] = wire.with_id(entries[position], value(wire, wire.id_of(entries[position])))

    return _index(mutate)


def _duplicate(wire: Wire, entries: list[Any], position: int) -> None:
    entries.append(copy.deepcopy(entries[position]))


def _missing(wire: Wire, entries: list[Any], position: int) -> None:
    del entries[position]


RETRY_AFTER_LONG = 3600

FAULTS: dict[str, Callable[[Wire], FaultHandler | None]] = {
    "http_400": _status(400),
    "http_401": _status(401),
    "http_403": _status(403),
    "http_404": _status(404),
    "http_408": _status(408),
    "http_413": _status(413),
    "http_422": _status(422),
    "http_429_retry_after_0_then_ok": _then_ok(429, {"Retry-After": "0"}),
    "http_429_retry_after_3600": _status(429, "rate limited", {"Retry-After": str(RETRY_AFTER_LONG)}),
    "http_500": _status(500),
    "http_502": _status(502),
    "http_503": _status(503),
    "http_504": _status(504),
    "http_520": _status(520),
    "http_529": _status(529),
    "connection_reset": lambda wire: always(RESET),
    "silent": lambda wire: always(SILENT),
    "trickle": lambda wire: always(Trickle()),
    "truncated_json": _body(_truncated),
    "html_body": _body(_html),
    "top_level_list": _body(_top_level_list, applies=lambda wire: wire.listed is not None),
    "null_body": _body(_null),
    "results_null": _body(_results_null),
    "index_float": _set(lambda wire, i: float(i)),
    "index_bool": _set(lambda wire, i: True),
    "index_str": _set(lambda wire, i: str(i)),
    "index_out_of_range": _set(lambda wire, i: wire.first_id + len(DOCS)),
    "index_negative": _set(lambda wire, i: -1),
    "index_duplicate": _index(_duplicate),
    "index_missing": _index(_missing),
    "echo_key_400": _echo(400),
    "echo_key_401": _echo(401),
    "echo_key_503": _echo(503),
}
