"""Provider-neutral LLM reranking: RankGPT sliding windows, graded or yes/no pointwise judgements, repaired answers.

:class:`BaseLLMScorer` holds everything but the wire: prompts, windows, answer repair, re-asking, usage and
cost; it asks a :class:`~rerank_kit.scorers.llm.chat.ChatProvider`. :class:`LLMScorer` asks the provider it is
given (the adapters' ``LLMRerank`` wrap a LangChain chat model or a LlamaIndex LLM); ``ClaudeScorer`` and
``OpenAIScorer`` build theirs on the provider SDKs, one per event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import warnings
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator

from rerank_kit._optional import require
from rerank_kit.errors import ProviderRequestError, ProviderResponseError
from rerank_kit.options import RequestOptions
from rerank_kit.scorers.llm import parsing, prompts
from rerank_kit.scorers.llm.chat import (
    TOKEN_FIELDS,
    ChatAnswer,
    ChatProvider,
    ChatRequest,
    ChatTool,
    UsageTally,
    check_prices,
    translate_error,
)
from rerank_kit.scorers.remote.base import OpenClient, RemoteBase
from rerank_kit.scorers.remote.support import wire_text

Mode = Literal["listwise", "pointwise", "logprobs"]
StructuredOutput = Literal["auto", "tools", "text"]
Parse = Union[parsing.RankingParse, parsing.ScoresParse]

#: A rejected request whose message says this is a server without tool calling (vLLM, Ollama, llama.cpp, ...).
_TOOLS_REJECTED = re.compile(r"tool|function", re.IGNORECASE)


class LLMAnswerWarning(UserWarning):
    """The model's answer needed repair: text instead of a tool call, or invalid, duplicate or missing ids."""


class LLMOptions(RequestOptions):
    """Options every LLM reranker shares: Claude, OpenAI-compatible servers and framework chat models."""

    mode: Mode = Field(
        default="listwise",
        description="'listwise' (ordering), 'pointwise' (0-10 grades) or 'logprobs' (P(yes) per passage).",
    )
    instruction: Optional[str] = Field(default=None, description="What counts as relevant in your domain.")
    listwise_template: Optional[str] = Field(default=None, description="User prompt: {query}, {passages}, {count}.")
    pointwise_template: Optional[str] = Field(default=None, description="User prompt: {query}, {passages}, {count}.")
    window_size: int = Field(default=20, ge=2, description="Passages per listwise request.")
    step: int = Field(default=10, ge=1, description="How far each listwise window slides up.")
    batch_size: int = Field(default=5, ge=1, description="Passages per pointwise request.")
    max_passage_chars: Optional[int] = Field(default=2000, ge=1, description="Characters kept per passage; None: all.")
    answer_retries: int = Field(default=1, ge=0, le=5, description="Re-asks when an answer names no valid passage.")
    structured_output: StructuredOutput = Field(
        default="auto",
        description="'tools' (forced tool call), 'text' (strict JSON text) or 'auto' (tools where supported).",
    )
    prices: Optional[dict[str, float]] = Field(
        default=None, description="Dollars per million tokens, {'input': ..., 'output': ...}: adds usage cost_usd."
    )

    @field_validator("prices", mode="before")
    @classmethod
    def _prices(cls, value: Any) -> dict[str, float] | None:
        return check_prices(value)


class HostedLLMOptions(LLMOptions):
    """What an LLM reranker on a provider SDK adds: the endpoint and the sampling limits."""

    base_url: Optional[str] = Field(default=None, description="API base URL; None uses the SDK default.")
    max_tokens: int = Field(default=1024, ge=1, description="Most tokens per answer.")
    temperature: Optional[float] = Field(default=None, ge=0, le=2, description="Sampling temperature; None sends none.")


class ChatModelOptions(LLMOptions):
    """Options of the LLM reranker over a ready chat model."""

    llm: Any = Field(
        default=None, exclude=True, repr=False,
        description="The chat model (LLMRerank: a LangChain chat model or LlamaIndex LLM; core: a ChatProvider).",
    )


@dataclass(frozen=True)
class _Task:
    """What one mode sends (system text per answer format, template, tool) and how it reads the answer."""

    tool_system: str
    text_system: str
    template: str
    tool: ChatTool
    read_tool: Callable[[Any, int], Parse]
    read_text: Callable[[str, int], Parse]


