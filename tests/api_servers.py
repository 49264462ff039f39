"""Wire-format handlers for the loopback server: Cohere v2, Voyage v1, TEI and Infinity ``/rerank``.

Each handler scores documents by how many query words they contain (plus a small length tie-break),
answers sorted by score like the real services, and honours ``top_n`` / ``top_k``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tests.loopback import Handler, Reply, Request

SECRET_KEY = "sk-test-NEVER-SHOW-3f9a1c"


def overlap_score(query: str, document: str) -> float:
    """Deterministic relevance: shared words, ties broken towards shorter documents."""
    words = set(query.lower().split())
    return len(words & set(document.lower().split())) + 1.0 / (1 + len(document))


def _ranked(query: str, documents: list[str], limit: int | None) -> list[tuple[int, float]]:
    scored = sorted(((i, overlap_score(query, d)) for i, d in enumerate(documents)), key=lambda p: -p[1])
    return scored if limit is None else scored[:limit]


def cohere_handler(delay: float = 0.0) -> Handler:
    """``POST /v2/rerank`` as Cohere answers it."""

    def handle(request: Request) -> Reply:
        body = request.json
        ranked = _ranked(body["query"], body["documents"], body.get("top_n"))
        return Reply(200, {
            "id": "rr-1",
            "results": [{"index": i, "relevance_score": s} for i, s in ranked],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
        }, delay=delay)

    return handle


def voyage_handler(delay: float = 0.0) -> Handler:
    """``POST /v1/rerank`` as Voyage answers it."""

    def handle(request: Request) -> Reply:
        body = request.json
        ranked = _ranked(body["query"], body["documents"], body.get("top_k"))
        tokens = len(body["query"].split()) * len(body["documents"]) + sum(len(d.split()) for d in body["documents"])
        return Reply(200, {
            "object": "list",
            "data": [{"index": i, "relevance_score": s} for i, s in ranked],
            "model": body["model"],
            "usage": {"total_tokens": tokens},
        }, delay=delay)

    return handle


def tei_handler(delay: float = 0.0) -> Handler:
    """``POST /rerank`` as Text Embeddings Inference answers it: a bare list."""

    def handle(request: Request) -> Reply:
        body = request.json
        return Reply(200, [{"index": i, "score": s} for i, s in _ranked(body["query"], body["texts"], None)],
                     delay=delay)

    return handle


def infinity_handler(delay: float = 0.0) -> Handler:
    """``POST /rerank`` as Infinity answers it: Cohere-shaped results plus usage."""

    def handle(request: Request) -> Reply:
        body = request.json
        ranked = _ranked(body["query"], body["documents"], body.get("top_n"))
        tokens = sum(len(d.split()) for d in body["documents"])
        return Reply(200, {
            "object": "rerank",
            "results": [{"index": i, "relevance_score": s, "document": None} for i, s in ranked],
            "model": body.get("model", "default"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "id": "infinity-1",
            "created": 0,
        }, delay=delay)

    return handle


def scripted(*replies: Reply, then: Handler) -> Handler:
    """Answer ``replies`` to the first requests, then hand every later request to ``then``."""
    state = {"served": 0}
    lock = threading.Lock()

    def handle(request: Request) -> Reply:
        with lock:
            position = state["served"]
            state["served"] += 1
        return replies[position] if position < len(replies) else then(request)

    return handle


def rewrite(handler: Handler, change: Callable[[Reply], Reply]) -> Handler:
    """``handler`` with every reply passed through ``change`` (to corrupt indices, drop results, ...)."""
    return lambda request: change(handler(request))


class InFlight:
    """Wraps a handler, holding each request ``hold`` seconds and recording the most served at once."""

    def __init__(self, handler: Handler, hold: float) -> None:
        self.handler = handler
        self.hold = hold
        self.current = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        try:
            time.sleep(self.hold)
            return self.handler(request)
        finally:
            with self._lock:
                self.current -= 1
