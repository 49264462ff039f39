"""The framework-free two-stage retrieval logic: how many candidates, fusion and dedupe, rerank, MMR, metadata.

Adapters turn their framework objects into :class:`Candidate` values, call :class:`TwoStage` or
:func:`fuse_candidates`, and turn the :class:`Ranked` values back into framework objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rerank_kit.metadata import (
    ADDED_KEYS,
    ORIGINAL_INDEX_KEY,
    RELEVANCE_SCORE_KEY,
    RERANK_MODEL_KEY,
    RETRIEVAL_SCORE_KEY,
)
from rerank_kit.pipeline.fusion import DEFAULT_RRF_K, reciprocal_rank_fusion
from rerank_kit.pipeline.mmr import check_mmr_lambda, mmr_rerank
from rerank_kit.scorers.wrappers.max_passage import MaxPassageScorer
from rerank_kit.reranker import DEFAULT_TOP_N, Reranker
from rerank_kit.results import RerankResult
from rerank_kit.scorer import CanEmbed, Scorer
from rerank_kit.validation import check_positive_int

#: Without an explicit ``candidates``, the first stage fetches this many candidates per returned result ...
CANDIDATES_PER_RESULT = 4
#: ... and at least this many: a reranker can only promote what the first stage found.
MIN_CANDIDATES = 20

#: Metadata keys the pipeline adds to a result (on top of the candidate's own metadata).
PIPELINE_METADATA_KEYS = ADDED_KEYS

Item = TypeVar("Item")
Embed = Callable[[list[str]], Sequence[Sequence[float]]]


@dataclass(frozen=True)
class Candidate(Generic[Item]):
    """One first-stage result: the framework object (passed back untouched) and what the core needs of it.

    The duplicate rule, the same in both adapters: candidates with the same ``text`` (the text that is scored)
    are one candidate, the first (best-ranked) one kept, whatever their ids.
    """

    item: Item
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    retrieval_score: float | None = None
    embedding: Sequence[float] | None = None


@dataclass(frozen=True)
class Ranked(Generic[Item]):
    """One final result: the candidate's object, its rerank score and its merged metadata."""

    item: Item
    score: float
    metadata: dict[str, Any]


def candidate_count(k: int, candidates: int | None = None) -> int:
    """How many candidates the first stage fetches: ``candidates``, or ``max(4 * k, 20)`` when it is ``None``."""
    check_positive_int("k", k)
    if candidates is None:
        return max(CANDIDATES_PER_RESULT * k, MIN_CANDIDATES)
    check_positive_int("candidates", candidates)
    if candidates < k:
        raise ValueError(f"candidates ({candidates}) must be >= k ({k}): the reranker cannot return more than it gets")
    return candidates


