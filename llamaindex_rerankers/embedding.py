"""LlamaIndex postprocessor for bi-encoder (embedding cosine) reranking: the cheap tier when no cross-encoder fits."""

from __future__ import annotations

from typing import Optional

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field

from llamaindex_rerankers.base import BaseRerank
from rerank_kit import Scorer
from rerank_kit.scorers.local.embedding import DEFAULT_EMBEDDING_MODEL, EmbeddingScorer


class EmbeddingRerank(BaseRerank):
    """Reranks nodes by cosine similarity of embeddings: a sentence-transformers ``model`` or any LlamaIndex
    ``embed_model``. Cross-encoders rank better; use this when they are too slow or costly.

    Example: ``RetrieverQueryEngine.from_args(bm25, node_postprocessors=[EmbeddingRerank(embed_model=...)])``.
    """

    model: Optional[str] = Field(
        default=None, description=f"sentence-transformers model (hub name or path); None: {DEFAULT_EMBEDDING_MODEL}."
    )
    embed_model: Optional[BaseEmbedding] = Field(default=None, description="A LlamaIndex embedding instead of `model`.")
    device: Optional[str] = Field(default=None, description="Torch device; None picks cuda > mps > cpu.")
    batch_size: int = Field(default=32, description="Texts per encoding batch (sentence-transformers only).")
    query_prefix: str = Field(default="", description="Prepended to the query (e.g. 'query: ' for e5).")
    text_prefix: str = Field(default="", description="Prepended to each node text (e.g. 'passage: ' for e5).")
    local_files_only: bool = Field(default=False, description="Never contact the model hub.")
    trust_remote_code: bool = Field(default=False, description="Allow custom model code from the hub.")
    revision: Optional[str] = Field(default=None, description="Model revision (branch, tag or commit).")

    @classmethod
    def class_name(cls) -> str:
        return "RerankKitEmbeddingRerank"

    def _build_scorer(self) -> Scorer:
        embed_model = self.embed_model
        return EmbeddingScorer.from_model_or_embed(
            self.model,
            embed_model.get_text_embedding_batch if embed_model is not None else None,
            embed_query=embed_model.get_query_embedding if embed_model is not None else None,
            name=(embed_model.model_name or embed_model.class_name()) if embed_model is not None else None,
            embed_field="embed_model",
            query_prefix=self.query_prefix,
            text_prefix=self.text_prefix,
            device=self.device,
            batch_size=self.batch_size,
            local_files_only=self.local_files_only,
            trust_remote_code=self.trust_remote_code,
            revision=self.revision,
        )
