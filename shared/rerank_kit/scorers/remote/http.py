"""Rerank services over httpx: one scorer per wire format, and ``HTTPRerank`` for self-hosted servers.

:class:`HTTPWireScorer` sends a :class:`~rerank_kit.scorers.remote.wire.WireFormat`'s requests over httpx
(the vendor backends on plain HTTP build on it); :class:`HTTPRerankScorer` picks the format from its
``protocol`` option: Text Embeddings Inference, Infinity, the Cohere-compatible ``/v1/rerank`` (vLLM,
llama.cpp, LocalAI, Xinference, ...) or vLLM's ``/score``.
"""

from __future__ import annotations

import dataclasses
import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from rerank_kit._optional import require
from rerank_kit.options import ApiKey, RequestOptions, api_key_field
from rerank_kit.scorers.remote.base import OnWireFormat, RemoteScorer
from rerank_kit.scorers.remote.batching import Chunk, ChunkAnswer, plan_chunks
from rerank_kit.scorers.remote.support import TransientProviderError
from rerank_kit.scorers.remote.wire import CohereWire, InfinityWire, TEIWire, VLLMScoreWire, WireFormat

WireProtocol = Literal["tei", "infinity", "cohere", "vllm-score"]
#: Bytes a request adds around its texts (keys, settings, the query's quotes) and around each text.
_ENVELOPE_BYTES = 512
_PER_TEXT_BYTES = 16


def check_base_url(value: str) -> str:
    """A service root: an http(s) URL, kept without its trailing slash."""
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL of the rerank server, got {value!r}")
    return value.rstrip("/")


#: A ``base_url`` option's type.
BaseURL = Annotated[str, AfterValidator(check_base_url)]


def json_size(text: str) -> int:
    """An upper bound on ``text``'s size in a JSON body, whichever way the client escapes non-ASCII characters."""
    return len(json.dumps(text))


def join_url(base_url: str, path: str) -> str:
    """``base_url`` + ``path``, where a base ending in ``/v1`` is not repeated by a path starting with ``/v1/``."""
    base = base_url.rstrip("/")
    if path.startswith("/v1/") and base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + path


class HTTPWireScorer(OnWireFormat, RemoteScorer):
    """Scores through a rerank service over httpx speaking one wire format; subclasses choose format and URL.

    One connection pool per scorer (one per event loop for async); ``api_key`` is sent as a bearer token.
    Requests hold at most ``max_batch_size`` documents and the format's request size in bytes.
    """

    def _configure(self, options: Any) -> None:
        self.wire: WireFormat = self._wire_format(options)
        super()._configure(options)
        if self._api_key is None and self._needs_key(options):
            raise ValueError(self._missing_key_message())

    @abstractmethod
    def _wire_format(self, options: Any) -> WireFormat:
        """The wire format the options ask for."""

    def _base_url(self) -> str:
        return str(self.options.base_url)

    def _needs_key(self, options: Any) -> bool:
        """Whether the service cannot be used without an API key."""
        return False

    @property
    def url(self) -> str:
        """Where each request is posted."""
        return join_url(self._base_url(), self.wire.path)

    @property
    def _httpx(self) -> Any:
        return require("httpx", "http")

    @property
    def client(self) -> Any:
        """The sync ``httpx.Client`` (one connection pool), built on first use."""
        if self._client is None:
            self._client = self._httpx.Client(**self._client_options())
        return self._client

    def _build_async_client(self) -> Any:
        return self._httpx.AsyncClient(**self._client_options())

    def _client_options(self) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return {"headers": headers, "timeout": self.timeout}

    def _chunks(self, query: str, texts: Sequence[str]) -> list[Chunk]:
        batch = self.max_documents
        budget = getattr(self.options, "max_request_bytes", None) or self.wire.max_request_bytes
        if budget is None:
            return plan_chunks(texts, batch)
        room = max(budget - json_size(query) - _ENVELOPE_BYTES, 1)
        return plan_chunks(texts, batch, cost=lambda text: json_size(text) + _PER_TEXT_BYTES, max_cost=room)

    def _send(self, query: str, texts: list[str]) -> ChunkAnswer:
        try:
            response = self.client.post(self.url, json=self.wire.body(query, texts))
        except Exception as exc:
            raise self._translate(exc) from None
        return self._answer(response, len(texts))

    async def _asend(self, query: str, texts: list[str]) -> ChunkAnswer:
        try:
            response = await self.async_client.post(self.url, json=self.wire.body(query, texts))
        except Exception as exc:
            raise self._translate(exc) from None
        return self._answer(response, len(texts))

    def _answer(self, response: Any, count: int) -> ChunkAnswer:
        return self.wire.answer(response.status_code, response.headers, response.content, count, self._api_key)

    def _translate(self, exc: Exception) -> Exception:
        """Timeouts and dropped connections are transient; anything else passes through."""
        httpx = self._httpx
        if isinstance(exc, httpx.TimeoutException):
            return TransientProviderError(self.provider, f"no answer within the {self.timeout}s timeout")
        if isinstance(exc, httpx.TransportError):
            return TransientProviderError(self.provider, f"connection failed ({type(exc).__name__})")
        return exc


