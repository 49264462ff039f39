"""LangChain compressors for rerank APIs (Cohere, Voyage, TEI/Infinity servers) and a fallback chain."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr

from langchain_rerankers.base import BaseRerank
from rerank_kit import Scorer
from rerank_kit.scorers.remote.cohere import DEFAULT_COHERE_MODEL, CohereScorer
from rerank_kit.scorers.wrappers.fallback import FallbackScorer
from rerank_kit.scorers.remote.http import HTTPRerankScorer, WireProtocol
from rerank_kit.scorers.remote.base import DEFAULT_BACKOFF, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from rerank_kit.scorers.remote.voyage import DEFAULT_VOYAGE_MODEL, VoyageScorer


class CohereRerank(BaseRerank):
    """Reranks documents with Cohere Rerank (v2 API): ``CohereRerank(model="rerank-v3.5", top_n=3)``."""

    model: str = Field(default=DEFAULT_COHERE_MODEL, description="Cohere rerank model.")
    api_key: SecretStr | None = Field(default=None, exclude=True, description="None: CO_API_KEY or COHERE_API_KEY.")
    base_url: str | None = Field(default=None, description="API root; None uses Cohere's.")
    max_tokens_per_doc: int | None = Field(default=None, description="Truncate each document to this many tokens.")
    timeout: float | None = Field(default=DEFAULT_TIMEOUT, description="Seconds per request.")
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, description="Retries on 429/5xx/timeouts.")
    backoff: float = Field(default=DEFAULT_BACKOFF, description="First retry wait in seconds (doubles, capped).")
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, description="Most async requests in flight.")
    client: Any = Field(default=None, exclude=True, description="A ready cohere.ClientV2 to reuse.")
    async_client: Any = Field(default=None, exclude=True, description="A ready cohere.AsyncClientV2 to reuse.")

    scorer_class = CohereScorer


class VoyageRerank(BaseRerank):
    """Reranks documents with a Voyage reranker: ``VoyageRerank(model="rerank-2.5", instruction=...)``."""

    model: str = Field(default=DEFAULT_VOYAGE_MODEL, description="Voyage rerank model.")
    api_key: SecretStr | None = Field(default=None, exclude=True, description="API key; None reads VOYAGE_API_KEY.")
    base_url: str | None = Field(default=None, description="API root including /v1; None uses Voyage's.")
    truncation: bool = Field(default=True, description="Let Voyage truncate over-long inputs instead of failing.")
    instruction: str | None = Field(default=None, description="Steering instruction put before the query.")
    max_tokens_per_request: int | None = Field(default=None, description="Token budget per request; None: model's.")
    timeout: float | None = Field(default=DEFAULT_TIMEOUT, description="Seconds per request.")
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, description="Retries on 429/5xx/timeouts.")
    backoff: float = Field(default=DEFAULT_BACKOFF, description="First retry wait in seconds (doubles, capped).")
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, description="Most async requests in flight.")
    client: Any = Field(default=None, exclude=True, description="A ready voyageai.Client to reuse.")
    async_client: Any = Field(default=None, exclude=True, description="A ready voyageai.AsyncClient to reuse.")

    scorer_class = VoyageScorer


class HTTPRerank(BaseRerank):
    """Reranks documents with a TEI or Infinity ``/rerank`` server: ``HTTPRerank(base_url="http://tei:8080")``."""

    base_url: str = Field(description="Server root; requests go to {base_url}/rerank.")
    protocol: WireProtocol = Field(default="tei", description="'tei' (Text Embeddings Inference) or 'infinity'.")
    model: str | None = Field(default=None, description="Model name (Infinity serving several models).")
    api_key: SecretStr | None = Field(default=None, exclude=True, description="Bearer token, if any.")
    truncate: bool = Field(default=True, description="TEI: truncate over-long inputs instead of failing.")
    raw_scores: bool = Field(default=False, description="Ask for logits instead of sigmoid scores.")
    max_batch_size: int | None = Field(default=None, description="Texts per request; None: TEI 32, Infinity 2048.")
    timeout: float | None = Field(default=DEFAULT_TIMEOUT, description="Seconds per request.")
    max_retries: int = Field(default=DEFAULT_MAX_RETRIES, description="Retries on 429/5xx/timeouts.")
    backoff: float = Field(default=DEFAULT_BACKOFF, description="First retry wait in seconds (doubles, capped).")
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, description="Most async requests in flight.")

    scorer_class = HTTPRerankScorer


class FallbackRerank(BaseRerank):
    """Tries rerankers in order until one answers: ``FallbackRerank(scorers=[CohereRerank(), CrossEncoderRerank()])``.

    ``scorers`` holds rerank_kit scorers or compressors of this package; their own top_n/threshold are
    ignored (this compressor's apply). ``last_scorer_name`` says which one answered the last call.
    """

    scorers: list[Any] = Field(description="Scorers or rerank compressors, tried in order.")

    def _build_scorer(self) -> Scorer:
        return FallbackScorer([_as_scorer(item, position) for position, item in enumerate(self.scorers)])

    @property
    def last_scorer_name(self) -> str | None:
        """Name of the scorer that answered the most recent call."""
        return self._scorer.last_scorer_name


def _as_scorer(item: Any, position: int) -> Scorer:
    if isinstance(item, Scorer):
        return item
    if isinstance(item, BaseRerank):
        return item._scorer
    raise TypeError(
        f"scorers[{position}] must be a rerank_kit.Scorer or a rerank compressor, got {type(item).__name__}"
    )
