"""Pinecone Inference rerankers through the official ``pinecone`` SDK (``inference.rerank``)."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from rerank_kit._optional import require
from rerank_kit.errors import ProviderError, ProviderRequestError, ProviderResponseError
from rerank_kit.options import ApiKey, RequestOptions, api_key_field, client_field
from rerank_kit.scorers.remote.base import OnWireFormat, SDKRerankScorer
from rerank_kit.scorers.remote.batching import ChunkAnswer
from rerank_kit.scorers.remote.support import TransientProviderError
from rerank_kit.scorers.remote.wire import PineconeWire

PINECONE_KEY_ENV_VARS = ("PINECONE_API_KEY",)
#: Documents per request of each hosted model (Pinecone's model guide); other models get 100.
PINECONE_MAX_DOCUMENTS = {"bge-reranker-v2-m3": 100, "pinecone-rerank-v0": 100, "cohere-rerank-3.5": 200}


class PineconeOptions(RequestOptions):
    """Options of the Pinecone rerank backend."""

    positional = ("model",)

    model: str = Field(default="bge-reranker-v2-m3", description="Pinecone-hosted reranker (bge-reranker-v2-m3, "
                       "cohere-rerank-3.5, pinecone-rerank-v0).")
    api_key: ApiKey = api_key_field(PINECONE_KEY_ENV_VARS)
    base_url: Optional[str] = Field(default=None, description="API host; None uses Pinecone's.")
    rank_field: str = Field(default="text", description="Document field each text is sent in and ranked by "
                            "(rank_fields=[rank_field]).")
    parameters: Optional[dict[str, Any]] = Field(default=None, description="Model parameters, e.g. "
                                                 "{'truncate': 'END'}.")
    max_batch_size: Optional[int] = Field(default=None, ge=1, description="Documents per request; None: the "
                                          "model's limit (100, cohere-rerank-3.5 200).")
    client: Any = client_field("pinecone.Pinecone")
    async_client: Any = client_field("pinecone.AsyncPinecone")


class PineconeScorer(OnWireFormat, SDKRerankScorer):
    """Scores with a reranker hosted by Pinecone Inference; scores are Pinecone's ``score``.

    ``api_key`` falls back to ``PINECONE_API_KEY``. Requests are split at the model's documented documents
    per request (bge-reranker-v2-m3 and pinecone-rerank-v0 100, cohere-rerank-3.5 200); Pinecone truncates
    pairs over the model's token limit. The SDK's own retries are off (retries happen here). ``usage``
    records Pinecone's ``rerank_units``.
    """

    key_env_vars = PINECONE_KEY_ENV_VARS
    sdk_module = ("pinecone", "pinecone")
    sdk_classes = ("Pinecone", "AsyncPinecone")
    Options = PineconeOptions

    def _configure(self, options: Any) -> None:
        self.wire = PineconeWire(model=options.model, rank_field=options.rank_field, parameters=options.parameters)
        super()._configure(options)

    @property
    def max_documents(self) -> int:
        return self.max_batch_size or PINECONE_MAX_DOCUMENTS.get(self.model, self.wire.max_documents)

    @property
    def cache_key(self) -> str:
        return f"pinecone|{self.model}|{self.base_url}|{self.rank_field}|{sorted((self.parameters or {}).items())}"

    def _sdk_options(self, key: str) -> dict[str, Any]:
        retries = require("pinecone", "pinecone").RetryConfig(max_retries=0)
        return {"api_key": key, "host": self.base_url, "timeout": self.timeout, "retry_config": retries}

    def _rerank_method(self, client: Any) -> Any:
        return client.inference.rerank

    def _answer(self, response: Any) -> ChunkAnswer:
        to_dict = getattr(response, "to_dict", None)
        return self.wire.parse(to_dict() if to_dict is not None else response)

    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the SDK raised; unknown exceptions pass through."""
        if isinstance(exc, ProviderError):
            return exc
        errors = require("pinecone.errors", "pinecone")
        if isinstance(exc, errors.ApiError):
            body = exc.body if isinstance(exc.body, dict) else None
            message = str(getattr(exc, "message", "")).encode()
            return self.wire.error(exc.status_code or 0, body, message, exc.headers, self._api_key)
        if isinstance(exc, errors.ResponseParsingError):
            return ProviderResponseError(self.provider, "the response body is not a rerank result")
        if isinstance(exc, errors.PineconeTimeoutError):
            return TransientProviderError(self.provider, f"no answer within the {self.timeout}s timeout")
        if isinstance(exc, errors.PineconeConnectionError):
            return TransientProviderError(self.provider, "connection failed")
        if isinstance(exc, (errors.PineconeValueError, errors.PineconeTypeError)):
            return ProviderRequestError(self.provider, f"request rejected by the SDK: {exc}")
        return exc