class HTTPRerankOptions(RequestOptions):
    """Options of the self-hosted rerank server backend."""

    positional = ("base_url",)

    base_url: BaseURL = Field(description="Server root (a trailing /v1 is fine); requests go to {base_url}{path}.")
    protocol: WireProtocol = Field(
        default="tei", description="'tei' (Text Embeddings Inference), 'infinity', 'cohere' (the Cohere/Jina-compatible "
        "/v1/rerank of vLLM, llama.cpp, LocalAI, Xinference) or 'vllm-score' (vLLM's /score)."
    )
    path: Optional[str] = Field(default=None, description="Request path; None: the protocol's (/rerank, /v1/rerank, "
                                "/score).")
    model: Optional[str] = Field(default=None, description="Model name sent with each request (TEI serves one model).")
    api_key: ApiKey = api_key_field(())
    truncate: bool = Field(default=True, description="TEI: truncate over-long inputs instead of failing.")
    raw_scores: bool = Field(default=False, description="TEI, Infinity: ask for logits instead of sigmoid scores.")
    max_tokens_per_doc: Optional[int] = Field(
        default=None, ge=1, description="cohere: truncate each document to this many tokens (where the server can)."
    )
    truncate_prompt_tokens: Optional[int] = Field(
        default=None, description="cohere, vllm-score: vLLM's truncation of each pair to this many tokens (-1: the "
        "model's maximum)."
    )
    max_batch_size: Optional[int] = Field(
        default=None, ge=1, description="Texts per request; None: TEI 32, Infinity 2048, cohere and vllm-score 1000."
    )
    max_request_bytes: Optional[int] = Field(
        default=None, ge=1, description="JSON bytes per request; None: TEI 2,000,000 (its --payload-limit), "
        "others unlimited."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"path must start with '/', got {value!r}")
        return value

    @field_validator("truncate_prompt_tokens")
    @classmethod
    def _truncate_prompt_tokens(cls, value: int | None) -> int | None:
        if value is not None and value != -1 and value < 1:
            raise ValueError(f"truncate_prompt_tokens must be -1 or a positive int, got {value!r}")
        return value

    @model_validator(mode="after")
    def _options_of_the_protocol(self) -> HTTPRerankOptions:
        applies = {"raw_scores": ("tei", "infinity"), "max_tokens_per_doc": ("cohere",),
                   "truncate_prompt_tokens": ("cohere", "vllm-score")}
        for name, protocols in applies.items():
            if getattr(self, name) not in (None, False) and self.protocol not in protocols:
                raise ValueError(f"{name} applies to protocol {' or '.join(map(repr, protocols))}, "
                                 f"not {self.protocol!r}")
        return self


class HTTPRerankScorer(HTTPWireScorer):
    """Scores with a self-hosted rerank server, the way to scale out: many replicas behind one URL.

    ``protocol`` picks the wire format (see :mod:`rerank_kit.scorers.remote.wire`): ``"tei"`` (Text
    Embeddings Inference ``/rerank``), ``"infinity"`` (``/rerank``), ``"cohere"`` (the ``/v1/rerank`` that vLLM,
    llama.cpp server, LocalAI, Xinference and others serve) or ``"vllm-score"`` (vLLM's ``/score``). A
    server that does not speak the protocol gives an error saying so. ``api_key`` is sent as a bearer token.
    Requests hold at most ``max_batch_size`` documents (TEI 32, Infinity 2048, otherwise 1000: match the
    server's limit) and, for TEI, at most its 2 MB payload limit.
    """

    Options = HTTPRerankOptions

    def _wire_format(self, options: Any) -> WireFormat:
        path = {"path": options.path} if options.path else {}
        wire: WireFormat
        if options.protocol == "tei":
            wire = TEIWire(truncate=options.truncate, raw_scores=options.raw_scores, **path)
        elif options.protocol == "infinity":
            wire = InfinityWire(model=options.model, raw_scores=options.raw_scores, **path)
        elif options.protocol == "cohere":
            wire = CohereWire(model=options.model, max_tokens_per_doc=options.max_tokens_per_doc,
                              truncate_prompt_tokens=options.truncate_prompt_tokens, **path)
        else:
            wire = VLLMScoreWire(model=options.model, truncate_prompt_tokens=options.truncate_prompt_tokens, **path)
        hint = f"does the server speak protocol={options.protocol!r}, POST {wire.path}?"
        return dataclasses.replace(wire, mismatch_hint=hint)

    @property
    def name(self) -> str:
        return self.model or f"{self.provider} {self.base_url}"

    @property
    def cache_key(self) -> str:
        key = f"http-rerank|{self.protocol}|{self.base_url}|{self.model}|{self.truncate}|{self.raw_scores}"
        extra = (self.path, self.max_tokens_per_doc, self.truncate_prompt_tokens)
        return key if extra == (None, None, None) else "|".join([key, *map(str, extra)])
