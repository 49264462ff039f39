"""Claude as a reranker on the Anthropic SDK: listwise orderings or pointwise grades, read from forced tool calls."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from pydantic import Field

from rerank_kit._optional import require
from rerank_kit.errors import ProviderAuthError, ProviderResponseError
from rerank_kit.options import ApiKey, RequestOptions, api_key_field, client_field
from rerank_kit.scorers.remote.base import RemoteBase
from rerank_kit.scorers.remote.support import (
    TransientProviderError,
    error_for_status,
    parse_retry_after,
    redact,
    wire_text,
)
from rerank_kit.scorers.llm import parsing
from rerank_kit.scorers.llm import prompts

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

#: Claude Haiku 5.5: the current fastest, cheapest Claude model. It rejects sampling parameters, so
#: ``temperature`` defaults to ``None`` (not sent); set it only for models that accept it.
PROVIDER = "Anthropic"
CLAUDE_KEY_ENV_VARS = ("ANTHROPIC_API_KEY",)
_KEY_HINT = "pass api_key or set ANTHROPIC_API_KEY"
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")

Mode = Literal["listwise", "pointwise"]
Parse = Union[parsing.RankingParse, parsing.ScoresParse]


class ClaudeAnswerWarning(UserWarning):
    """The model's answer needed repair: text instead of a tool call, or invalid, duplicate or missing ids."""


@dataclass(frozen=True)
class _Task:
    """What one mode sends (system text, template, tool) and how it reads the answer."""

    system: str
    template: str
    tool: dict[str, Any]
    read_tool: Callable[[Any, int], Parse]
    read_text: Callable[[str, int], Parse]

    @property
    def tool_name(self) -> str:
        return self.tool["name"]


