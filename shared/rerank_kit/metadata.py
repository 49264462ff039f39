"""The metadata keys rerank-kit adds to results, the same in both adapters, and the values it adds."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from rerank_kit.results import RerankResult

RELEVANCE_SCORE_KEY = "relevance_score"
ORIGINAL_INDEX_KEY = "original_index"
RERANK_MODEL_KEY = "rerank_model"
RERANKER_BACKEND_KEY = "reranker_backend"
RETRIEVAL_SCORE_KEY = "retrieval_score"
FUSION_SCORE_KEY = "fusion_score"
RERANK_FAILED_KEY = "rerank_failed"
RERANK_ERROR_KEY = "rerank_error"
RERANK_LATENCY_KEY = "rerank_latency_ms"
CACHE_HIT_KEY = "rerank_cache_hit"
#: Facts of one call (they differ between otherwise identical calls).
PER_CALL_KEYS = (RERANK_LATENCY_KEY, CACHE_HIT_KEY)
#: Every key rerank-kit may add; LlamaIndex keeps them out of the text the LLM and embeddings see.
ADDED_KEYS = (
    RELEVANCE_SCORE_KEY,
    ORIGINAL_INDEX_KEY,
    RERANK_MODEL_KEY,
    RERANKER_BACKEND_KEY,
    RETRIEVAL_SCORE_KEY,
    FUSION_SCORE_KEY,
    RERANK_FAILED_KEY,
    RERANK_ERROR_KEY,
    RERANK_LATENCY_KEY,
    CACHE_HIT_KEY,
)


def result_metadata(
    metadata: Mapping[str, Any], result: RerankResult, *, retrieval_score: float | None = None,
    keep_retrieval_score: bool = False,
) -> dict[str, Any]:
    """A deep copy of ``metadata`` plus what the reranker adds for ``result`` (the input is never shared)."""
    added: dict[str, Any] = {RELEVANCE_SCORE_KEY: result.score, ORIGINAL_INDEX_KEY: result.index,
                             CACHE_HIT_KEY: result.cached}
    if result.backend is not None:
        added[RERANKER_BACKEND_KEY] = result.backend
    if result.latency_ms is not None:
        added[RERANK_LATENCY_KEY] = round(result.latency_ms, 3)
    if keep_retrieval_score:
        added[RETRIEVAL_SCORE_KEY] = retrieval_score
    if result.error is not None:
        added[RERANK_FAILED_KEY] = True
        added[RERANK_ERROR_KEY] = result.error
    return {**copy.deepcopy(dict(metadata)), **added}


def call_facts(results: Sequence[RerankResult], n_in: int, scorer_name: str, usage: Mapping[str, Any]) -> dict[str, Any]:
    """One rerank call in a few numbers, for traces and events: backend, counts, latency, cache hits, usage."""
    first = results[0] if results else None
    return {
        "backend": first.backend if first is not None and first.backend else scorer_name,
        "model": scorer_name,
        "documents_in": n_in,
        "documents_out": len(results),
        "latency_ms": None if first is None else first.latency_ms,
        "cache_hits": sum(1 for result in results if result.cached),
        "failed": first is not None and first.error is not None,
        "usage": dict(usage),
    }
