"""Maximal marginal relevance after reranking: trade relevance against redundancy among the results."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rerank_kit.results import RerankResult
from rerank_kit.validation import check_top_n

_WORD = re.compile(r"\w+")


def check_mmr_lambda(mmr_lambda: float) -> float:
    """Return ``mmr_lambda`` as a float if it is a number in [0, 1]."""
    if isinstance(mmr_lambda, bool) or not isinstance(mmr_lambda, (int, float)) or not 0 <= mmr_lambda <= 1:
        raise ValueError(f"mmr_lambda must be a number in [0, 1] (1 = relevance only), got {mmr_lambda!r}")
    return float(mmr_lambda)


def mmr_select(
    relevance: Sequence[float],
    similarity: Sequence[Sequence[float]],
    *,
    mmr_lambda: float,
    k: int | None = None,
) -> list[int]:
    """Pick up to ``k`` indices greedily by ``lambda * relevance - (1 - lambda) * max similarity to the picked``.

    Relevance is first rescaled to [0, 1] over the pool, so ``mmr_lambda`` weighs it against similarity
    the same way whatever the scorer's scale. Ties go to the lower index.
    """
    mmr_lambda = check_mmr_lambda(mmr_lambda)
    k = check_top_n(k)
    n = len(relevance)
    if len(similarity) != n or any(len(row) != n for row in similarity):
        raise ValueError(f"similarity must be a {n}x{n} matrix for {n} relevance scores")
    low, high = (min(relevance), max(relevance)) if n else (0.0, 0.0)
    span = high - low
    rel = [1.0 if span == 0 else (r - low) / span for r in relevance]
    limit = n if k is None else min(k, n)
    picked: list[int] = []
    redundancy = [-math.inf] * n
    remaining = list(range(n))

    def marginal(i: int) -> float:
        return mmr_lambda * rel[i] - (1 - mmr_lambda) * (redundancy[i] if picked else 0.0)

    while len(picked) < limit:
        best = max(remaining, key=lambda i: (marginal(i), -i))
        picked.append(best)
        remaining.remove(best)
        for i in remaining:
            redundancy[i] = max(redundancy[i], similarity[i][best])
    return picked


def cosine_similarity_matrix(embeddings: Sequence[Sequence[float]]) -> list[list[float]]:
    """Pairwise cosine similarity; a zero vector is similar to nothing (0.0)."""
    norms = [math.sqrt(sum(x * x for x in vector)) for vector in embeddings]
    dims = {len(vector) for vector in embeddings}
    if len(dims) > 1:
        raise ValueError(f"embeddings have different lengths: {sorted(dims)}")
    matrix = []
    for a, norm_a in zip(embeddings, norms):
        row = []
        for b, norm_b in zip(embeddings, norms):
            dot = sum(x * y for x, y in zip(a, b))
            row.append(0.0 if norm_a == 0 or norm_b == 0 else dot / (norm_a * norm_b))
        matrix.append(row)
    return matrix


def text_overlap_matrix(texts: Sequence[str]) -> list[list[float]]:
    """Pairwise Jaccard overlap of lower-cased word sets: the similarity used when there are no embeddings."""
    words = [set(_WORD.findall(text.lower())) for text in texts]
    return [[_jaccard(a, b) for b in words] for a in words]


def mmr_rerank(
    results: Sequence[RerankResult],
    texts: Sequence[str],
    *,
    mmr_lambda: float,
    k: int | None = None,
    embeddings: Sequence[Sequence[float]] | None = None,
) -> list[RerankResult]:
    """Reorder reranked ``results`` (indices into ``texts``) by MMR; similarity from ``embeddings`` or word overlap."""
    if embeddings is not None and len(embeddings) != len(texts):
        raise ValueError(f"got {len(embeddings)} embeddings for {len(texts)} texts")
    pool = [r.index for r in results]
    if embeddings is not None:
        similarity = cosine_similarity_matrix([embeddings[i] for i in pool])
    else:
        similarity = text_overlap_matrix([texts[i] for i in pool])
    order = mmr_select([r.score for r in results], similarity, mmr_lambda=mmr_lambda, k=k)
    return [results[i] for i in order]


def _jaccard(a: set[str], b: set[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0
