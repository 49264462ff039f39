"""OpenAI chat-completions replies for ``tests/loopback.py`` servers: real response and error JSON for the real SDK.

Success bodies are ``chat.completion`` objects (tool calls with JSON-string arguments, plain text, refusals,
``logprobs.content[].top_logprobs``); errors are ``{"error": {...}}`` bodies with the status the server would send.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from tests.loopback import Handler, Reply, Request

MODEL = "gpt-test-mini"
USAGE = {"prompt_tokens": 200, "completion_tokens": 20, "total_tokens": 220}
_PASSAGE = re.compile(r'<passage id="(\d+)">\n(.*?)\n</passage>', re.DOTALL)
_QUERY = re.compile(r"Query: (.*)")
_ids = itertools.count(1)


def completion(message: dict[str, Any], *, finish_reason: str = "stop", usage: dict[str, int] = USAGE,
               logprobs: dict[str, Any] | None = None, delay: float = 0.0) -> Reply:
    """A 200 ``chat.completion`` whose one choice holds ``message``."""
    number = next(_ids)
    return Reply(200, {
        "id": f"chatcmpl-{number:06d}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "system_fingerprint": "fp_test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None, **message},
                     "logprobs": logprobs, "finish_reason": finish_reason}],
        "usage": dict(usage),
    }, headers={"x-request-id": f"req_{number:06d}"}, delay=delay)


def tool_call(name: str, arguments: Any, *, delay: float = 0.0) -> Reply:
    """The model calling function ``name``; ``arguments`` is JSON-encoded unless it is already a string."""
    encoded = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = {"id": f"call_{next(_ids):06d}", "type": "function", "function": {"name": name, "arguments": encoded}}
    return completion({"tool_calls": [call]}, finish_reason="tool_calls", delay=delay)


def ranking(ids: Sequence[Any], *, delay: float = 0.0) -> Reply:
    """A ``submit_ranking`` call listing ``ids`` (1-based, as the model sends them)."""
    return tool_call("submit_ranking", {"ranking": list(ids)}, delay=delay)


def scores(grades: dict[Any, Any], *, delay: float = 0.0) -> Reply:
    """A ``submit_scores`` call grading ``{id: score}``."""
    return tool_call("submit_scores", {"scores": [{"id": i, "score": s} for i, s in grades.items()]}, delay=delay)


def text(answer: str, *, finish_reason: str = "stop", delay: float = 0.0) -> Reply:
    """A plain text answer with no tool call."""
    return completion({"content": answer}, finish_reason=finish_reason, delay=delay)


def refusal(reason: str = "I'm sorry, I can't help with that.") -> Reply:
    """A safety refusal: ``message.refusal`` set, no content."""
    return completion({"refusal": reason})


def yes_no(p_yes: float, *, others: dict[str, float] | None = None, delay: float = 0.0) -> Reply:
    """A one-token answer whose top log-probabilities give "Yes" ``p_yes`` and "No" the rest (plus ``others``)."""
    alternatives = {"Yes": p_yes, "No": 1.0 - p_yes, **(others or {})}
    return logprob_answer({token: math.log(max(p, 1e-12)) for token, p in alternatives.items()}, delay=delay)


def logprob_answer(top: dict[str, float], *, delay: float = 0.0) -> Reply:
    """A one-token answer with ``top`` as the first token's ``{token: logprob}`` alternatives."""
    ranked = sorted(top.items(), key=lambda item: -item[1])
    entries = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked]
    first = {**entries[0], "top_logprobs": entries} if entries else {"token": "", "logprob": 0.0, "bytes": [],
                                                                      "top_logprobs": []}
    return completion({"content": first["token"]}, finish_reason="length", logprobs={"content": [first],
                                                                                     "refusal": None}, delay=delay)


def error(status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None,
          headers: dict[str, str] | None = None) -> Reply:
    """An API error body as OpenAI (and compatible servers) send it."""
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": code}},
                 headers=dict(headers or {}))


def rate_limited(retry_after: str = "0") -> Reply:
    return error(429, "Rate limit reached for requests", kind="requests", code="rate_limit_exceeded",
                 headers={"retry-after": retry_after})


def server_error(status: int = 500) -> Reply:
    return error(status, "The server had an error while processing your request.", kind="server_error")


def tools_unsupported() -> Reply:
    """What vLLM answers when it was started without a tool parser."""
    return error(400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set')


def prompt_of(request: Request) -> str:
    """The user message a request sent."""
    content = request.json["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def passages_of(prompt: str) -> list[str]:
    """The passage texts of a prompt, in the order numbered 1..n."""
    return [passage for _, passage in _PASSAGE.findall(prompt)]


def passages_in(request: Request) -> list[str]:
    """The passage texts a request sent, in the order numbered 1..n."""
    return passages_of(prompt_of(request))


def query_of(prompt: str) -> str:
    """The query of a prompt (the default templates hold a line ``Query: ...``)."""
    match = _QUERY.search(prompt)
    return match.group(1) if match else ""


def verdict(system: str, prompt: str, relevance: Callable[[str, str], float]) -> Any:
    """What a perfect judge answers, by ``relevance(query, passage)``, to whatever the system text asks.

    A ranking ``{"ranking": [...]}`` (listwise), grades ``{"scores": [...]}`` 0-10 (pointwise, relevance
    clamped) or, for a yes/no judgement, P(yes) = relevance / (1 + relevance) as a float.
    """
    query = query_of(prompt)
    rel = [relevance(query, passage) for passage in passages_of(prompt)]
    if "relevance judge" in system:
        return rel[0] / (1 + rel[0])
    if "relevance ranker" in system:
        return {"ranking": [i + 1 for i in sorted(range(len(rel)), key=lambda i: -rel[i])]}
    return {"scores": [{"id": i + 1, "score": min(10.0, r)} for i, r in enumerate(rel)]}


def judge(relevance: Callable[[str, str], float], *, tools: bool = True, delay: float = 0.0) -> Handler:
    """A server answering every request as :func:`verdict` does, in the form the request asks for.

    A tool call when the request forces one, JSON text otherwise, yes/no log-probabilities when it asks for
    them. ``tools=False`` answers any request offering tools with vLLM's 400 (a server without a tool parser).
    """

    def handle(request: Request) -> Reply:
        body = request.json
        if body.get("tools") and not tools:
            return tools_unsupported()
        answer = verdict(body["messages"][0]["content"], prompt_of(request), relevance)
        if body.get("logprobs"):
            return yes_no(answer, delay=delay)
        tool = (body.get("tool_choice") or {}).get("function", {}).get("name")
        return tool_call(tool, answer, delay=delay) if tool else text(json.dumps(answer), delay=delay)

    return handle
