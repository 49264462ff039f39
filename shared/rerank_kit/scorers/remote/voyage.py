"""Voyage AI rerankers through the official ``voyageai`` SDK."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rerank_kit._optional import require
from rerank_kit.errors import ProviderError, ProviderResponseError
from rerank_kit.scorers.remote.batching import Chunk, plan_chunks
from rerank_kit.scorers.remote.support import (
    TransientProviderError,
    error_for_status,
    parse_retry_after,
    redact,
)
from rerank_kit.scorers.remote.base import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    SDKRerankScorer,
)
from rerank_kit.validation import check_positive_int

DEFAULT_VOYAGE_MODEL = "rerank-2.5"
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
    model_example = DEFAULT_VOYAGE_MODEL

    def __init__(
        self,
        model: str = DEFAULT_VOYAGE_MODEL,
        *,
        api_key: Any = None,
        base_url: str | None = None,
        truncation: bool = True,
        instruction: str | None = None,
        max_tokens_per_request: int | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        client: Any = None,
        async_client: Any = None,
    ) -> None:
        super().__init__(model, api_key=api_key, base_url=base_url, client=client, async_client=async_client,
                         timeout=timeout, max_retries=max_retries, backoff=backoff, max_concurrency=max_concurrency)
        if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
            raise ValueError("instruction must be a non-empty string or None")
        self.truncation = bool(truncation)
        self.instruction = instruction
        self.max_tokens_per_request = (
            VOYAGE_TOKEN_LIMITS.get(model, VOYAGE_DEFAULT_TOKEN_LIMIT)
            if max_tokens_per_request is None
            else check_positive_int("max_tokens_per_request", max_tokens_per_request)
        )

    @property
    def cache_key(self) -> str:
        return f"voyage|{self.model}|{self.base_url}|{self.truncation}|{self.instruction}"

    def _build_client(self, options: dict[str, Any]) -> Any:
        return require("voyageai", "voyage").Client(**options)

    def _build_async_client(self, options: dict[str, Any]) -> Any:
        return require("voyageai", "voyage").AsyncClient(**options)

    def _sdk_options(self, key: str) -> dict[str, Any]:
        return {"api_key": key, "max_retries": 0, "timeout": self.timeout, "base_url": self.base_url}

    def full_query(self, query: str) -> str:
        """The query as sent: with the instruction in front when one is set."""
        return query if self.instruction is None else INSTRUCTION_FORMAT.format(instruction=self.instruction,
                                                                                query=query)

    def _chunks(self, query: str, texts: Sequence[str]) -> list[Chunk]:
        query_tokens = conservative_tokens(self.full_query(query)) + _PAIR_OVERHEAD_TOKENS
        return plan_chunks(texts, self.max_documents, cost=lambda text: query_tokens + conservative_tokens(text),
                           max_cost=self.max_tokens_per_request)

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
