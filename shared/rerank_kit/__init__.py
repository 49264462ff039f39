"""rerank-kit core: scorers behind one contract, and the reranking policy every adapter shares."""

from __future__ import annotations

from rerank_kit._lazy import lazy_exports
from rerank_kit.cache import LRUScoreCache, SQLiteScoreCache
from rerank_kit.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    RerankError,
    ScorerError,
)
from rerank_kit.reranker import DEFAULT_TOP_N, Reranker
from rerank_kit.results import RerankResult
from rerank_kit.scorer import Scorer
from rerank_kit.usage import UsageMeter

_BACKENDS = {
    "CrossEncoderScorer": ".scorers.local.cross_encoder",
    "CohereScorer": ".scorers.remote.cohere",
    "VoyageScorer": ".scorers.remote.voyage",
    "HTTPRerankScorer": ".scorers.remote.http",
    "FallbackScorer": ".scorers.wrappers.fallback",
    "ClaudeScorer": ".scorers.llm.claude",
    "ClaudeAnswerWarning": ".scorers.llm.claude",
    "EmbeddingScorer": ".scorers.local.embedding",
}
__getattr__ = lazy_exports(__name__, _BACKENDS)

__all__ = [
    "DEFAULT_TOP_N",
    "LRUScoreCache",
    "ProviderAuthError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderResponseError",
    "ProviderUnavailableError",
    "RerankError",
    "RerankResult",
    "Reranker",
    "SQLiteScoreCache",
    "Scorer",
    "ScorerError",
    "UsageMeter",
    *_BACKENDS,
]
