"""Anthropic Messages API replies for ``tests/loopback.py`` servers: real response and error JSON for the real SDK."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import pytest

from tests.loopback import Handler, LoopbackServer, Reply, Request

USAGE = {"input_tokens": 120, "output_tokens": 15, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 80}
MODEL = "claude-haiku-5-5"
_PASSAGE = re.compile(r'<passage id="(\d+)">\n(.*?)\n</passage>', re.DOTALL)
_ids = itertools.count(1)


def message(content: list[dict[str, Any]], *, stop_reason: str = "end_turn", usage: dict[str, int] = USAGE) -> Reply:
    """A 200 Messages API response holding ``content`` blocks."""
    number = next(_ids)
    return Reply(
        200,
        {
            "id": f"msg_{number:06d}",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": dict(usage),
        },
        headers={"request-id": f"req_{number:06d}"},
    )


def tool_call(name: str, tool_input: dict[str, Any], *, usage: dict[str, int] = USAGE) -> Reply:
    """The model calling tool ``name`` with ``tool_input``."""
    block = {"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": tool_input}
    return message([block], stop_reason="tool_use", usage=usage)


def ranking(ids: Sequence[Any], *, usage: dict[str, int] = USAGE) -> Reply:
    """A ``submit_ranking`` call listing ``ids`` (1-based, as the model sends them)."""
    return tool_call("submit_ranking", {"ranking": list(ids)}, usage=usage)


def scores(grades: dict[Any, Any], *, usage: dict[str, int] = USAGE) -> Reply:
    """A ``submit_scores`` call grading ``{id: score}``."""
    return tool_call("submit_scores", {"scores": [{"id": i, "score": s} for i, s in grades.items()]}, usage=usage)


def text(answer: str, *, stop_reason: str = "end_turn") -> Reply:
    """A plain text answer with no tool call."""
    return message([{"type": "text", "text": answer}], stop_reason=stop_reason)


def error(status: int, error_type: str, detail: str) -> Reply:
    """An API error body; ``retry-after-ms: 1`` keeps the SDK's retries instant."""
    return Reply(
        status,
        {"type": "error", "error": {"type": error_type, "message": detail}, "request_id": "req_error"},
        headers={"retry-after-ms": "1", "request-id": "req_error"},
    )


def overloaded() -> Reply:
    return error(529, "overloaded_error", "Overloaded")


def unauthorized() -> Reply:
    return error(401, "authentication_error", "invalid x-api-key")


def number_in(text: str) -> int:
    """The first integer in ``text``: test passages carry their true relevance as a number."""
    match = re.search(r"\d+", text)
    if match is None:
        raise ValueError(f"no number in passage {text!r}")
    return int(match.group())


def passages_in(request: Request) -> list[str]:
    """The passage texts a request sent, in the order numbered 1..n."""
    content = request.json["messages"][-1]["content"]
    prompt = content if isinstance(content, str) else "".join(block.get("text", "") for block in content)
    return [passage for _, passage in _PASSAGE.findall(prompt)]


def ranking_by(key: Callable[[str], float]) -> Handler:
    """A handler ranking each request's passages by ``key`` descending, like a perfect judge."""

    def handler(request: Request) -> Reply:
        passages = passages_in(request)
        order = sorted(range(len(passages)), key=lambda i: -key(passages[i]))
        return ranking([i + 1 for i in order])

    return handler


def grading_by(grade: Callable[[str], float]) -> Handler:
    """A handler grading each request's passages with ``grade``."""

    def handler(request: Request) -> Reply:
        return scores({i: grade(passage) for i, passage in enumerate(passages_in(request), 1)})

    return handler


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], LoopbackServer]]:
    """Start scripted servers with ``serve(handler)``; every one stops when the test ends."""
    with ExitStack() as stack:
        yield lambda handler: stack.enter_context(LoopbackServer(handler, max_requests=50))
