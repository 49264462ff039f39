"""The reranking policy, applied once for every adapter and backend."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, cast, get_args

from rerank_kit._math import sigmoid
from rerank_kit.cache import ScoreCache, cache_keys
from rerank_kit.errors import ProviderError, ScorerError
from rerank_kit.options import DEFAULT_TOP_N, Normalize, OnError
from rerank_kit.results import RerankResult
from rerank_kit.scorer import CanRefineTop, Scorer
from rerank_kit.tracing import span
from rerank_kit.validation import check_query, check_texts, check_threshold, check_top_n

__all__ = ["DEFAULT_TOP_N", "Normalize", "OnError", "Reranker"]

logger = logging.getLogger("rerank_kit")
_NORMALIZE_MODES = get_args(Normalize)
_ON_ERROR_MODES = get_args(OnError)


class Reranker:
    """Scores candidates with a :class:`~rerank_kit.Scorer` and returns the best, best first.

    Policy, in order: validate the input; score each distinct text once (duplicates share a score,
    and cached scores are reused); optionally normalize; sort by score descending with ties kept in
    input order; drop scores below ``score_threshold``; keep the first ``top_n`` (``None`` keeps all). A scorer
    with an approximate fast pass (:class:`~rerank_kit.scorer.CanRefineTop`, e.g. fast mode in bfloat16)
    re-scores exactly the texts near the ``top_n`` cut before the sort, so the top n are its exact pass's.

    ``normalize``: ``"none"`` keeps the scorer's scale; ``"sigmoid"`` maps logits to (0, 1);
    ``"minmax"`` rescales each call's scores to [0, 1]. The threshold applies after normalization.

    ``cache``: ``None`` uses the scorer's shared in-memory LRU when the scorer is local
    (``scorer.cache_by_default``), ``True``/``False`` force it on/off, or pass any
    :class:`~rerank_kit.cache.ScoreCache` (for example a persistent :class:`~rerank_kit.SQLiteScoreCache`).

    ``on_error``: ``"raise"`` (default) lets a :class:`~rerank_kit.ProviderError` (after every retry and
    fallback) propagate; ``"keep_order"`` logs a warning and returns the input order instead (``top_n``
    applied, no threshold), each result carrying the reason in ``error`` and a rank score ``(n - r) / n``.
    A reranker is immutable: :meth:`replace` returns a changed copy.
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        top_n: int | None = DEFAULT_TOP_N,
        score_threshold: float | None = None,
        normalize: Normalize = "none",
        cache: ScoreCache | bool | None = None,
        on_error: OnError = "raise",
    ) -> None:
        if not isinstance(scorer, Scorer):
            raise TypeError(f"scorer must be a rerank_kit.Scorer, got {type(scorer).__name__}")
        if normalize not in _NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {_NORMALIZE_MODES}, got {normalize!r}")
        if on_error not in _ON_ERROR_MODES:
            raise ValueError(f"on_error must be one of {_ON_ERROR_MODES}, got {on_error!r}")
        setattr_ = object.__setattr__
        setattr_(self, "scorer", scorer)
        setattr_(self, "top_n", check_top_n(top_n))
        setattr_(self, "score_threshold", check_threshold(score_threshold))
        setattr_(self, "normalize", normalize)
        setattr_(self, "cache", _resolve_cache(scorer, cache))
        setattr_(self, "on_error", on_error)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Reranker is immutable; use reranker.replace({name}=...) for a changed copy")

    def replace(self, **changes: Any) -> Reranker:
        """A copy with ``changes`` applied (same keyword arguments as the constructor)."""
        settings = {"scorer": self.scorer, "top_n": self.top_n, "score_threshold": self.score_threshold,
                    "normalize": self.normalize, "cache": self.cache, "on_error": self.on_error}
        unknown = set(changes) - set(settings)
        if unknown:
            raise TypeError(f"Reranker has no setting(s) {sorted(unknown)}")
        settings.update(changes)
        scorer = settings.pop("scorer")
        if settings["cache"] is None and "cache" not in changes:
            settings["cache"] = False
        return Reranker(scorer, **settings)

    def rerank(self, query: str, texts: Sequence[str]) -> list[RerankResult]:
        """Rank ``texts`` against ``query``; results point into ``texts`` by index."""
        return self.rerank_many([(query, texts)])[0]

    async def arerank(self, query: str, texts: Sequence[str]) -> list[RerankResult]:
        """Async :meth:`rerank`; uses the scorer's native async path."""
        return (await self.arerank_many([(query, texts)]))[0]

    def rerank_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[RerankResult]]:
        """Rank several (query, texts) requests at once; local scorers pack them into shared batches."""
        call = _Call(self, requests)
        with self._span(call.plans, call.pending):
            if call.pending:
                try:
                    call.fill(*self.scorer.score_many_traced(call.to_score))
                except ProviderError as error:
                    return self._kept_order(call.plans, error, call.started)
                call.refine(call.refinable())
        return call.results()

    async def arerank_many(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[RerankResult]]:
        """Async :meth:`rerank_many`."""
        call = _Call(self, requests)
        with self._span(call.plans, call.pending):
            if call.pending:
                try:
                    call.fill(*await self.scorer.ascore_many_traced(call.to_score))
                except ProviderError as error:
                    return self._kept_order(call.plans, error, call.started)
                plans = call.refinable()
                if plans:
                    await asyncio.to_thread(call.refine, plans)
        return call.results()

    def _span(self, plans: Sequence[_Plan], pending: Sequence[_Plan]) -> Any:
        """The OpenTelemetry span of one call (a no-op without the ``otel`` extra)."""
        return span("rerank_kit.rerank", backend=self.scorer.name, queries=len(plans),
                    texts=sum(len(plan.slot_of) for plan in plans),
                    scored=sum(len(plan.missing) for plan in pending), top_n=self.top_n)

    def order(self, scores: Sequence[float], backend: str | None = None, cached: Sequence[bool] = (),
              latency_ms: float | None = None) -> list[RerankResult]:
        """Apply normalization, stable descending sort, threshold and top_n to ready scores."""
        values = _normalized(scores, self.normalize)
        ranked = sorted(range(len(values)), key=lambda i: -values[i])
        results = [RerankResult(index=i, score=values[i], backend=backend, cached=bool(cached and cached[i]),
                                latency_ms=latency_ms) for i in ranked]
        if self.score_threshold is not None:
            results = [r for r in results if r.score >= self.score_threshold]
        return results if self.top_n is None else results[: self.top_n]

    def _kept_order(self, plans: Sequence[_Plan], error: ProviderError, started: float) -> list[list[RerankResult]]:
        """The input order for every request (``on_error="keep_order"``), or ``error`` raised again."""
        if self.on_error == "raise":
            raise error
        logger.warning("rerank failed, keeping the first-stage order: %s", error)
        reason = f"{type(error).__name__}: {error}"
        kept = []
        for plan in plans:
            n = len(plan.slot_of)
            results = [RerankResult(index=i, score=(n - i) / n, error=reason, latency_ms=_elapsed_ms(started))
                       for i in range(n)]
            kept.append(results if self.top_n is None else results[: self.top_n])
        return kept

    def __repr__(self) -> str:
        return (
            f"Reranker(scorer={self.scorer!r}, top_n={self.top_n}, "
            f"score_threshold={self.score_threshold}, normalize={self.normalize!r}, on_error={self.on_error!r})"
        )