def fuse_candidates(
    rankings: Sequence[Sequence[Candidate[Item]]],
    *,
    rrf_k: int = DEFAULT_RRF_K,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[tuple[Candidate[Item], float]]:
    """Reciprocal rank fusion of several retrievers' candidates, best first, with their fused scores.

    Candidates with the same ``key`` are one candidate (the first one seen is kept).
    """
    if limit is not None:
        check_positive_int("limit", limit)
    first: dict[str, Candidate[Item]] = {}
    for ranking in rankings:
        for candidate in ranking:
            first.setdefault(candidate.text, candidate)
    fused = reciprocal_rank_fusion([[c.text for c in ranking] for ranking in rankings], k=rrf_k, weights=weights)
    return [(first[key], score) for key, score in fused[:limit]]


def first_of_each_text(candidates: Sequence[Candidate[Item]]) -> list[int]:
    """Positions of the first candidate of each text, in order: the same document is never returned twice."""
    seen: set[str] = set()
    positions = []
    for position, candidate in enumerate(candidates):
        if candidate.text not in seen:
            seen.add(candidate.text)
            positions.append(position)
    return positions


class TwoStage:
    """Reranks first-stage candidates down to ``k`` results, optionally diversified with MMR.

    ``reranker`` is a :class:`~rerank_kit.Scorer` or a :class:`~rerank_kit.Reranker` whose threshold,
    normalization and cache settings are kept (its ``top_n`` is replaced by ``k``). ``candidates`` is how
    many results to ask the first stage for (see :func:`candidate_count`). With ``mmr_lambda`` (1 =
    relevance only, 0 = diversity only) the reranked pool is reordered by MMR, using the candidates'
    embeddings, else ``embed``, else the scorer's own embeddings when it is an
    :class:`~rerank_kit.EmbeddingScorer`, else word overlap. With ``passage_size`` (words) long candidates are
    scored by their best overlapping passage (:class:`~rerank_kit.scorers.wrappers.max_passage.MaxPassageScorer`).
    """

    def __init__(
        self,
        reranker: Reranker | Scorer,
        *,
        k: int = DEFAULT_TOP_N,
        candidates: int | None = None,
        mmr_lambda: float | None = None,
        embed: Embed | None = None,
        passage_size: int | None = None,
        passage_overlap: int | None = None,
    ) -> None:
        if isinstance(reranker, Scorer):
            reranker = Reranker(reranker)
        if not isinstance(reranker, Reranker):
            raise TypeError(f"reranker must be a rerank_kit.Reranker or Scorer, got {type(reranker).__name__}")
        self.k = k
        self.candidates = candidate_count(k, candidates)
        self.mmr_lambda = None if mmr_lambda is None else check_mmr_lambda(mmr_lambda)
        self.embed = embed
        scorer = reranker.scorer
        if passage_size is not None:
            scorer = MaxPassageScorer(scorer, passage_size=passage_size, overlap=passage_overlap)
        self.reranker = reranker.replace(scorer=scorer, top_n=k if self.mmr_lambda is None else None)

    @property
    def scorer(self) -> Scorer:
        """The scorer that ranks the candidates."""
        return self.reranker.scorer

    def rank(self, query: str, candidates: Sequence[Candidate[Item]]) -> list[Ranked[Item]]:
        """The best ``k`` of ``candidates`` for ``query``, best first."""
        positions = first_of_each_text(candidates)
        unique = [candidates[p] for p in positions]
        texts = [c.text for c in unique]
        results = self.reranker.rerank(query, texts)
        if self.mmr_lambda is not None and results:
            results = mmr_rerank(
                results, texts, mmr_lambda=self.mmr_lambda, k=self.k, embeddings=self._embeddings(unique, results)
            )
        return self._ranked(unique, positions, results)

    async def arank(self, query: str, candidates: Sequence[Candidate[Item]]) -> list[Ranked[Item]]:
        """Async :meth:`rank` on the scorer's native async path."""
        positions = first_of_each_text(candidates)
        unique = [candidates[p] for p in positions]
        texts = [c.text for c in unique]
        results = await self.reranker.arerank(query, texts)
        if self.mmr_lambda is not None and results:
            embeddings = await asyncio.to_thread(self._embeddings, unique, results)
            results = mmr_rerank(results, texts, mmr_lambda=self.mmr_lambda, k=self.k, embeddings=embeddings)
        return self._ranked(unique, positions, results)

    def _embeddings(
        self, candidates: Sequence[Candidate[Item]], results: Sequence[RerankResult]
    ) -> list[Sequence[float]] | None:
        """Embeddings aligned with ``candidates`` (only the reranked ones are computed), or ``None``."""
        if all(c.embedding is not None for c in candidates):
            return [c.embedding for c in candidates]  # type: ignore[misc]
        embed = self.embed
        if embed is None and isinstance(self.scorer, CanEmbed):
            embed = self.scorer.embed_texts
        if embed is None:
            return None
        pool = [r.index for r in results]
        vectors = list(embed([candidates[i].text for i in pool]))
        if len(vectors) != len(pool):
            raise ValueError(f"embed returned {len(vectors)} vectors for {len(pool)} texts")
        aligned: list[Sequence[float]] = [()] * len(candidates)
        for i, vector in zip(pool, vectors):
            aligned[i] = vector
        return aligned

    def _ranked(
        self, candidates: Sequence[Candidate[Item]], positions: Sequence[int], results: Sequence[RerankResult]
    ) -> list[Ranked[Item]]:
        name = self.scorer.name
        ranked = []
        for r in results:
            candidate = candidates[r.index]
            added: dict[str, Any] = {
                RELEVANCE_SCORE_KEY: r.score,
                ORIGINAL_INDEX_KEY: positions[r.index],
                RERANK_MODEL_KEY: name,
            }
            if candidate.retrieval_score is not None:
                added[RETRIEVAL_SCORE_KEY] = candidate.retrieval_score
            ranked.append(Ranked(item=candidate.item, score=r.score, metadata={**candidate.metadata, **added}))
        return ranked

    def __repr__(self) -> str:
        return (
            f"TwoStage(scorer={self.scorer!r}, k={self.k}, candidates={self.candidates}, "
            f"mmr_lambda={self.mmr_lambda})"
        )
