"""The small chat protocol the LLM scorer talks to: one request in, one answer out; providers implement it.

A provider (Anthropic, any OpenAI-compatible server, a LangChain chat model, a LlamaIndex LLM) turns a
:class:`ChatRequest` into its own API call and the reply into a :class:`ChatAnswer`: the forced tool call's
arguments, the text, a refusal flag, token usage and, for yes/no judgements, the first token's log-probabilities.
Nothing here imports a provider SDK or a framework.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, runtime_checkable

from rerank_kit.errors import ProviderError, ProviderResponseError
from rerank_kit.scorers.remote.support import (
    Secret,
    TransientProviderError,
    error_for_status,
    parse_retry_after,
    redact,
)

#: The usage counts every provider reports under the same names.
TOKEN_FIELDS = ("input_tokens", "output_tokens")


@dataclass(frozen=True)
class ChatTool:
    """A tool the model must call: its name, what it is for and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn: system text, user text, the forced tool (``None``: answer in text) and sampling limits.

    ``top_logprobs > 0`` asks for one output token and its most likely alternatives (yes/no judgements).
    ``max_tokens`` and ``temperature`` of ``None`` leave the provider's own settings.
    """

    system: str
    user: str
    tool: Optional[ChatTool] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_logprobs: int = 0


@dataclass
class ChatAnswer:
    """What the model answered, as read from the provider's reply.

    ``tool_input`` is the forced tool call's arguments (a mapping, or the raw string when it was not JSON),
    ``None`` when the model did not call it; ``top_logprobs`` maps the first output token's alternatives
    to their log-probabilities (``None`` when the provider returned none).
    """

    tool_input: Any = None
    text: str = ""
    refused: bool = False
    stop_reason: Optional[str] = None
    usage: Mapping[str, float] = field(default_factory=dict)
    top_logprobs: Optional[Mapping[str, float]] = None


@runtime_checkable
class ChatProvider(Protocol):
    """Anything the LLM scorer can ask: ``await provider.complete(request)`` returns a :class:`ChatAnswer`.

    ``name`` names the model in results and errors; ``supports_tools`` says whether forced tool calls work
    (the text format is used otherwise).
    """

    name: str
    supports_tools: bool

    async def complete(self, request: ChatRequest) -> ChatAnswer: ...


def as_chat_provider(llm: Any, model_type: type, wrap: Callable[[Any], ChatProvider], what: str) -> ChatProvider:
    """``llm`` as a ChatProvider: a framework model (``model_type``) wrapped by ``wrap``, a ChatProvider as it is."""
    if isinstance(llm, model_type):
        return wrap(llm)
    if isinstance(llm, ChatProvider):
        return llm
    raise TypeError(f"llm must be {what}, got {type(llm).__name__}")


class UsageTally:
    """Thread-safe sum of the usage of every request made for one scoring call."""

    def __init__(self, fields: tuple[str, ...] = TOKEN_FIELDS) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.counts: dict[str, float] = dict.fromkeys(fields, 0)

    def add(self, usage: Mapping[str, Any]) -> None:
        with self._lock:
            self.requests += 1
            for name, value in usage.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    self.counts[name] = self.counts.get(name, 0) + value

    def record(self, prices: Mapping[str, float] | None) -> dict[str, float] | None:
        """The call's counts plus ``requests`` and, with ``prices`` ($ per million tokens), ``cost_usd``."""
        if not self.requests:
            return None
        counts = {**self.counts, "requests": self.requests}
        if prices is not None:
            counts["cost_usd"] = cost_usd(counts, prices)
        return counts


def token_usage(source: Any, **names: tuple[str, ...]) -> dict[str, float]:
    """Usage under our names: ``token_usage(u, input_tokens=("prompt_tokens",))`` reads the first number found.

    ``source`` may be an object (SDK usage) or a mapping (framework metadata); missing names are left out.
    """
    found: dict[str, float] = {}
    for ours, theirs in names.items():
        for name in theirs:
            value = _field(source, name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[ours] = value
                break
    return found


def first_token_logprobs(tokens: Any) -> dict[str, float] | None:
    """The first token's alternatives from OpenAI-shaped entries (``token``, ``logprob``, ``top_logprobs``).

    Entries may be objects (the openai SDK) or mappings (LangChain's ``response_metadata``); without listed
    alternatives the sampled token alone is returned; ``None`` when there are no entries.
    """
    if not isinstance(tokens, list) or not tokens:
        return None
    first = tokens[0]
    return logprob_map(_field(first, "top_logprobs") or [first])


def logprob_map(alternatives: Any) -> dict[str, float]:
    """``{token: logprob}`` of ``(token, logprob)`` objects or mappings, skipping malformed ones."""
    found: dict[str, float] = {}
    for alternative in alternatives if isinstance(alternatives, list) else []:
        token, logprob = _field(alternative, "token"), _field(alternative, "logprob")
        if isinstance(token, str) and isinstance(logprob, (int, float)) and not isinstance(logprob, bool):
            found.setdefault(token, logprob)
    return found


def _field(source: Any, name: str) -> Any:
    return source.get(name) if isinstance(source, Mapping) else getattr(source, name, None)


def cost_usd(counts: Mapping[str, float], prices: Mapping[str, float]) -> float:
    """Estimated dollars for ``input_tokens`` and ``output_tokens`` at ``prices`` per million tokens."""
    spent = counts.get("input_tokens", 0) * prices["input"] + counts.get("output_tokens", 0) * prices["output"]
    return round(spent / 1_000_000, 8)


def check_prices(prices: Mapping[str, Any] | None) -> dict[str, float] | None:
    """``{"input": $/Mtok, "output": $/Mtok}`` as floats, or an error naming what is wrong."""
    if prices is None:
        return None
    if not isinstance(prices, Mapping) or set(prices) != {"input", "output"}:
        raise ValueError('prices must be {"input": dollars per million tokens, "output": dollars per million tokens}')
    checked = {}
    for name, value in prices.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"prices[{name!r}] must be a finite number >= 0, got {value!r}")
        checked[name] = float(value)
    return checked


def translate_error(provider: str, exc: Exception, *, key: Secret | None, auth_hint: str, timeout: float | None,
                    where: str, request_hint: str = "") -> Exception:
    """The rerank-kit error for what an SDK or framework raised, read by shape (status code, class name).

    Works for the Stainless SDKs (anthropic, openai) and for frameworks that let their errors through:
    an HTTP status maps as for every backend (409 is transient, as the SDKs treat it), timeouts and
    dropped connections are transient, a reply the SDK could not validate is a response error.
    Anything else passes through unchanged.
    """
    if isinstance(exc, ProviderError):
        return exc
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None)
    name = type(exc).__name__
    if isinstance(status, int) and not isinstance(status, bool) and "ResponseValidation" not in name:
        detail = str(getattr(exc, "message", None) or exc)
        if status in (400, 404, 413, 422) and request_hint:
            detail += f" ({request_hint})"
        detail = redact(detail, key)
        retry_after = parse_retry_after(getattr(response, "headers", None))
        if status == 409:
            return TransientProviderError(provider, f"conflict: {detail}", status_code=409, retry_after=retry_after)
        return error_for_status(provider, status, detail, retry_after=retry_after, auth_hint=auth_hint)
    if "Timeout" in name:
        return TransientProviderError(provider, f"no answer within the {timeout}s timeout")
    if "Connection" in name or "Connect" in name:
        return TransientProviderError(provider, f"connection to {where} failed")
    if "ResponseValidation" in name:
        return ProviderResponseError(provider, "malformed response", status_code=status)
    return exc
