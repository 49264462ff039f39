"""Voyage AI rerankers through the official ``voyageai`` SDK."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from pydantic import Field, field_validator

from rerank_kit._optional import require
from rerank_kit.errors import ProviderError, ProviderResponseError
from rerank_kit.scorers.remote.batching import Chunk, plan_chunks
from rerank_kit.scorers.remote.support import (
    TransientProviderError,
    error_for_status,
    parse_retry_after,
    redact,
)
from rerank_kit.options import ApiKey, RequestOptions, api_key_field, client_field
from rerank_kit.scorers.remote.base import OpenClient, SDKRerankScorer
from rerank_kit.scorers.remote.batching import ChunkAnswer

VOYAGE_KEY_ENV_VARS = ("VOYAGE_API_KEY",)
VOYAGE_MAX_DOCUMENTS = 1000
#: Voyage's per-request budget: query tokens x documents + document tokens.
VOYAGE_TOKEN_LIMITS = {"rerank-1": 300_000, "rerank-lite-1": 300_000}
VOYAGE_DEFAULT_TOKEN_LIMIT = 600_000
#: How an instruction is put in front of the query for instruction-following models (rerank-2.5 family).
INSTRUCTION_FORMAT = "{instruction}\n{query}"
#: Special tokens a pair may add on top of its text.
_PAIR_OVERHEAD_TOKENS = 8


def conservative_tokens(text: str) -> int:
    """An upper bound on Voyage's token count: its tokenizers never put less than one UTF-8 byte in a token."""
    return len(text.encode("utf-8"))


class VoyageOptions(RequestOptions):
    """Options of the Voyage AI rerank backend."""

    positional = ("model",)

    model: str = Field(default="rerank-2.5", description="Voyage rerank model.")
    api_key: ApiKey = api_key_field(VOYAGE_KEY_ENV_VARS)
    base_url: Optional[str] = Field(default=None, description="API root including /v1; None uses Voyage's.")
    truncation: bool = Field(default=True, description="Let Voyage truncate over-long inputs instead of failing.")
    instruction: Optional[str] = Field(default=None, description="Steering instruction put before the query.")
    max_tokens_per_request: Optional[int] = Field(
        default=None, ge=1, description="Token budget per request; None: the model's."
    )
    client: Any = client_field("voyageai.Client")
    async_client: Any = client_field("voyageai.AsyncClient")

    @field_validator("instruction")
    @classmethod
    def _instruction(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("instruction must be a non-empty string or None")
        return value


class VoyageScorer(SDKRerankScorer):
    """Scores with a Voyage reranker; scores are Voyage's ``relevance_score``.

    ``instruction`` steers instruction-following models (rerank-2.5, rerank-2.5-lite) and is prepended
    to every query (see :data:`INSTRUCTION_FORMAT`). Requests are split at 1,000 documents and at the
    model's total-token budget (600K, or ``max_tokens_per_request``), counted conservatively as UTF-8
    bytes, so a split can come earlier than strictly needed but never later. ``api_key`` falls back to
    ``VOYAGE_API_KEY``; ready ``client`` / ``async_client`` (``voyageai.Client`` / ``AsyncClient``) are
    reused as given (build them with ``max_retries=0``: retries happen here). ``usage`` records
    ``total_tokens``.
    """

    provider = "Voyage"
    max_documents = VOYAGE_MAX_DOCUMENTS
    key_env_vars = VOYAGE_KEY_ENV_VARS

    sdk_module = ("voyageai", "voyage")
    sdk_classes = ("Client", "AsyncClient")
    Options = VoyageOptions

    def _configure(self, options: Any) -> None:
        super()._configure(options)
        self.token_budget = (
            VOYAGE_TOKEN_LIMITS.get(options.model, VOYAGE_DEFAULT_TOKEN_LIMIT)
            if options.max_tokens_per_request is None else options.max_tokens_per_request
        )

    @property
    def cache_key(self) -> str:
        return f"voyage|{self.model}|{self.base_url}|{self.truncation}|{self.instruction}"

    def _sdk_options(self, key: str) -> dict[str, Any]:
        return {"api_key": key, "max_retries": 0, "timeout": self.timeout, "base_url": self.base_url}

    def _open_async_client(self) -> OpenClient:
        """The SDK client and the aiohttp session it uses in this loop (pooled; sees every status)."""
        aiohttp = require("aiohttp", "voyage")
        session = aiohttp.ClientSession(raise_for_status=self._check_status)
        return OpenClient(self._sdk_class(self.sdk_classes[1])(**self._client_options()), (session,))

    async def _check_status(self, response: Any) -> None:
        """Every 5xx is transient: voyageai reads 5xx other than 500/502-504 (520, 529) as a success."""
        if response.status >= 500:
            raise TransientProviderError(self.provider, "temporarily unavailable", status_code=response.status,
                                         retry_after=parse_retry_after(response.headers))

    async def _asend(self, query: str, texts: list[str]) -> ChunkAnswer:
        voyageai = require("voyageai", "voyage")
        open_client = self._async_clients.get()
        token = voyageai.aiosession.set(open_client.resources[0] if open_client.resources else None)
        try:
            return await super()._asend(query, texts)
        finally:
            voyageai.aiosession.reset(token)

    def full_query(self, query: str) -> str:
        """The query as sent: with the instruction in front when one is set."""
        return query if self.instruction is None else INSTRUCTION_FORMAT.format(instruction=self.instruction,
                                                                                query=query)

    def _chunks(self, query: str, texts: Sequence[str]) -> list[Chunk]:
        query_tokens = conservative_tokens(self.full_query(query)) + _PAIR_OVERHEAD_TOKENS
        return plan_chunks(texts, self.max_documents, cost=lambda text: query_tokens + conservative_tokens(text),
                           max_cost=self.token_budget)

    def _request(self, query: str, texts: list[str]) -> dict[str, Any]:
        return {"query": self.full_query(query), "documents": texts, "model": self.model, "top_k": len(texts),
                "truncation": self.truncation}

    def _usage(self, response: Any) -> dict[str, float]:
        tokens = getattr(response, "total_tokens", None)
        return {"total_tokens": tokens} if isinstance(tokens, (int, float)) else {}

    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the SDK raised; unknown exceptions pass through."""
        if isinstance(exc, ProviderError):
            return exc
        errors = require("voyageai.error", "voyage")
        if isinstance(exc, IndexError):
            return ProviderResponseError(self.provider, "a result index is out of range for the request")
        if isinstance(exc, (KeyError, AttributeError, TypeError)):
            return ProviderResponseError(self.provider, f"malformed rerank response ({type(exc).__name__})")
        if isinstance(exc, errors.Timeout):
            return TransientProviderError(self.provider, f"no answer within the {self.timeout}s timeout")
        if isinstance(exc, errors.APIConnectionError):
            if exc.__cause__ is None and exc.__context__ is None:  # the SDK got an answer it could not read
                return ProviderResponseError(self.provider, "the response body is not a rerank result")
            return TransientProviderError(self.provider, "connection failed")
        if isinstance(exc, errors.VoyageError):
            status = exc.http_status or 0
            if 200 <= status < 300:
                return ProviderResponseError(self.provider, "the response body is not valid rerank JSON",
                                             status_code=status)
            detail = redact(_message(exc), self._api_key)
            return error_for_status(self.provider, status, detail, retry_after=parse_retry_after(exc.headers),
                                    auth_hint="check VOYAGE_API_KEY or api_key")
        return exc


def _message(exc: Any) -> str:
    body = exc.json_body
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"])
    return str(exc.user_message or "")
