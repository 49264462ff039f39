"""Mixedbread rerankers through the official ``mixedbread`` SDK, its answers read as sent."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from rerank_kit._optional import require
from rerank_kit.errors import ProviderError
from rerank_kit.options import ApiKey, RequestOptions, api_key_field, client_field
from rerank_kit.scorers.remote.base import OnWireFormat, SDKRerankScorer
from rerank_kit.scorers.remote.batching import ChunkAnswer
from rerank_kit.scorers.remote.support import TransientProviderError
from rerank_kit.scorers.remote.wire import MixedbreadWire

MIXEDBREAD_KEY_ENV_VARS = ("MXBAI_API_KEY",)


class MixedbreadOptions(RequestOptions):
    """Options of the Mixedbread rerank backend."""

    positional = ("model",)

    model: str = Field(default="mixedbread-ai/mxbai-rerank-large-v2", description="Mixedbread rerank model.")
    api_key: ApiKey = api_key_field(MIXEDBREAD_KEY_ENV_VARS)
    base_url: Optional[str] = Field(default=None, description="API root; None uses Mixedbread's.")
    max_batch_size: Optional[int] = Field(default=None, ge=1, description="Documents per request; None: 1000.")
    client: Any = client_field("mixedbread.Mixedbread")
    async_client: Any = client_field("mixedbread.AsyncMixedbread")


class MixedbreadScorer(OnWireFormat, SDKRerankScorer):
    """Scores with a Mixedbread reranker; scores are Mixedbread's ``score``.

    ``api_key`` falls back to ``MXBAI_API_KEY``. Requests hold at most 1,000 documents (the API's limit);
    answers are read from the raw response (``with_raw_response``), so they are checked as sent. Ready
    ``client`` / ``async_client`` are reused as given (build them with ``max_retries=0``: retries happen
    here). ``usage`` records Mixedbread's ``prompt_tokens`` and ``total_tokens``.
    """

    key_env_vars = MIXEDBREAD_KEY_ENV_VARS
    sdk_module = ("mixedbread", "mixedbread")
    sdk_classes = ("Mixedbread", "AsyncMixedbread")
    Options = MixedbreadOptions

    def _configure(self, options: Any) -> None:
        self.wire = MixedbreadWire(model=options.model)
        super()._configure(options)

    @property
    def cache_key(self) -> str:
        return f"mixedbread|{self.model}|{self.base_url}"

    def _rerank_method(self, client: Any) -> Any:
        return client.with_raw_response.rerank

    def _answer(self, response: Any) -> ChunkAnswer:
        raw = response.http_response
        return self.wire.answer(raw.status_code, raw.headers, raw.content, secret=self._api_key)

    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the SDK raised; unknown exceptions pass through."""
        if isinstance(exc, ProviderError):
            return exc
        errors = require("mixedbread", "mixedbread")
        if isinstance(exc, errors.APIStatusError):
            raw = exc.response
            return self.wire.error(raw.status_code, exc.body, raw.content, raw.headers, self._api_key)
        if isinstance(exc, errors.APITimeoutError):
            return TransientProviderError(self.provider, f"no answer within the {self.timeout}s timeout")
        if isinstance(exc, errors.APIConnectionError):
            return TransientProviderError(self.provider, "connection failed")
        return exc
