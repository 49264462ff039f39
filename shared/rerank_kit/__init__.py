"""rerank-kit core: scorers behind one contract, and the reranking policy every adapter shares."""

from __future__ import annotations

from rerank_kit._lazy import lazy_exports
from rerank_kit.backends import BACKENDS, CORE_EXPORTS, available_backends
from rerank_kit.cache import LRUScoreCache, SQLiteScoreCache
from rerank_kit.errors import (
    ModelLoadError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
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

_LAZY = {
    **{backend.scorer_name: backend.scorer_path.partition(":")[0] for backend in BACKENDS},
    **CORE_EXPORTS,
}
__getattr__ = lazy_exports(__name__, _LAZY)

__all__ = [
    "DEFAULT_TOP_N",
    "available_backends",
    "LRUScoreCache",
    "ModelLoadError",
    "ProviderAuthError",
    "ProviderError",
    "ProviderRateLimitError",
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
    *_LAZY,
]
