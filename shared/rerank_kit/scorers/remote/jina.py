"""Jina AI rerankers (``/v1/rerank``, the Cohere-compatible format) over httpx."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from rerank_kit.options import ApiKey, RequestOptions, api_key_field
from rerank_kit.scorers.remote.http import BaseURL, HTTPWireScorer
from rerank_kit.scorers.remote.wire import CohereWire, WireFormat

JINA_KEY_ENV_VARS = ("JINA_API_KEY",)


class JinaOptions(RequestOptions):
    """Options of the Jina AI rerank backend."""

    positional = ("model",)

    model: str = Field(default="jina-reranker-v2-base-multilingual",
                       description="Jina reranker (jina-reranker-v2-base-multilingual, jina-reranker-v3, "
                       "jina-reranker-m0, ...).")
    api_key: ApiKey = api_key_field(JINA_KEY_ENV_VARS)
    base_url: BaseURL = Field(default="https://api.jina.ai", description="API root; requests go to {base_url}/v1/rerank.")
    max_batch_size: Optional[int] = Field(default=None, ge=1, description="Documents per request; None: 1000.")


class JinaScorer(HTTPWireScorer):
    """Scores with a Jina AI reranker; scores are Jina's ``relevance_score``.

    ``api_key`` falls back to ``JINA_API_KEY``. Requests are split at ``max_batch_size`` documents (1,000 by
    default) and merged; listwise models (jina-reranker-v3) score each request's documents together, so keep
    a call within one request where scores must be comparable. ``usage`` records Jina's ``total_tokens``.
    """

    Options = JinaOptions
    key_env_vars = JINA_KEY_ENV_VARS

    def _wire_format(self, options: Any) -> WireFormat:
        return CohereWire(provider="Jina", model=options.model)

    def _needs_key(self, options: Any) -> bool:
        return True

    @property
    def cache_key(self) -> str:
        return f"jina|{self.model}|{self.base_url}"
