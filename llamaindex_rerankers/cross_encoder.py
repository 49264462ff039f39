"""LlamaIndex postprocessor for local cross-encoders."""

from __future__ import annotations

from typing import Optional

from llama_index.core.bridge.pydantic import Field

from llamaindex_rerankers.base import BaseRerank
from rerank_kit.scorers.local.cross_encoder import DEFAULT_CROSS_ENCODER, Activation, CrossEncoderScorer, Mode
from rerank_kit.scorers.local.engine import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS_PER_BATCH


class CrossEncoderRerank(BaseRerank):
    """Reranks nodes with a sentence-transformers cross-encoder (hub name or local path).

    Example: ``index.as_query_engine(node_postprocessors=[CrossEncoderRerank(top_n=3)])``.
    """

    model: str = Field(default=DEFAULT_CROSS_ENCODER, description="Hub model name or local path.")
    device: Optional[str] = Field(default=None, description="Torch device; None picks cuda > mps > cpu.")
    max_length: Optional[int] = Field(default=None, description="Token limit per pair; None uses the model's.")
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, description="Most pairs per forward pass.")
    max_tokens_per_batch: int = Field(default=DEFAULT_MAX_TOKENS_PER_BATCH, description="Padded-token budget per pass.")
    activation: Activation = Field(default="sigmoid", description="'sigmoid' for (0, 1) scores, 'raw' for logits.")
    mode: Mode = Field(default="exact", description="'exact' (fp32) or 'fast' (bf16 where the CPU supports it).")
    local_files_only: bool = Field(default=False, description="Never contact the model hub.")
    trust_remote_code: bool = Field(default=False, description="Allow custom model code from the hub.")
    revision: Optional[str] = Field(default=None, description="Model revision (branch, tag or commit).")

    @classmethod
    def class_name(cls) -> str:
        return "RerankKitCrossEncoderRerank"

    scorer_class = CrossEncoderScorer
