"""Cohere Rerank (v2 API) through the official ``cohere`` SDK."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from rerank_kit._optional import require
from rerank_kit.errors import ProviderError, ProviderResponseError
from rerank_kit.scorers.remote.support import (
    TransientProviderError,
    error_for_status,
    parse_retry_after,
    redact,
)
from rerank_kit.options import ApiKey, RequestOptions, api_key_field, client_field
from rerank_kit.scorers.remote.base import OpenClient, SDKRerankScorer
from rerank_kit.scorers.remote.batching import ChunkAnswer

COHERE_KEY_ENV_VARS = ("CO_API_KEY", "COHERE_API_KEY")
#: Cohere asks for at most 1,000 documents per request.
COHERE_MAX_DOCUMENTS = 1000
#: Every request disables the SDK's own retries; :class:`~rerank_kit.scorers.remote.support.RetryPolicy` retries.
_NO_SDK_RETRIES = {"max_retries": 0}


class CohereOptions(RequestOptions):
    """Options of the Cohere Rerank backend."""

    positional = ("model",)

    model: str = Field(default="rerank-v3.5", description="Cohere rerank model.")
    api_key: ApiKey = api_key_field(COHERE_KEY_ENV_VARS, alias="cohere_api_key")
    base_url: Optional[str] = Field(default=None, description="API root; None uses Cohere's.")
    max_tokens_per_doc: Optional[int] = Field(
        default=None, ge=1, description="Truncate each document to this many tokens."
    )
    client: Any = client_field("cohere.ClientV2")
    async_client: Any = client_field("cohere.AsyncClientV2")


class CohereScorer(SDKRerankScorer):
    """Scores with Cohere Rerank; scores are Cohere's ``relevance_score`` in [0, 1].

    ``api_key`` falls back to ``CO_API_KEY`` / ``COHERE_API_KEY``. Pass a ready ``client``
    (``cohere.ClientV2``) and/or ``async_client`` (``cohere.AsyncClientV2``) to reuse your own; otherwise
    one of each is built and reused. Retries (429 honouring Retry-After, 5xx, timeouts) are done here,
    never by the SDK. ``usage`` records Cohere's billed ``search_units``.
    """

    provider = "Cohere"
    max_documents = COHERE_MAX_DOCUMENTS
    key_env_vars = COHERE_KEY_ENV_VARS

    sdk_module = ("cohere", "cohere")
    sdk_classes = ("ClientV2", "AsyncClientV2")
    Options = CohereOptions

    @property
    def cache_key(self) -> str:
        return f"cohere|{self.model}|{self.base_url}|{self.max_tokens_per_doc}"

    def _open_async_client(self) -> OpenClient:
        """The SDK client on an httpx client of ours, so closing it releases its connections."""
        http = require("httpx", "cohere").AsyncClient(timeout=self.timeout)
        return OpenClient(self._sdk_class(self.sdk_classes[1])(**self._client_options(), httpx_client=http), (http,))

    def _request(self, query: str, texts: list[str]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "query": query, "documents": texts, "top_n": len(texts),
                                   "request_options": _NO_SDK_RETRIES}
        if self.max_tokens_per_doc is not None:
            request["max_tokens_per_doc"] = self.max_tokens_per_doc
        return request

    def _rerank_method(self, client: Any) -> Any:
        """``with_raw_response.rerank`` where the SDK has it, so answers are checked as sent, not as coerced."""
        raw = getattr(client, "with_raw_response", None)
        return raw.rerank if raw is not None else client.rerank

    def _answer(self, response: Any) -> ChunkAnswer:
        raw = getattr(response, "response", None)
        if raw is None:
            return super()._answer(response)
        try:
            body = raw.json()
        except ValueError:
            raise ProviderResponseError(self.provider, "the response body is not valid JSON") from None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list) or not all(isinstance(item, dict) for item in results):
            excerpt = redact(raw.text[:200], self._api_key)
            raise ProviderResponseError(self.provider, f"malformed rerank response: {excerpt!r}")
        pairs = [(item.get("index"), item.get("relevance_score")) for item in results]
        meta = body.get("meta")
        return ChunkAnswer(pairs, self._usage(meta if isinstance(meta, dict) else {}))

    def _usage(self, response: Any) -> dict[str, float]:
        if isinstance(response, dict):
            billed = response.get("billed_units")
            units = billed.get("search_units") if isinstance(billed, dict) else None
        else:
            units = getattr(getattr(getattr(response, "meta", None), "billed_units", None), "search_units", None)
        is_number = isinstance(units, (int, float)) and not isinstance(units, bool)
        return {"search_units": units} if is_number else {}

    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the SDK or httpx raised; unknown exceptions pass through."""
        if isinstance(exc, ProviderError):
            return exc
        httpx = require("httpx", "cohere")
        api_error = require("cohere.core.api_error", "cohere").ApiError
        if isinstance(exc, api_error):
            status = exc.status_code or 0
            if 200 <= status < 300:
                return ProviderResponseError(self.provider, "the response body is not valid rerank JSON",
                                             status_code=status)
            detail = redact(_message(exc.body), self._api_key)
            return error_for_status(self.provider, status, detail, retry_after=parse_retry_after(exc.headers))
        if isinstance(exc, httpx.TimeoutException):
            return TransientProviderError(self.provider, f"no answer within the {self.timeout}s timeout")
        if isinstance(exc, httpx.TransportError):
            return TransientProviderError(self.provider, f"connection failed ({type(exc).__name__})")
        return exc


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)
    return "" if body is None else str(body)