class _Call:
    """One rerank call's bookkeeping: a plan per request, what is left to score, the clock and who answered."""

    def __init__(self, reranker: Reranker, requests: Sequence[tuple[str, Sequence[str]]]) -> None:
        self.reranker = reranker
        self.started = time.perf_counter()
        self.plans = [_Plan(query, texts, reranker) for query, texts in requests]
        self.pending = [plan for plan in self.plans if plan.missing]
        self.to_score = [(plan.query, plan.missing) for plan in self.pending]
        self.backend = reranker.scorer.name

    def fill(self, scored: Sequence[Sequence[float]], backend: str) -> None:
        self.backend = backend
        counts = [len(plan.missing) for plan in self.pending]
        for plan, scores in zip(self.pending, _checked_batches(self.reranker.scorer, counts, scored)):
            plan.fill(scores, self.reranker)

    def refinable(self) -> list[_Plan]:
        """The plans a fast scorer should refine: scored now, with more distinct texts than ``top_n``."""
        scorer, top_n = self.reranker.scorer, self.reranker.top_n
        if top_n is None or not (isinstance(scorer, CanRefineTop) and scorer.refines_top):
            return []
        return [plan for plan in self.pending if len(plan.distinct) > top_n]

    def refine(self, plans: Sequence[_Plan]) -> None:
        """Let a fast scorer re-score exactly the texts of ``plans`` (:meth:`refinable`) near the ``top_n`` cut."""
        if not plans:
            return
        scorer, top_n = cast(CanRefineTop, self.reranker.scorer), cast(int, self.reranker.top_n)
        refined = scorer.refine_top([(plan.query, plan.distinct, plan.ready_scores()) for plan in plans], top_n)
        for plan, scores in zip(plans, _checked_batches(scorer, [len(plan.distinct) for plan in plans], refined)):
            plan.refined(scores, self.reranker)

    def results(self) -> list[list[RerankResult]]:
        latency = _elapsed_ms(self.started)
        return [plan.results(self.reranker, self.backend, latency) for plan in self.plans]


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
        self.cached = [score is not None for score in self.scores]
        self.missing = [text for text, score in zip(self.distinct, self.scores) if score is None]

    def fill(self, scores: Sequence[float], reranker: Reranker) -> None:
        missing_slots = [slot for slot, score in enumerate(self.scores) if score is None]
        for slot, score in zip(missing_slots, scores):
            self.scores[slot] = score
        if self.keys is not None and reranker.cache is not None:
            reranker.cache.put_many([(self.keys[slot], self.scores[slot]) for slot in missing_slots])

    def ready_scores(self) -> list[float]:
        """The score of every distinct text (after :meth:`fill`)."""
        return [float(score) for score in self.scores if score is not None]

    def refined(self, scores: Sequence[float], reranker: Reranker) -> None:
        """Take a fast scorer's refined scores for every distinct text and cache those that changed."""
        changed = [slot for slot, score in enumerate(scores) if score != self.scores[slot]]
        self.scores = list(scores)
        if self.keys is not None and reranker.cache is not None and changed:
            reranker.cache.put_many([(self.keys[slot], scores[slot]) for slot in changed])

    def results(self, reranker: Reranker, backend: str | None, latency_ms: float) -> list[RerankResult]:
        return reranker.order([self.scores[slot] for slot in self.slot_of], backend,
                              [self.cached[slot] for slot in self.slot_of], latency_ms)


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _resolve_cache(scorer: Scorer, cache: ScoreCache | bool | None) -> ScoreCache | None:
    if cache is None:
        cache = scorer.cache_by_default
    if cache is True:
        return scorer.shared_cache
    if cache is False:
        return None
    return cache


def _checked_batches(scorer: Scorer, counts: Sequence[int], scored: Sequence[Sequence[float]]) -> list[list[float]]:
    """Reject a scorer answer with the wrong counts or non-finite values instead of mis-ranking."""
    if len(scored) != len(counts):
        raise ScorerError(f"{scorer.name} returned {len(scored)} score lists for {len(counts)} queries")
    checked = []
    for count, scores in zip(counts, scored):
        if len(scores) != count:
            raise ScorerError(f"{scorer.name} returned {len(scores)} scores for {count} texts")
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
