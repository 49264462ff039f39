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
from typing import TYPE_CHECKING, Any, Literal, Union

from rerank_kit._optional import require
from rerank_kit.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from rerank_kit.scorer import Scorer
from rerank_kit.scorers.llm import parsing
from rerank_kit.scorers.llm import prompts
from rerank_kit.validation import check_positive_int

if TYPE_CHECKING:
    from anthropic import Anthropic, AsyncAnthropic

#: Claude Haiku 5.5: the current fastest, cheapest Claude model. It rejects sampling parameters, so
#: ``temperature`` defaults to ``None`` (not sent); set it only for models that accept it.
DEFAULT_CLAUDE_MODEL = "claude-haiku-5-5"
PROVIDER = "Anthropic"
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


class ClaudeScorer(Scorer):
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

    def __init__(
        self,
        model: str = DEFAULT_CLAUDE_MODEL,
        *,
        mode: Mode = "listwise",
        api_key: str | None = None,
        base_url: str | None = None,
        max_tokens: int = 1024,
        temperature: float | None = None,
        instruction: str | None = None,
        listwise_template: str | None = None,
        pointwise_template: str | None = None,
        window_size: int = 20,
        step: int = 10,
        batch_size: int = 5,
        max_concurrency: int = 8,
        max_passage_chars: int | None = 2000,
        prompt_caching: bool = True,
        answer_retries: int = 1,
        timeout: float = 60.0,
        max_retries: int = 2,
        client: Anthropic | None = None,
        async_client: AsyncAnthropic | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be a Claude model name such as 'claude-haiku-5-5'")
        if mode not in ("listwise", "pointwise"):
            raise ValueError(f"mode must be 'listwise' or 'pointwise', got {mode!r}")
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1
        ):
            raise ValueError(f"temperature must be None or between 0 and 1, got {temperature!r}")
        if instruction is not None and not isinstance(instruction, str):
            raise TypeError(f"instruction must be a str or None, got {type(instruction).__name__}")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.max_retries = _check_count("max_retries", max_retries, 10)
        self.answer_retries = _check_count("answer_retries", answer_retries, 5)
        parsing.check_window(window_size, step)
        self.model = model
        self.mode = mode
        self.base_url = base_url
        self.max_tokens = check_positive_int("max_tokens", max_tokens)
        self.temperature = temperature
        self.instruction = instruction
        self.window_size = window_size
        self.step = step
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.max_concurrency = check_positive_int("max_concurrency", max_concurrency)
        self.max_passage_chars = None if max_passage_chars is None else check_positive_int(
            "max_passage_chars", max_passage_chars
        )
        self.prompt_caching = prompt_caching
        self.timeout = float(timeout)
        self._api_key = api_key
        self._client = client
        self._async_client = async_client
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncAnthropic] = (
            weakref.WeakKeyDictionary()
        )
        self._client_lock = threading.Lock()
        self._task = self._build_task(listwise_template, pointwise_template)

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
            options["api_key"] = self._api_key
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

    def __repr__(self) -> str:
        return f"ClaudeScorer(model={self.model!r}, mode={self.mode!r})"


def _joined_grades(batches: Sequence[parsing.ScoresParse]) -> list[float]:
    return [grade for batch in batches for grade in batch.filled(prompts.MIN_GRADE)]


def _check_count(name: str, value: Any, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise ValueError(f"{name} must be an int between 0 and {most}, got {value!r}")
    return value


def _warn(message: str) -> None:
    warnings.warn(message, ClaudeAnswerWarning, stacklevel=3)
