"""The base of every API scorer: split at the provider's limits, retry, run parts concurrently, merge."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from rerank_kit.errors import ProviderResponseError
from rerank_kit.options import BackendOptions, RequestOptions
from rerank_kit.scorer import ConfiguredScorer
from rerank_kit.scorers.remote.batching import Chunk, ChunkAnswer, merge_answers, plan_chunks, summed_usage
from rerank_kit.scorers.remote.support import ConcurrencyLimit, PerLoop, RetryPolicy, Secret, resolve_key


class RemoteScorer(ConfiguredScorer):
    """Scores through a rerank API; subclasses send one request, this class does the rest.

    One call becomes as many requests as the provider's limits need (:meth:`_chunks`); each request is
    retried on 408/429/5xx/timeouts by :class:`RetryPolicy` (the SDK's own retries are switched off);
    async requests run concurrently, at most ``max_concurrency`` per scorer across all calls; answers
    are merged by global index and checked; usage is summed per call into ``self.usage``.
    """

    Options: ClassVar[type[BackendOptions]] = RequestOptions
    #: Provider name used in errors and logs.
    provider: str = "API"
    #: Most documents the provider accepts in one request.
    max_documents: int = 1000

    def _configure(self, options: Any) -> None:
        policy = options.request_policy
        self._api_key: Secret | None = None
        self.retry = RetryPolicy(max_retries=policy.max_retries, backoff=policy.backoff)
        self.concurrency = ConcurrencyLimit(policy.max_concurrency)

    def _chunks(self, query: str, texts: Sequence[str]) -> list[Chunk]:
        """How one call is split into requests; by default at ``max_documents``."""
        return plan_chunks(texts, self.max_documents)

    @abstractmethod
    def _send(self, query: str, texts: list[str]) -> ChunkAnswer:
        """One request, raising rerank-kit ProviderErrors (transient ones are retried)."""

    @abstractmethod
    async def _asend(self, query: str, texts: list[str]) -> ChunkAnswer:
        """Async :meth:`_send` on the provider's async client."""

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        chunks = self._chunks(query, texts)
        answers = [self.retry.call(lambda c=c: self._send(query, list(texts[c.start : c.stop]))) for c in chunks]
        return self._merged(texts, chunks, answers)

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        chunks = self._chunks(query, texts)

        async def one(chunk: Chunk) -> ChunkAnswer:
            part = list(texts[chunk.start : chunk.stop])
            return await self.retry.acall(lambda: self.concurrency.run(lambda: self._asend(query, part)))

        answers = await asyncio.gather(*(one(chunk) for chunk in chunks))
        return self._merged(texts, chunks, answers)

    def _merged(self, texts: Sequence[str], chunks: Sequence[Chunk], answers: Sequence[ChunkAnswer]) -> list[float]:
        scores = merge_answers(self.provider, len(texts), chunks, answers)
        self.usage.record(summed_usage(answers))
        return scores


class SDKRerankScorer(RemoteScorer):
    """A :class:`RemoteScorer` on a provider SDK whose clients have a ``rerank(**request)`` method.

    Here once for every SDK backend: the key (argument, then ``key_env_vars``), the model check, one sync
    client and one async client per event loop (or the ready ones given), sending a request with errors
    translated, and reading ``(index, relevance_score)`` pairs. Subclasses build clients, the request body,
    the error translation and the usage record.
    """

    #: Environment variables the key falls back to, in order.
    key_env_vars: tuple[str, ...] = ()

    def _configure(self, options: Any) -> None:
        super()._configure(options)
        self._api_key = resolve_key(options.api_key, self.key_env_vars)
        if self._api_key is None and options.client is None and options.async_client is None:
            raise ValueError(self._missing_key_message())
        if not isinstance(options.model, str) or not options.model.strip():
            example = type(options).model_fields["model"].default
            raise ValueError(f"model must be a {self.provider} rerank model name such as {example!r}")
        self._client = options.client
        self._async_clients: PerLoop[Any] = PerLoop(self._async_client_for_loop)

    @property
    def name(self) -> str:
        return self.model

    @property
    def client(self) -> Any:
        """The sync SDK client, built on first use unless one was given."""
        if self._client is None:
            self._client = self._build_client(self._client_options())
        return self._client

    def _async_client_for_loop(self) -> Any:
        if self.options.async_client is not None:
            return self.options.async_client
        return self._build_async_client(self._client_options())

    def _client_options(self) -> dict[str, Any]:
        if self._api_key is None:
            raise ValueError(self._missing_key_message())
        return self._sdk_options(self._api_key.get_secret_value())

    def _missing_key_message(self) -> str:
        names = " or ".join(self.key_env_vars)
        return f"{self.provider} API key missing: pass api_key=... or set {names} (or pass a ready client)"

    def _send(self, query: str, texts: list[str]) -> ChunkAnswer:
        try:
            response = self.client.rerank(**self._request(query, texts))
        except Exception as exc:
            raise self._translate(exc) from None
        return self._answer(response)

    async def _asend(self, query: str, texts: list[str]) -> ChunkAnswer:
        try:
            response = await self._async_clients.get().rerank(**self._request(query, texts))
        except Exception as exc:
            raise self._translate(exc) from None
        return self._answer(response)

    def _answer(self, response: Any) -> ChunkAnswer:
        try:
            pairs = [(result.index, result.relevance_score) for result in response.results]
        except (AttributeError, TypeError) as exc:
            raise ProviderResponseError(self.provider, f"malformed rerank response ({type(exc).__name__})") from None
        return ChunkAnswer(pairs, self._usage(response))

    @abstractmethod
    def _build_client(self, options: dict[str, Any]) -> Any:
        """A new sync SDK client."""

    @abstractmethod
    def _build_async_client(self, options: dict[str, Any]) -> Any:
        """A new async SDK client."""

    @abstractmethod
    def _sdk_options(self, key: str) -> dict[str, Any]:
        """Client keyword arguments (the SDK's own retries switched off)."""

    @abstractmethod
    def _request(self, query: str, texts: list[str]) -> dict[str, Any]:
        """Keyword arguments of one ``rerank`` call."""

    @abstractmethod
    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the SDK raised; unknown exceptions pass through."""

    @abstractmethod
    def _usage(self, response: Any) -> dict[str, float]:
        """The usage counts a response reports."""
