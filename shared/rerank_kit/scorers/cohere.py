"""Cohere Rerank (v2 API) through the official ``cohere`` SDK."""

from __future__ import annotations

from typing import Any

from rerank_kit._optional import require
from rerank_kit.errors import ProviderError, ProviderResponseError
from rerank_kit.scorers.api_batching import ChunkAnswer
from rerank_kit.scorers.api_support import (
    PerLoop,
    TransientProviderError,
    error_for_status,
    parse_retry_after,
    redact,
    resolve_key,
)
from rerank_kit.scorers.remote import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    RemoteScorer,
)
from rerank_kit.validation import check_positive_int

DEFAULT_COHERE_MODEL = "rerank-v3.5"
COHERE_KEY_ENV_VARS = ("CO_API_KEY", "COHERE_API_KEY")
#: Cohere asks for at most 1,000 documents per request.
COHERE_MAX_DOCUMENTS = 1000
#: Every request disables the SDK's own retries; :class:`~rerank_kit.scorers.api_support.RetryPolicy` retries.
_NO_SDK_RETRIES = {"max_retries": 0}
_MISSING_KEY = "Cohere API key missing: pass api_key=... or set CO_API_KEY (or pass a ready client)"


class CohereScorer(RemoteScorer):
    """Scores with Cohere Rerank; scores are Cohere's ``relevance_score`` in [0, 1].

    ``api_key`` falls back to ``CO_API_KEY`` / ``COHERE_API_KEY``. Pass a ready ``client``
    (``cohere.ClientV2``) and/or ``async_client`` (``cohere.AsyncClientV2``) to reuse your own; otherwise
    one of each is built and reused. Retries (429 honouring Retry-After, 5xx, timeouts) are done here,
    never by the SDK. ``usage`` records Cohere's billed ``search_units``.
    """

    provider = "Cohere"
    max_documents = COHERE_MAX_DOCUMENTS

    def __init__(
        self,
        model: str = DEFAULT_COHERE_MODEL,
        *,
        api_key: Any = None,
        base_url: str | None = None,
        max_tokens_per_doc: int | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        client: Any = None,
        async_client: Any = None,
    ) -> None:
        key = resolve_key(api_key, COHERE_KEY_ENV_VARS)
        if key is None and client is None and async_client is None:
            raise ValueError(_MISSING_KEY)
        super().__init__(api_key=key, timeout=timeout, max_retries=max_retries, backoff=backoff,
                         max_concurrency=max_concurrency)
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be a Cohere rerank model name such as 'rerank-v3.5'")
        self.model = model
        self.base_url = base_url
        self.max_tokens_per_doc = (
            None if max_tokens_per_doc is None else check_positive_int("max_tokens_per_doc", max_tokens_per_doc)
        )
        self._client = client
        self._given_async_client = async_client
        self._async_clients: PerLoop[Any] = PerLoop(self._new_async_client)

    @property
    def name(self) -> str:
        return self.model

    @property
    def cache_key(self) -> str:
        return f"cohere|{self.model}|{self.base_url}|{self.max_tokens_per_doc}"

    @property
    def client(self) -> Any:
        """The sync ``cohere.ClientV2``, built on first use."""
        if self._client is None:
            cohere = require("cohere", "cohere")
            self._client = cohere.ClientV2(**self._client_options())
        return self._client

    def _new_async_client(self) -> Any:
        if self._given_async_client is not None:
            return self._given_async_client
        cohere = require("cohere", "cohere")
        return cohere.AsyncClientV2(**self._client_options())

    def _client_options(self) -> dict[str, Any]:
        if self._api_key is None:
            raise ValueError(_MISSING_KEY)
        options: dict[str, Any] = {"api_key": self._api_key.get_secret_value(), "timeout": self.timeout,
                                   "max_retries": 0}
        if self.base_url is not None:
            options["base_url"] = self.base_url
        return options

    def _request(self, query: str, texts: list[str]) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.model, "query": query, "documents": texts, "top_n": len(texts),
                                   "request_options": _NO_SDK_RETRIES}
        if self.max_tokens_per_doc is not None:
            request["max_tokens_per_doc"] = self.max_tokens_per_doc
        return request

    def _send(self, query: str, texts: list[str]) -> ChunkAnswer:
        try:
            response = self.client.rerank(**self._request(query, texts))
        except Exception as exc:
            raise self._translate(exc) from None
        return self._answer(response)

    async def _asend(self, query: str, texts: list[str]) -> ChunkAnswer:
        try:
            response = await self._async_clients.get().rerank(**self._request(query, texts))
        except Exception as exc:
            raise self._translate(exc) from None
        return self._answer(response)

    def _answer(self, response: Any) -> ChunkAnswer:
        try:
            pairs = [(result.index, result.relevance_score) for result in response.results]
        except (AttributeError, TypeError) as exc:
            raise ProviderResponseError(self.provider, f"malformed rerank response ({type(exc).__name__})") from None
        meta = getattr(response, "meta", None)
        units = getattr(getattr(meta, "billed_units", None), "search_units", None)
        return ChunkAnswer(pairs, {"search_units": units} if isinstance(units, (int, float)) else {})

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