class BaseLLMScorer(RemoteBase):
    """Reranks with a chat model through a :class:`ChatProvider`, answering through a forced tool call.

    ``mode="listwise"`` (default): the model orders numbered passages; lists longer than ``window_size``
    are ranked RankGPT-style by windows sliding from the bottom up by ``step`` (windows that do not overlap
    run at once); a text at final rank ``r`` (0-based) of ``n`` scores ``(n - r) / n``. ``"pointwise"``:
    batches of ``batch_size`` passages get a 0-10 grade each, concurrently; the score is the grade.
    ``"logprobs"``: one request per passage asks yes or no for one token; the score is P(yes) from the
    token's log-probabilities (endpoints that return them).

    The answer comes as a forced tool call, or as strict JSON text for models without tool calling
    (``structured_output``; ``"auto"`` switches to text once a server rejects tools). Answers are repaired,
    never trusted: ids outside 1..n and repeats are dropped and left-out passages follow in input order
    (pointwise: grade 0), each repair warned with :attr:`answer_warning`; an answer with no valid id is
    asked again ``answer_retries`` times, then fails with :class:`~rerank_kit.ProviderResponseError`.
    ``usage`` sums the tokens of every request of a call (plus ``cost_usd`` with ``prices``). Listwise
    scores depend on the whole list, so ``cache_key`` is ``None`` there.
    """

    cache_by_default = False
    Options = LLMOptions
    #: Usage counts recorded for every call, zero when the provider reports none.
    usage_fields: tuple[str, ...] = TOKEN_FIELDS
    #: The warning class for repaired answers.
    answer_warning: type[Warning] = LLMAnswerWarning
    #: Whether ``structured_output="auto"`` may switch to text when the server rejects tool calling.
    tool_fallback = True

    def _configure(self, options: Any) -> None:
        super()._configure(options)
        parsing.check_window(options.window_size, options.step)
        self._task = self._build_task(options)
        self._yes_no_system = prompts.system_prompt(prompts.YES_NO_SYSTEM, options.instruction)
        self._text_only = False

    def _build_task(self, options: Any) -> _Task:
        instruction = options.instruction
        listwise = prompts.check_template(
            "listwise_template", options.listwise_template or prompts.DEFAULT_LISTWISE_TEMPLATE
        )
        pointwise = prompts.check_template(
            "pointwise_template", options.pointwise_template or prompts.DEFAULT_POINTWISE_TEMPLATE
        )
        if options.mode == "listwise":
            return _Task(
                prompts.system_prompt(prompts.LISTWISE_SYSTEM, instruction),
                prompts.system_prompt(prompts.LISTWISE_TEXT_SYSTEM, instruction),
                listwise,
                prompts.RANKING_TOOL,
                parsing.ranking_from_tool_input,
                parsing.ranking_from_text,
            )
        low, high = prompts.MIN_GRADE, prompts.MAX_GRADE
        return _Task(
            prompts.system_prompt(prompts.POINTWISE_SYSTEM, instruction),
            prompts.system_prompt(prompts.POINTWISE_TEXT_SYSTEM, instruction),
            pointwise,
            prompts.SCORES_TOOL,
            lambda tool_input, n: parsing.scores_from_tool_input(tool_input, n, low, high),
            lambda text, n: parsing.scores_from_text(text, n, low, high),
        )

    @abstractmethod
    def _chat(self) -> ChatProvider:
        """The provider to ask from the running event loop."""

    @property
    def cache_key(self) -> str | None:
        """``None`` in listwise mode (a score depends on the other passages); settings identity otherwise."""
        if self.mode == "listwise":
            return None
        task = self._task
        prompt = f"{task.tool_system}\0{task.text_system}\0{task.template}\0{self._yes_no_system}"
        digest = hashlib.blake2b(prompt.encode(), digest_size=8).hexdigest()
        sampling = getattr(self.options, "temperature", None)
        return (f"{self.provider.lower()}|{self.name}|{self.mode}|{digest}|{self.structured_output}|{sampling}|"
                f"{self.batch_size}|{self.max_passage_chars}")

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return self._run_sync(self.ascore(query, texts))

    def score_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """Every query at once on the background loop (their requests share ``max_concurrency``)."""
        return self._run_sync(self.ascore_many(requests))

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        query, texts = wire_text(query), [wire_text(text) for text in texts]
        tally = UsageTally(self.usage_fields)
        deadline = self._deadline()
        try:
            if self.mode == "listwise":
                return await self._alistwise(query, texts, tally, deadline)
            if self.mode == "pointwise":
                return await self._apointwise(query, texts, tally, deadline)
            return list(await asyncio.gather(*(self._ajudge(query, text, tally, deadline) for text in texts)))
        finally:
            counts = tally.record(self.prices)
            if counts is not None:
                self.usage.record(counts)

    async def _alistwise(self, query: str, texts: Sequence[str], tally: UsageTally,
                         deadline: float | None) -> list[float]:
        order = list(range(len(texts)))
        if len(texts) > 1:
            for wave in parsing.window_waves(len(texts), self.window_size, self.step):
                windows = [[texts[i] for i in order[start:end]] for start, end in wave]
                rankings = await asyncio.gather(*(self._aask(query, window, tally, deadline) for window in windows))
                for (start, end), ranking in zip(wave, rankings):
                    order = parsing.reorder_window(order, start, end, ranking.order)  # type: ignore[union-attr]
        return parsing.rank_scores(order)

    async def _apointwise(self, query: str, texts: Sequence[str], tally: UsageTally,
                          deadline: float | None) -> list[float]:
        size = self.batch_size
        batches = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
        graded = await asyncio.gather(*(self._aask(query, batch, tally, deadline) for batch in batches))
        return [grade for batch in graded for grade in batch.filled(prompts.MIN_GRADE)]  # type: ignore[union-attr]

    async def _aask(self, query: str, texts: list[str], tally: UsageTally, deadline: float | None) -> Parse:
        """The repaired answer for one window or batch, asked again while it names no valid passage."""
        task = self._task
        user = prompts.user_message(task.template, query, texts, self.max_passage_chars)

        def request(tools: bool) -> ChatRequest:
            system = task.tool_system if tools else task.text_system
            return self._request(system, user, task.tool if tools else None)

        reason = ""
        for _ in range(self.answer_retries + 1):
            answer, tools = await self._complete(request, deadline)
            tally.add(answer.usage)
            parsed, reason = self._read(answer, len(texts), tools)
            if parsed is not None:
                return parsed
        raise self._redacted(self._unusable(reason))

    async def _ajudge(self, query: str, text: str, tally: UsageTally, deadline: float | None) -> float:
        """P(yes) for one passage from the log-probabilities of a one-token yes/no answer."""
        user = prompts.user_message(prompts.YES_NO_TEMPLATE, query, [text], self.max_passage_chars)
        request = self._request(self._yes_no_system, user, None, max_tokens=1, top_logprobs=prompts.TOP_LOGPROBS)
        reason = ""
        for _ in range(self.answer_retries + 1):
            answer = await self._send(request, deadline)
            tally.add(answer.usage)
            if answer.refused:
                reason = f"the model refused to answer (stop_reason {answer.stop_reason!r})"
                continue
            if answer.top_logprobs is None:
                raise self._redacted(ProviderRequestError(
                    self.provider, f"{self.name} returned no log-probabilities (this endpoint does not support "
                    "logprobs); use mode='pointwise'"))
            probability = parsing.yes_probability(answer.top_logprobs)
            if probability is not None:
                return probability
            reason = f"neither yes nor no among the likeliest first tokens {sorted(answer.top_logprobs)[:5]}"
        raise self._redacted(self._unusable(reason))

    def _request(self, system: str, user: str, tool: ChatTool | None, *, max_tokens: int | None = None,
                 top_logprobs: int = 0) -> ChatRequest:
        return ChatRequest(system, user, tool, max_tokens or getattr(self.options, "max_tokens", None),
                           getattr(self.options, "temperature", None), top_logprobs)

    async def _send(self, request: ChatRequest, deadline: float | None) -> ChatAnswer:
        chat = self._chat()
        return await self._call(lambda: chat.complete(request), deadline)

    async def _complete(self, request: Callable[[bool], ChatRequest],
                        deadline: float | None) -> tuple[ChatAnswer, bool]:
        """The answer and whether tools were offered; ``"auto"`` retries in text when the server rejects tools."""
        tools = self._uses_tools()
        try:
            return await self._send(request(tools), deadline), tools
        except ProviderRequestError as error:
            if not (tools and self.structured_output == "auto" and self.tool_fallback
                    and _TOOLS_REJECTED.search(str(error))):
                raise
            self._text_only = True
            self._warn(f"{self.name} rejected tool calling ({error}); answering in the text format from now on")
        return await self._send(request(False), deadline), False

    def _uses_tools(self) -> bool:
        if self.structured_output != "auto":
            return self.structured_output == "tools"
        return not self._text_only and bool(getattr(self._chat(), "supports_tools", True))

    def _read(self, answer: ChatAnswer, n: int, tools: bool) -> tuple[Parse | None, str]:
        """The repaired answer, or ``None`` and why it is unusable."""
        task = self._task
        if answer.tool_input is not None:
            tool_input = answer.tool_input
            parsed = task.read_text(tool_input, n) if isinstance(tool_input, str) else task.read_tool(tool_input, n)
        elif answer.refused:
            return None, f"the model refused to answer (stop_reason {answer.stop_reason!r})"
        else:
            if tools:
                self._warn(f"{self.name} answered without calling {task.tool.name}; parsing its text instead")
            parsed = task.read_text(answer.text if isinstance(answer.text, str) else "", n)
        if not parsed.usable:
            return None, f"no valid passage id among {n} in the answer (stop_reason {answer.stop_reason!r})"
        problems = parsed.problems()
        if problems:
            self._warn(f"{self.name}'s answer for {n} passages was repaired: {problems}")
        return parsed, ""

    def _unusable(self, reason: str) -> ProviderResponseError:
        attempts = self.answer_retries + 1
        return ProviderResponseError(self.provider, f"{self.name} gave no usable answer in {attempts} attempt(s): "
                                                    f"{reason}")

    def _warn(self, message: str) -> None:
        warnings.warn(message, self.answer_warning, stacklevel=4)


