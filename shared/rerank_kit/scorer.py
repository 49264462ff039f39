"""The scorer contract: every backend turns (query, texts) into one float per text."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence

from rerank_kit.cache import LRUScoreCache
from rerank_kit.usage import UsageMeter

ScoreRequest = tuple[str, Sequence[str]]


class Scorer(ABC):
    """Scores texts against a query; higher means more relevant.

    Subclasses implement :meth:`score`. The defaults make :meth:`ascore` run it in a worker thread
    (so the event loop is never blocked) and :meth:`score_many` loop over queries; backends that can
    do better (real async clients, packing many queries into shared batches) override them.
    Scorers receive validated, de-duplicated, non-empty input from :class:`~rerank_kit.Reranker`.
    """

    #: Whether :class:`~rerank_kit.Reranker` puts an in-memory score cache in front by default.
    cache_by_default: bool = False

    def __init__(self) -> None:
        self.usage = UsageMeter()
        self._shared_cache: LRUScoreCache | None = None

    @property
    def shared_cache(self) -> LRUScoreCache:
        """This scorer's in-memory score cache, shared by every reranker built on it."""
        if self._shared_cache is None:
            self._shared_cache = LRUScoreCache()
        return self._shared_cache

    @property
    def name(self) -> str:
        """A short model or service name for events, logs and metadata."""
        return type(self).__name__

    @property
    def cache_key(self) -> str | None:
        """Identity of this scorer and every setting that changes its scores, or ``None`` if not cacheable."""
        return None

    @abstractmethod
    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """Return one relevance score per text, in input order."""

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        """Async :meth:`score`; by default in a worker thread."""
        return await asyncio.to_thread(self.score, query, texts)

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Score several (query, texts) requests; by default one after another."""
        return [self.score(query, texts) for query, texts in requests]

    async def ascore_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Async :meth:`score_many`; by default the requests run concurrently."""
        return list(await asyncio.gather(*(self.ascore(query, texts) for query, texts in requests)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