class _Tally:
    """Thread-safe sum of the usage of every request made for one scoring call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.counts = dict.fromkeys(USAGE_FIELDS, 0)

    def add(self, usage: Any) -> None:
        if usage is None:
            return
        with self._lock:
            self.requests += 1
            for name in USAGE_FIELDS:
                self.counts[name] += getattr(usage, name, None) or 0


class ClaudeOptions(RequestOptions):
    """Options of the Claude reranking backend."""

    positional = ("model",)

    model: str = Field(default="claude-haiku-5-5", min_length=1, description="Claude model name.")
    mode: Mode = Field(default="listwise", description="'listwise' (ordering) or 'pointwise' (0-10 grades).")
    api_key: ApiKey = api_key_field(CLAUDE_KEY_ENV_VARS)
    base_url: Optional[str] = Field(default=None, description="API base URL; None uses the SDK default.")
    max_tokens: int = Field(default=1024, ge=1, description="Most tokens per answer.")
    temperature: Optional[float] = Field(
        default=None, ge=0, le=1, description="Sampling temperature; None sends none (current models reject it)."
    )
    instruction: Optional[str] = Field(default=None, description="What counts as relevant in your domain.")
    listwise_template: Optional[str] = Field(default=None, description="User prompt: {query}, {passages}, {count}.")
    pointwise_template: Optional[str] = Field(default=None, description="User prompt: {query}, {passages}, {count}.")
    window_size: int = Field(default=20, ge=2, description="Passages per listwise request.")
    step: int = Field(default=10, ge=1, description="How far each listwise window slides up.")
    batch_size: int = Field(default=5, ge=1, description="Passages per pointwise request.")
    max_passage_chars: Optional[int] = Field(default=2000, ge=1, description="Characters kept per passage; None: all.")
    prompt_caching: bool = Field(default=True, description="Mark the fixed system prompt for prompt caching.")
    answer_retries: int = Field(default=1, ge=0, le=5, description="Re-asks when an answer names no valid passage.")
    client: Any = client_field("anthropic.Anthropic")
    async_client: Any = client_field("anthropic.AsyncAnthropic")


class ClaudeScorer(RemoteBase):
    """Reranks with a Claude model, answering through a forced tool call (never parsed from prose first).

    ``mode="listwise"`` (default): the model orders numbered passages; lists longer than ``window_size``
    are ranked RankGPT-style by windows sliding from the bottom up by ``step``. Each text's score comes
    from its final rank ``r`` (0-based) of ``n``: ``(n - r) / n``, so the best scores 1.0 and scores fall
    strictly with rank. ``mode="pointwise"``: batches of ``batch_size`` passages get a 0-10 grade each,
    batches run concurrently (at most ``max_concurrency``); the score is the grade.

    Answers are repaired, never trusted: ids outside 1..n and repeats are dropped, left-out passages
    follow in input order (pointwise: they get grade 0), and each repair raises a
    :class:`ClaudeAnswerWarning`. An answer with no valid id is asked again ``answer_retries`` times,
    then fails with :class:`~rerank_kit.ProviderResponseError`. HTTP retries (408/409/429/5xx/529) are
    the SDK's, bounded by ``max_retries``. ``usage`` sums input, output and cache tokens per call.
    Listwise scores depend on the whole list, so ``cache_key`` is ``None`` there (no score cache).
    """

    cache_by_default = False

    Options = ClaudeOptions

    provider = PROVIDER
    key_env_vars = CLAUDE_KEY_ENV_VARS

    def _configure(self, options: Any) -> None:
        super()._configure(options)
        parsing.check_window(options.window_size, options.step)
        if self._api_key is None and options.client is None and options.async_client is None:
            raise ValueError(f"{PROVIDER} API key missing: {_KEY_HINT} (or pass a ready client)")
        self._task = self._build_task(options.listwise_template, options.pointwise_template)

    def _build_task(self, listwise_template: str | None, pointwise_template: str | None) -> _Task:
        listwise = prompts.check_template(
            "listwise_template", listwise_template or prompts.DEFAULT_LISTWISE_TEMPLATE
        )
        pointwise = prompts.check_template(
            "pointwise_template", pointwise_template or prompts.DEFAULT_POINTWISE_TEMPLATE
        )
        if self.mode == "listwise":
            return _Task(
                prompts.system_prompt(prompts.LISTWISE_SYSTEM, self.instruction),
                listwise,
                prompts.RANKING_TOOL,
                parsing.ranking_from_tool_input,
                parsing.ranking_from_text,
            )
        low, high = prompts.MIN_GRADE, prompts.MAX_GRADE
        return _Task(
            prompts.system_prompt(prompts.POINTWISE_SYSTEM, self.instruction),
            pointwise,
            prompts.SCORES_TOOL,
            lambda tool_input, n: parsing.scores_from_tool_input(tool_input, n, low, high),
            lambda text, n: parsing.scores_from_text(text, n, low, high),
        )

    @property
    def name(self) -> str:
        return self.model

    @property
    def cache_key(self) -> str | None:
        """``None`` in listwise mode (a score depends on the other passages); settings identity otherwise."""
        if self.mode == "listwise":
            return None
        prompt = hashlib.blake2b(f"{self._task.system}\0{self._task.template}".encode(), digest_size=8).hexdigest()
        return (
            f"claude|{self.model}|pointwise|{prompt}|{self.temperature}|{self.batch_size}|{self.max_passage_chars}"
        )

    def _build_async_client(self) -> AsyncAnthropic:
        return require("anthropic", "anthropic").AsyncAnthropic(**self._client_options())

    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"max_retries": 0, "timeout": self.timeout}
        if self._api_key is not None:
            options["api_key"] = self._api_key.get_secret_value()
        if self.base_url is not None:
            options["base_url"] = self.base_url
        return options

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return self._run_sync(self.ascore(query, texts))

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        query, texts = wire_text(query), [wire_text(text) for text in texts]
        tally = _Tally()
        deadline = self._deadline()
        try:
            if self.mode == "listwise":
                return await self._alistwise(query, texts, tally, deadline)
            return await self._apointwise(query, texts, tally, deadline)
        finally:
            self._record(tally)

    async def _alistwise(self, query: str, texts: Sequence[str], tally: _Tally, deadline: float | None) -> list[float]:
        order = list(range(len(texts)))
        if len(texts) > 1:
            for start, end in parsing.sliding_windows(len(texts), self.window_size, self.step):
                window = [texts[i] for i in order[start:end]]
                ranking = await self._aask(query, window, tally, deadline)
                order = parsing.reorder_window(order, start, end, ranking.order)
        return parsing.rank_scores(order)

    async def _apointwise(self, query: str, texts: Sequence[str], tally: _Tally, deadline: float | None) -> list[float]:
        batches = self._batches(texts)
        return _joined_grades(await asyncio.gather(*(self._aask(query, batch, tally, deadline) for batch in batches)))

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        return [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]

    async def _aask(self, query: str, texts: list[str], tally: _Tally, deadline: float | None) -> Parse:
        request = self._request(query, texts)
        reason = ""
        for _ in range(self.answer_retries + 1):
            response = await self._call(lambda: self._create(request), deadline)
            tally.add(getattr(response, "usage", None))
            parsed, reason = self._read(response, len(texts))
            if parsed is not None:
                return parsed
        raise self._redacted(self._unusable(reason))

    async def _create(self, request: dict[str, Any]) -> Any:
        """One Messages API request, on the ready sync client if that is all that was given."""
        if self._uses_sync_client():
            return await asyncio.to_thread(lambda: self.options.client.messages.create(**request))
        return await self.async_client.messages.create(**request)

    def _request(self, query: str, texts: list[str]) -> dict[str, Any]:
        """Messages API arguments: cached system text, the one tool, forced, and the numbered passages."""
        task = self._task
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": prompts.system_blocks(task.system, cache=self.prompt_caching),
            "tools": [task.tool],
            "tool_choice": {"type": "tool", "name": task.tool_name},
            "messages": [
                {"role": "user", "content": prompts.user_message(task.template, query, texts, self.max_passage_chars)}
            ],
        }
        if self.temperature is not None:
            request["extra_body"] = {"temperature": self.temperature}
        return request

    def _read(self, response: Any, n: int) -> tuple[Parse | None, str]:
        """The repaired answer, or ``None`` and why it is unusable."""
        task = self._task
        if not isinstance(getattr(response, "content", None), list):
            return None, f"the answer is not a Messages API message ({type(response).__name__})"
        content = list(response.content)
        stop_reason = getattr(response, "stop_reason", None)
        tool_input = next(
            (
                block.input
                for block in content
                if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == task.tool_name
            ),
            None,
        )
        if tool_input is not None:
            parsed = task.read_tool(tool_input, n)
        elif stop_reason == "refusal":
            return None, "the model refused to answer (stop_reason 'refusal')"
        else:
            text = "".join(getattr(block, "text", "") for block in content if getattr(block, "type", None) == "text")
            _warn(f"{self.model} answered without calling {task.tool_name}; parsing its text instead")
            parsed = task.read_text(text, n)
        if not parsed.usable:
            return None, f"no valid passage id among {n} in the answer (stop_reason {stop_reason!r})"
        problems = parsed.problems()
        if problems:
            _warn(f"{self.model}'s answer for {n} passages was repaired: {problems}")
        return parsed, ""

    def _unusable(self, reason: str) -> ProviderResponseError:
        attempts = self.answer_retries + 1
        return ProviderResponseError(PROVIDER, f"{self.model} gave no usable answer in {attempts} attempt(s): {reason}")

    def _record(self, tally: _Tally) -> None:
        if tally.requests:
            self.usage.record({**tally.counts, "requests": tally.requests})

    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the Anthropic SDK raised (transient ones are retried by us)."""
        anthropic = require("anthropic", "anthropic")
        if isinstance(exc, anthropic.APIStatusError):
            detail = f"{getattr(exc, 'type', None) or 'error'}: {getattr(exc, 'api_message', None) or exc.message}"
            if exc.status_code in (400, 404, 413, 422) and self.temperature is not None:
                detail += f" (current models reject sampling parameters; try temperature=None with {self.model})"
            error = error_for_status(PROVIDER, exc.status_code, redact(detail, self._api_key),
                                     retry_after=parse_retry_after(exc.response.headers),
                                     auth_hint="check api_key / ANTHROPIC_API_KEY")
            if exc.status_code == 409 and not isinstance(error, TransientProviderError):
                return TransientProviderError(PROVIDER, detail, status_code=409)
            return error
        if isinstance(exc, anthropic.APITimeoutError):
            return TransientProviderError(PROVIDER, f"no answer within the {self.timeout}s timeout")
        if isinstance(exc, anthropic.APIConnectionError):
            return TransientProviderError(PROVIDER, f"connection to {self.base_url or 'the API'} failed")
        if isinstance(exc, anthropic.APIResponseValidationError):
            return ProviderResponseError(PROVIDER, "malformed response", status_code=exc.status_code)
        if isinstance(exc, TypeError) and "authentication" in str(exc):
            return ProviderAuthError(PROVIDER, f"no API key; {_KEY_HINT}")
        return exc


def _joined_grades(batches: Sequence[parsing.ScoresParse]) -> list[float]:
    return [grade for batch in batches for grade in batch.filled(prompts.MIN_GRADE)]


def _warn(message: str) -> None:
    warnings.warn(message, ClaudeAnswerWarning, stacklevel=3)
