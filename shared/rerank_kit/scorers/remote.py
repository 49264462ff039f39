"""The base of every API scorer: split at the provider's limits, retry, run parts concurrently, merge."""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Sequence

from rerank_kit.scorer import Scorer
from rerank_kit.scorers.api_batching import Chunk, ChunkAnswer, merge_answers, plan_chunks, summed_usage
from rerank_kit.scorers.api_support import ConcurrencyLimit, RetryPolicy, Secret

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_CONCURRENCY = 8


class RemoteScorer(Scorer):
    """Scores through a rerank API; subclasses send one request, this class does the rest.

    One call becomes as many requests as the provider's limits need (:meth:`_chunks`); each request is
    retried on 408/429/5xx/timeouts by :class:`RetryPolicy` (the SDK's own retries are switched off);
    async requests run concurrently, at most ``max_concurrency`` per scorer across all calls; answers
    are merged by global index and checked; usage is summed per call into ``self.usage``.
    """

    #: Provider name used in errors and logs.
    provider: str = "API"
    #: Most documents the provider accepts in one request.
    max_documents: int = 1000

    def __init__(
        self,
        *,
        api_key: Secret | None,
        timeout: float | None,
        max_retries: int,
        backoff: float,
        max_concurrency: int,
    ) -> None:
        super().__init__()
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self._api_key = api_key
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries=max_retries, backoff=backoff)
        self.concurrency = ConcurrencyLimit(max_concurrency)

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
