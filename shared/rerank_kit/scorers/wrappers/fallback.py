"""A scorer that keeps answering while a provider is down: try scorers in order, use the first that answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Optional, TypeVar

from pydantic import Field

from rerank_kit.errors import ProviderError, ProviderUnavailableError
from rerank_kit.options import BackendOptions
from rerank_kit.scorer import ScoreRequest, Scorer
from rerank_kit.scorers.remote.io_loop import run_sync

T = TypeVar("T")


class FallbackOptions(BackendOptions):
    """Options of the fallback chain: the scorers (or rerankers of either adapter) to try in order."""

    positional = ("scorers",)

    scorers: list[Any] = Field(exclude=True, description="Scorers or rerankers, tried in order.")
    deadline: Optional[float] = Field(
        default=None, gt=0, description="Seconds the whole chain may take, fallbacks included; None: no limit."
    )


def as_scorer(item: Any, position: int) -> Scorer:
    """``item`` as a scorer: a :class:`Scorer` itself, or an adapter reranker's (``as_scorer()``)."""
    if isinstance(item, Scorer):
        return item
    as_scorer_method = getattr(item, "as_scorer", None)
    if callable(as_scorer_method):
        return as_scorer_method()
    raise TypeError(f"scorers[{position}] must be a rerank_kit.Scorer or a reranker, got {type(item).__name__}")


class FallbackScorer(Scorer):
    """Tries ``scorers`` in order and returns the first answer, e.g. ``[CohereScorer(), CrossEncoderScorer()]``.

    A scorer is skipped when it raises a :class:`~rerank_kit.ProviderError` (after its own retries: outage,
    rate limit, auth, rejected request, malformed answer); any other error (bad input, a bug) propagates.
    Each result says which scorer produced it (``score_many_traced``; the adapters put it in metadata as
    ``reranker_backend``); ``last_scorer_name`` and ``last_failures`` describe the most recent call only;
    ``usage`` records the answering scorer's reported usage. ``deadline`` bounds the whole chain, fallbacks
    included. When every scorer fails,
    a :class:`~rerank_kit.ProviderUnavailableError` lists each failure. Scores are not cached by default
    (different scorers use different scales).
    """

    Options = FallbackOptions

    def __init__(self, scorers: Sequence[Any], *, deadline: float | None = None) -> None:
        super().__init__()
        self.deadline = FallbackOptions(scorers=[], deadline=deadline).deadline
        if isinstance(scorers, (str, bytes)) or not isinstance(scorers, Sequence) or not scorers:
            raise ValueError("FallbackScorer needs a list of at least one scorer")
        self.scorers = [as_scorer(item, position) for position, item in enumerate(scorers)]
        self.last_scorer_name: str | None = None
        self.last_failures: list[ProviderError] = []

    @property
    def name(self) -> str:
        return "fallback(" + ", ".join(scorer.name for scorer in self.scorers) + ")"

    @classmethod
    def from_options(cls, options: FallbackOptions) -> FallbackScorer:
        """The chain for validated ``options``."""
        return cls(options.scorers, deadline=options.deadline)

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if self.deadline is not None:
            return run_sync(self.ascore(query, texts))
        return self._first(lambda scorer: scorer.score(query, texts))

    def score_many_traced(self, requests: Sequence[ScoreRequest]) -> tuple[list[list[float]], str]:
        """Scores and the name of the scorer in the chain that produced them (safe under concurrency)."""
        if self.deadline is not None:
            return run_sync(self.ascore_many_traced(requests))
        return self._first(lambda scorer: scorer.score_many_traced(requests))

    async def ascore_many_traced(self, requests: Sequence[ScoreRequest]) -> tuple[list[list[float]], str]:
        return await self._afirst(lambda scorer: scorer.ascore_many_traced(requests))

    def close(self) -> None:
        for scorer in self.scorers:
            scorer.close()

    async def aclose(self) -> None:
        for scorer in self.scorers:
            await scorer.aclose()

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        if self.deadline is not None:
            return run_sync(self.ascore_many(requests))
        return self._first(lambda scorer: scorer.score_many(requests))

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        return await self._afirst(lambda scorer: scorer.ascore(query, texts))

    async def ascore_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        return await self._afirst(lambda scorer: scorer.ascore_many(requests))

    def _first(self, run: Callable[[Scorer], T]) -> T:
        failures: list[ProviderError] = []
        for scorer in self.scorers:
            usage_before = scorer.usage.total
            try:
                answer = run(scorer)
            except ProviderError as error:
                failures.append(error)
                continue
            return self._answered(scorer, usage_before, failures, answer)
        raise self._all_failed(failures)

    async def _afirst(self, run: Callable[[Scorer], Awaitable[T]]) -> T:
        if self.deadline is None:
            return await self._afirst_unbounded(run)
        try:
            return await asyncio.wait_for(self._afirst_unbounded(run), self.deadline)
        except asyncio.TimeoutError:
            raise ProviderUnavailableError(
                "fallback", f"no scorer answered within the {self.deadline}s deadline"
            ) from None

    async def _afirst_unbounded(self, run: Callable[[Scorer], Awaitable[T]]) -> T:
        failures: list[ProviderError] = []
        for scorer in self.scorers:
            usage_before = scorer.usage.total
            try:
                answer = await run(scorer)
            except ProviderError as error:
                failures.append(error)
                continue
            return self._answered(scorer, usage_before, failures, answer)
        raise self._all_failed(failures)

    def _answered(self, scorer: Scorer, usage_before: dict[str, float], failures: list[ProviderError],
                  answer: T) -> T:
        self.last_scorer_name = scorer.name
        self.last_failures = failures
        usage_after = scorer.usage.total
        spent = {key: value - usage_before.get(key, 0) for key, value in usage_after.items()}
        if any(spent.values()):
            self.usage.record(spent)
        return answer

    def _all_failed(self, failures: list[ProviderError]) -> ProviderUnavailableError:
        self.last_scorer_name = None
        self.last_failures = failures
        listing = "; ".join(f"[{i}] {error}" for i, error in enumerate(failures))
        error = ProviderUnavailableError("fallback", f"every scorer failed: {listing}")
        error.__cause__ = failures[-1]
        return error

    def __repr__(self) -> str:
        return f"FallbackScorer(scorers={self.scorers!r})"
