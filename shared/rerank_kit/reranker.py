"""The reranking policy, applied once for every adapter and backend."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from rerank_kit._math import sigmoid
from rerank_kit.cache import ScoreCache, cache_keys
from rerank_kit.errors import ScorerError
from rerank_kit.results import RerankResult
from rerank_kit.scorer import Scorer
from rerank_kit.validation import check_query, check_texts, check_threshold, check_top_n

#: Default number of results: enough context for an LLM answer, few enough to keep prompts small.
DEFAULT_TOP_N = 5

Normalize = Literal["none", "sigmoid", "minmax"]
_NORMALIZE_MODES = ("none", "sigmoid", "minmax")


class Reranker:
    """Scores candidates with a :class:`~rerank_kit.Scorer` and returns the best, best first.

    Policy, in order: validate the input; score each distinct text once (duplicates share a score,
    and cached scores are reused); optionally normalize; sort by score descending with ties kept in
    input order; drop scores below ``score_threshold``; keep the first ``top_n`` (``None`` keeps all).

    ``normalize``: ``"none"`` keeps the scorer's scale; ``"sigmoid"`` maps logits to (0, 1);
    ``"minmax"`` rescales each call's scores to [0, 1]. The threshold applies after normalization.

    ``cache``: ``None`` uses the scorer's shared in-memory LRU when the scorer is local
    (``scorer.cache_by_default``), ``True``/``False`` force it on/off, or pass any
    :class:`~rerank_kit.cache.ScoreCache` (for example a persistent :class:`~rerank_kit.SQLiteScoreCache`).
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        top_n: int | None = DEFAULT_TOP_N,
        score_threshold: float | None = None,
        normalize: Normalize = "none",
        cache: ScoreCache | bool | None = None,
    ) -> None:
        if not isinstance(scorer, Scorer):
            raise TypeError(f"scorer must be a rerank_kit.Scorer, got {type(scorer).__name__}")
        if normalize not in _NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {_NORMALIZE_MODES}, got {normalize!r}")
        self.scorer = scorer
        self.top_n = check_top_n(top_n)
        self.score_threshold = check_threshold(score_threshold)
        self.normalize = normalize
        self.cache = _resolve_cache(scorer, cache)

    def rerank(self, query: str, texts: Sequence[str]) -> list[RerankResult]:
        """Rank ``texts`` against ``query``; results point into ``texts`` by index."""
        return self.rerank_many([(query, texts)])[0]

    async def arerank(self, query: str, texts: Sequence[str]) -> list[RerankResult]:
        """Async :meth:`rerank`; uses the scorer's native async path."""
        return (await self.arerank_many([(query, texts)]))[0]

    def rerank_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[RerankResult]]:
        """Rank several (query, texts) requests at once; local scorers pack them into shared batches."""
        plans = [_Plan(query, texts, self) for query, texts in requests]
        pending = [plan for plan in plans if plan.missing]
        if pending:
            scored = self.scorer.score_many([(plan.query, plan.missing) for plan in pending])
            for plan, scores in zip(pending, _checked_batches(self.scorer, pending, scored)):
                plan.fill(scores, self)
        return [plan.results(self) for plan in plans]

    async def arerank_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[RerankResult]]:
        """Async :meth:`rerank_many`."""
        plans = [_Plan(query, texts, self) for query, texts in requests]
        pending = [plan for plan in plans if plan.missing]
        if pending:
            scored = await self.scorer.ascore_many([(plan.query, plan.missing) for plan in pending])
            for plan, scores in zip(pending, _checked_batches(self.scorer, pending, scored)):
                plan.fill(scores, self)
        return [plan.results(self) for plan in plans]

    def order(self, scores: Sequence[float]) -> list[RerankResult]:
        """Apply normalization, stable descending sort, threshold and top_n to ready scores."""
        values = _normalized(scores, self.normalize)
        ranked = sorted(range(len(values)), key=lambda i: -values[i])
        results = [RerankResult(index=i, score=values[i]) for i in ranked]
        if self.score_threshold is not None:
            results = [r for r in results if r.score >= self.score_threshold]
        return results if self.top_n is None else results[: self.top_n]

    def __repr__(self) -> str:
        return (
            f"Reranker(scorer={self.scorer!r}, top_n={self.top_n}, "
            f"score_threshold={self.score_threshold}, normalize={self.normalize!r})"
        )


class _Plan:
    """One request's bookkeeping: distinct texts, cached scores and what is left to score."""

    def __init__(self, query: str, texts: Sequence[str], reranker: Reranker) -> None:
        self.query = check_query(query)
        texts = check_texts(texts)
        self.positions: dict[str, int] = {}
        self.slot_of = [self.positions.setdefault(text, len(self.positions)) for text in texts]
        self.distinct = list(self.positions)
        self.scores: list[float | None] = [None] * len(self.distinct)
        cache, key = reranker.cache, reranker.scorer.cache_key
        self.keys = cache_keys(key, self.query, self.distinct) if cache is not None and key else None
        if self.keys is not None and cache is not None:
            self.scores = cache.get_many(self.keys)
        self.missing = [text for text, score in zip(self.distinct, self.scores) if score is None]

    def fill(self, scores: Sequence[float], reranker: Reranker) -> None:
        missing_slots = [slot for slot, score in enumerate(self.scores) if score is None]
        for slot, score in zip(missing_slots, scores):
            self.scores[slot] = score
        if self.keys is not None and reranker.cache is not None:
            reranker.cache.put_many([(self.keys[slot], self.scores[slot]) for slot in missing_slots])

    def results(self, reranker: Reranker) -> list[RerankResult]:
        return reranker.order([self.scores[slot] for slot in self.slot_of])


def _resolve_cache(scorer: Scorer, cache: ScoreCache | bool | None) -> ScoreCache | None:
    if cache is None:
        cache = scorer.cache_by_default
    if cache is True:
        return scorer.shared_cache
    if cache is False:
        return None
    return cache


def _checked_batches(scorer: Scorer, plans: Sequence[_Plan], scored: Sequence[Sequence[float]]) -> list[list[float]]:
    """Reject a scorer answer with the wrong count or non-finite values instead of mis-ranking."""
    if len(scored) != len(plans):
        raise ScorerError(f"{scorer.name} returned {len(scored)} score lists for {len(plans)} queries")
    checked = []
    for plan, scores in zip(plans, scored):
        if len(scores) != len(plan.missing):
            raise ScorerError(f"{scorer.name} returned {len(scores)} scores for {len(plan.missing)} texts")
        values = [float(score) for score in scores]
        bad = [i for i, value in enumerate(values) if not math.isfinite(value)]
        if bad:
            raise ScorerError(f"{scorer.name} returned non-finite scores at positions {bad[:5]}")
        checked.append(values)
    return checked


def _normalized(scores: Sequence[float], mode: Normalize) -> list[float]:
    if mode == "sigmoid":
        return [sigmoid(score) for score in scores]
    if mode == "minmax" and scores:
        low, high = min(scores), max(scores)
        span = high - low
        return [1.0 if span == 0 else (score - low) / span for score in scores]
    return [float(score) for score in scores]
