"""Claude as a reranker on the Anthropic SDK: listwise orderings or pointwise grades, read from forced tool calls."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from pydantic import Field

from rerank_kit._optional import require
from rerank_kit.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from rerank_kit.options import ApiKey, RequestOptions, api_key_field, client_field
from rerank_kit.scorer import ConfiguredScorer
from rerank_kit.scorers.remote.support import resolve_key
from rerank_kit.scorers.llm import parsing
from rerank_kit.scorers.llm import prompts

if TYPE_CHECKING:
    from anthropic import Anthropic, AsyncAnthropic

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


class ClaudeScorer(ConfiguredScorer):
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

    def _configure(self, options: Any) -> None:
        parsing.check_window(options.window_size, options.step)
        self._api_key = resolve_key(options.api_key, CLAUDE_KEY_ENV_VARS)
        self._client = options.client
        self._async_client = options.async_client
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncAnthropic] = (
            weakref.WeakKeyDictionary()
        )
        self._client_lock = threading.Lock()
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

    @property
    def client(self) -> Anthropic:
        """The sync Anthropic client, created on first use and reused."""
        with self._client_lock:
            if self._client is None:
                self._client = require("anthropic", "anthropic").Anthropic(**self._client_options())
            return self._client

    @property
    def async_client(self) -> AsyncAnthropic:
        """The async client for the running event loop, created on first use and reused there.

        Pooled connections belong to the loop that opened them, so each loop (for example each
        ``asyncio.run``) gets its own client; a ready ``async_client`` is always used as given.
        """
        if self._async_client is not None:
            return self._async_client
        loop = asyncio.get_running_loop()
        with self._client_lock:
            client = self._loop_clients.get(loop)
            if client is None:
                client = require("anthropic", "anthropic").AsyncAnthropic(**self._client_options())
                self._loop_clients[loop] = client
            return client

    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"max_retries": self.max_retries, "timeout": self.timeout}
        if self._api_key is not None:
            options["api_key"] = self._api_key.get_secret_value()
        if self.base_url is not None:
            options["base_url"] = self.base_url
        return options

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        tally = _Tally()
        try:
            if self.mode == "listwise":
                return self._listwise(query, texts, tally)
            return self._pointwise(query, texts, tally)
        finally:
            self._record(tally)

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        tally = _Tally()
        try:
            if self.mode == "listwise":
                return await self._alistwise(query, texts, tally)
            return await self._apointwise(query, texts, tally)
        finally:
            self._record(tally)

    def _listwise(self, query: str, texts: Sequence[str], tally: _Tally) -> list[float]:
        order = list(range(len(texts)))
        if len(texts) > 1:
            for start, end in parsing.sliding_windows(len(texts), self.window_size, self.step):
                window = [texts[i] for i in order[start:end]]
                ranking = self._ask(query, window, tally)
                order = parsing.reorder_window(order, start, end, ranking.order)
        return parsing.rank_scores(order)

    async def _alistwise(self, query: str, texts: Sequence[str], tally: _Tally) -> list[float]:
        order = list(range(len(texts)))
        if len(texts) > 1:
            for start, end in parsing.sliding_windows(len(texts), self.window_size, self.step):
                window = [texts[i] for i in order[start:end]]
                ranking = await self._aask(query, window, tally)
                order = parsing.reorder_window(order, start, end, ranking.order)
        return parsing.rank_scores(order)

    def _pointwise(self, query: str, texts: Sequence[str], tally: _Tally) -> list[float]:
        batches = self._batches(texts)
        workers = min(self.max_concurrency, len(batches))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="claude-rerank") as pool:
            grades = list(pool.map(lambda batch: self._ask(query, batch, tally), batches))
        return _joined_grades(grades)

    async def _apointwise(self, query: str, texts: Sequence[str], tally: _Tally) -> list[float]:
        limit = asyncio.Semaphore(self.max_concurrency)

        async def grade(batch: list[str]) -> Parse:
            async with limit:
                return await self._aask(query, batch, tally)

        return _joined_grades(await asyncio.gather(*(grade(batch) for batch in self._batches(texts))))

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        return [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]

    def _ask(self, query: str, texts: list[str], tally: _Tally) -> Parse:
        request = self._request(query, texts)
        reason = ""
        for _ in range(self.answer_retries + 1):
            with self._provider_errors():
                response = self.client.messages.create(**request)
            tally.add(response.usage)
            parsed, reason = self._read(response, len(texts))
            if parsed is not None:
                return parsed
        raise self._unusable(reason)

    async def _aask(self, query: str, texts: list[str], tally: _Tally) -> Parse:
        request = self._request(query, texts)
        reason = ""
        for _ in range(self.answer_retries + 1):
            with self._provider_errors():
                response = await self.async_client.messages.create(**request)
            tally.add(response.usage)
            parsed, reason = self._read(response, len(texts))
            if parsed is not None:
                return parsed
        raise self._unusable(reason)

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
        content = list(getattr(response, "content", None) or [])
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

    @contextmanager
    def _provider_errors(self) -> Iterator[None]:
        """Turn SDK failures into rerank-kit provider errors that say what to fix."""
        anthropic = require("anthropic", "anthropic")
        try:
            yield
        except anthropic.APIStatusError as exc:
            raise self._status_error(exc) from exc
        except anthropic.APIConnectionError as exc:
            raise ProviderUnavailableError(
                PROVIDER, f"no answer from {self.base_url or 'the API'} after {self.max_retries} retries: {exc}"
            ) from exc
        except anthropic.APIResponseValidationError as exc:
            raise ProviderResponseError(PROVIDER, f"malformed response: {exc}", status_code=exc.status_code) from exc
        except getattr(anthropic, "CredentialsError", ()) as exc:
            raise ProviderAuthError(PROVIDER, f"no usable credentials ({exc}); {_KEY_HINT}") from exc
        except TypeError as exc:
            if "authentication" not in str(exc):
                raise
            raise ProviderAuthError(PROVIDER, f"no API key; {_KEY_HINT}") from exc

    def _status_error(self, exc: Any) -> ProviderError:
        status = exc.status_code
        detail = f"{getattr(exc, 'type', None) or 'error'}: {getattr(exc, 'api_message', None) or exc.message}"
        if status in (401, 403):
            return ProviderAuthError(PROVIDER, f"{detail}. Check api_key / ANTHROPIC_API_KEY", status_code=status)
        if status in (400, 404, 413, 422):
            hint = ""
            if self.temperature is not None:
                hint = f" (current models reject sampling parameters; try temperature=None with {self.model})"
            return ProviderRequestError(PROVIDER, f"{detail}{hint}", status_code=status)
        if status in (408, 409, 429) or status >= 500:
            return ProviderUnavailableError(
                PROVIDER, f"{detail} (still failing after {self.max_retries} retries)", status_code=status
            )
        return ProviderError(PROVIDER, detail, status_code=status)


def _joined_grades(batches: Sequence[parsing.ScoresParse]) -> list[float]:
    return [grade for batch in batches for grade in batch.filled(prompts.MIN_GRADE)]


def _warn(message: str) -> None:
    warnings.warn(message, ClaudeAnswerWarning, stacklevel=3)