class HostedLLMScorer(BaseLLMScorer):
    """An LLM scorer on a provider SDK: its key, and one provider per event loop on the SDK's async client.

    A ready ``async_client`` is used as given; a ready sync ``client`` alone is called in worker threads.
    The SDK's own retries are off (``max_retries=0``): rerank-kit retries, as for every remote backend.
    """

    Options = HostedLLMOptions
    #: The SDK's module, the extra that installs it, and its async client class.
    sdk: tuple[str, str, str] = ("", "", "")
    #: How to give the key, for the error when there is none.
    key_hint = "pass api_key"

    def _configure(self, options: Any) -> None:
        super()._configure(options)
        given = self._api_key is not None or options.client is not None or options.async_client is not None
        if not given and not self._keyless(options):
            raise ValueError(f"{self.provider} API key missing: {self.key_hint} (or pass a ready client)")

    def _keyless(self, options: Any) -> bool:
        """Whether this endpoint works without a key (a local server)."""
        return False

    @property
    def name(self) -> str:
        return self.model

    def _chat(self) -> ChatProvider:
        return self._async_clients.get().client

    def _async_client_for_loop(self) -> OpenClient:
        if self._uses_sync_client():
            return OpenClient(self._provider(_in_thread(self._create_method(self.options.client))), ())
        given = self.options.async_client
        if given is not None:
            return OpenClient(self._provider(self._create_method(given)), ())
        module, extra, name = self.sdk
        client = getattr(require(module, extra), name)(**self._client_options())
        return OpenClient(self._provider(self._create_method(client)), (client,))

    @abstractmethod
    def _create_method(self, client: Any) -> Callable[..., Any]:
        """The client method that sends one chat request."""

    @abstractmethod
    def _provider(self, create: Callable[..., Awaitable[Any]]) -> ChatProvider:
        """The chat provider sending requests with ``create(**body)``."""

    @abstractmethod
    def _client_options(self) -> dict[str, Any]:
        """SDK client keyword arguments (its own retries off)."""


