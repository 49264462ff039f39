"""LangChain document compressors backed by rerank-kit scorers."""

from __future__ import annotations

from rerank_kit._lazy import lazy_exports

_EXPORTS = {
    "BaseRerank": ".base",
    "Rerank": ".base",
    "CrossEncoderRerank": ".cross_encoder",
    "CohereRerank": ".api",
    "VoyageRerank": ".api",
    "HTTPRerank": ".api",
    "FallbackRerank": ".api",
    "ClaudeRerank": ".claude",
    "EmbeddingRerank": ".embedding",
    "TwoStageRetriever": ".pipeline",
    "FusionRetriever": ".pipeline",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = list(_EXPORTS)
