"""Self-hosted ``/rerank`` servers: Hugging Face Text Embeddings Inference (TEI) and Infinity, over httpx."""

from __future__ import annotations

import json
from typing import Any, Literal, Optional

from pydantic import Field, field_validator

from rerank_kit._optional import require
from rerank_kit.errors import ProviderResponseError
from rerank_kit.scorers.remote.batching import ChunkAnswer
from rerank_kit.scorers.remote.support import (
    TransientProviderError,
    error_for_status,
    parse_retry_after,
    redact,
)
from rerank_kit.options import ApiKey, RequestOptions, api_key_field
from rerank_kit.scorers.remote.base import RemoteScorer

WireProtocol = Literal["tei", "infinity"]
#: Default documents per request: TEI's ``--max-client-batch-size`` default, and Infinity's request limit.
DEFAULT_BATCH_SIZES: dict[str, int] = {"tei": 32, "infinity": 2048}
_PROVIDER_NAMES = {"tei": "TEI", "infinity": "Infinity"}
_NOT_JSON = object()


class HTTPRerankOptions(RequestOptions):
    """Options of the self-hosted ``/rerank`` server backend."""

    positional = ("base_url",)

    base_url: str = Field(description="Server root; requests go to {base_url}/rerank.")
    protocol: WireProtocol = Field(default="tei", description="'tei' (Text Embeddings Inference) or 'infinity'.")
    model: Optional[str] = Field(default=None, description="Model name (Infinity serving several models).")
    api_key: ApiKey = api_key_field(())
    truncate: bool = Field(default=True, description="TEI: truncate over-long inputs instead of failing.")
    raw_scores: bool = Field(default=False, description="Ask for logits instead of sigmoid scores.")
    max_batch_size: Optional[int] = Field(
        default=None, ge=1, description="Texts per request; None: TEI 32, Infinity 2048."
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL of the rerank server, got {value!r}")
        return value.rstrip("/")


class HTTPRerankScorer(RemoteScorer):
    """Scores with a ``/rerank`` inference server, the way to scale out: many replicas behind one URL.

    ``protocol="tei"`` speaks Text Embeddings Inference (``{query, texts, truncate, raw_scores}`` in, a list
    of ``{index, score}`` out); ``protocol="infinity"`` speaks Infinity's Cohere-style API
    (``{query, documents, top_n, model}`` in, ``{results: [{index, relevance_score}], usage}`` out).
    ``base_url`` is the server root (``POST {base_url}/rerank``); ``api_key`` is sent as a bearer token.
    Requests hold at most ``max_batch_size`` documents (TEI 32, Infinity 2048 by default; match the
    server's limit). One httpx connection pool per scorer (one per event loop for async).
    """

    Options = HTTPRerankOptions

    def _configure(self, options: Any) -> None:
        super()._configure(options)
        self.provider = _PROVIDER_NAMES[options.protocol]
        self.max_documents = (
            DEFAULT_BATCH_SIZES[options.protocol] if options.max_batch_size is None else options.max_batch_size
        )

    def _build_async_client(self) -> Any:
        return self._httpx.AsyncClient(**self._client_options())

    @property
    def name(self) -> str:
        return self.model or f"{self.provider} {self.base_url}"

    @property
    def cache_key(self) -> str:
        return f"http-rerank|{self.protocol}|{self.base_url}|{self.model}|{self.truncate}|{self.raw_scores}"

    @property
    def _httpx(self) -> Any:
        return require("httpx", "http")

    @property
    def client(self) -> Any:
        """The sync ``httpx.Client`` (one connection pool), built on first use."""
        if self._client is None:
            self._client = self._httpx.Client(**self._client_options())
        return self._client

    def _client_options(self) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return {"base_url": self.base_url, "headers": headers, "timeout": self.timeout}

    def _body(self, query: str, texts: list[str]) -> dict[str, Any]:
        if self.protocol == "tei":
            return {"query": query, "texts": texts, "truncate": self.truncate, "raw_scores": self.raw_scores}
        body: dict[str, Any] = {"query": query, "documents": texts, "top_n": len(texts), "return_documents": False}
        if self.model is not None:
            body["model"] = self.model
        if self.raw_scores:
            body["raw_scores"] = True
        return body

    def _send(self, query: str, texts: list[str]) -> ChunkAnswer:
        httpx = self._httpx
        try:
            response = self.client.post("/rerank", json=self._body(query, texts))
        except httpx.TimeoutException:
            raise TransientProviderError(self.provider, f"no answer within the {self.timeout}s timeout") from None
        except httpx.TransportError as exc:
            raise TransientProviderError(self.provider, f"connection failed ({type(exc).__name__})") from None
        return self._answer(response.status_code, response.headers, response.content)

    async def _asend(self, query: str, texts: list[str]) -> ChunkAnswer:
        httpx = self._httpx
        try:
            response = await self.async_client.post("/rerank", json=self._body(query, texts))
        except httpx.TimeoutException:
            raise TransientProviderError(self.provider, f"no answer within the {self.timeout}s timeout") from None
        except httpx.TransportError as exc:
            raise TransientProviderError(self.provider, f"connection failed ({type(exc).__name__})") from None
        return self._answer(response.status_code, response.headers, response.content)

    def _answer(self, status: int, headers: Any, content: bytes) -> ChunkAnswer:
        try:
            body = json.loads(content)
        except ValueError:
            body = _NOT_JSON
        if not 200 <= status < 300:
            detail = redact(_error_message(body, content), self._api_key)
            raise error_for_status(self.provider, status, detail, retry_after=parse_retry_after(headers))
        if body is _NOT_JSON:
            raise ProviderResponseError(self.provider, "the response body is not valid JSON", status_code=status)
        try:
            if self.protocol == "tei":
                return ChunkAnswer([(item["index"], item["score"]) for item in _list(body)])
            results = _list(body["results"])
            return ChunkAnswer([(item["index"], item["relevance_score"]) for item in results], _usage(body))
        except (KeyError, TypeError) as exc:
            raise ProviderResponseError(
                self.provider, f"malformed rerank response ({type(exc).__name__}: {exc})", status_code=status
            ) from None


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list of results, got {type(value).__name__}")
    return value


def _usage(body: dict[str, Any]) -> dict[str, float]:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return {}
    return {key: value for key, value in usage.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def _error_message(body: Any, content: bytes) -> str:
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])
    return content.decode("utf-8", errors="replace").strip()