class LLMScorer(BaseLLMScorer):
    """Reranks with any chat model given as ``llm``: a :class:`ChatProvider` (duck-typed; no framework import).

    ``langchain_rerankers.LLMRerank`` and ``llamaindex_rerankers.LLMRerank`` turn a LangChain chat model
    or a LlamaIndex LLM into one. Errors the model raises are read by shape: an HTTP status maps as for
    every backend, timeouts and dropped connections are retried.
    """

    Options = ChatModelOptions
    provider = "LLM"

    def _configure(self, options: Any) -> None:
        super()._configure(options)
        if options.llm is None:
            raise ValueError("llm is required: pass a chat model (LLMRerank(llm=...)) or a rerank-kit ChatProvider")
        if not isinstance(options.llm, ChatProvider):
            raise TypeError(f"llm must be a rerank_kit ChatProvider (name, supports_tools, async complete), got "
                            f"{type(options.llm).__name__}; the adapters' LLMRerank wrap framework models")
        self.provider = getattr(options.llm, "provider", None) or options.llm.name

    @property
    def name(self) -> str:
        return str(self.options.llm.name)

    def _chat(self) -> ChatProvider:
        return self.options.llm

    def _translate(self, exc: Exception) -> Exception:
        return translate_error(self.provider, exc, key=None, auth_hint="check the chat model's credentials",
                               timeout=self.timeout, where=self.provider)


def _in_thread(method: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """An async ``method`` that runs the sync one in a worker thread."""

    async def call(**body: Any) -> Any:
        return await asyncio.to_thread(lambda: method(**body))

    return call

