"""NVIDIA NIM rerankers (NeMo Retriever ``/v1/ranking``), hosted or self-hosted, over httpx."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from rerank_kit.options import ApiKey, RequestOptions, api_key_field
from rerank_kit.scorers.remote.http import BaseURL, HTTPWireScorer
from rerank_kit.scorers.remote.wire import NVIDIAWire, WireFormat

NVIDIA_KEY_ENV_VARS = ("NVIDIA_API_KEY",)
#: NVIDIA's hosted API: one endpoint per model, the model id with dots as underscores.
NVIDIA_HOSTED_URL = "https://ai.api.nvidia.com"
NVIDIA_HOSTED_PATH = "/v1/retrieval/{model}/reranking"


class NVIDIAOptions(RequestOptions):
    """Options of the NVIDIA NIM rerank backend."""

    positional = ("model",)

    model: str = Field(default="nvidia/llama-3.2-nv-rerankqa-1b-v2", description="NIM reranking model.")
    api_key: ApiKey = api_key_field(NVIDIA_KEY_ENV_VARS)
    base_url: Optional[BaseURL] = Field(default=None, description="Self-hosted NIM root (requests go to "
                                    "{base_url}/v1/ranking); None: NVIDIA's hosted API.")
    truncate: Literal["END", "NONE"] = Field(default="END", description="'END' truncates pairs over the model's "
                                             "token limit; 'NONE' rejects them.")
    max_batch_size: Optional[int] = Field(default=None, ge=1, description="Passages per request; None: 32.")


class NVIDIAScorer(HTTPWireScorer):
    """Scores with an NVIDIA NeMo Retriever reranking NIM; scores are the NIM's ``logit``.

    ``base_url`` is a self-hosted NIM (``POST {base_url}/v1/ranking``, a key only if it asks for one);
    without it requests go to NVIDIA's hosted endpoint of ``model`` with ``NVIDIA_API_KEY``. Passages go
    32 per request by default (raise ``max_batch_size`` to your NIM's batch size); pairs over the model's
    token limit are truncated (``truncate="END"``). ``usage`` records the NIM's token counts when it sends them.
    """

    Options = NVIDIAOptions
    key_env_vars = NVIDIA_KEY_ENV_VARS

    def _wire_format(self, options: Any) -> WireFormat:
        if options.base_url is not None:
            return NVIDIAWire(model=options.model, truncate=options.truncate)
        hosted = NVIDIA_HOSTED_PATH.format(model=options.model.replace(".", "_"))
        return NVIDIAWire(model=options.model, truncate=options.truncate, path=hosted)

    def _base_url(self) -> str:
        return self.base_url or NVIDIA_HOSTED_URL

    def _needs_key(self, options: Any) -> bool:
        return options.base_url is None

    @property
    def cache_key(self) -> str:
        return f"nvidia|{self.model}|{self.base_url}|{self.truncate}"
