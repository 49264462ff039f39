"""LangChain compressor for bi-encoder (embedding cosine) reranking: the cheap tier when no cross-encoder fits."""

from __future__ import annotations

from typing import Optional

from langchain_core.embeddings import Embeddings
from pydantic import Field

from langchain_rerankers.base import BaseRerank
from rerank_kit import Scorer
from rerank_kit.scorers.local.embedding import DEFAULT_EMBEDDING_MODEL, EmbeddingScorer


class EmbeddingRerank(BaseRerank):
    """Reranks documents by cosine similarity of embeddings: a sentence-transformers ``model`` or any
    LangChain ``embeddings`` object. Cross-encoders rank better; use this when they are too slow or costly.

    Example: ``EmbeddingRerank(embeddings=OpenAIEmbeddings(), top_n=5)``.
    """

    model: Optional[str] = Field(
        default=None, description=f"sentence-transformers model (hub name or path); None: {DEFAULT_EMBEDDING_MODEL}."
    )
    embeddings: Optional[Embeddings] = Field(default=None, description="A LangChain Embeddings instead of `model`.")
    device: Optional[str] = Field(default=None, description="Torch device; None picks cuda > mps > cpu.")
    batch_size: int = Field(default=32, description="Texts per encoding batch (sentence-transformers only).")
    query_prefix: str = Field(default="", description="Prepended to the query (e.g. 'query: ' for e5).")
    text_prefix: str = Field(default="", description="Prepended to each document (e.g. 'passage: ' for e5).")
    local_files_only: bool = Field(default=False, description="Never contact the model hub.")
    trust_remote_code: bool = Field(default=False, description="Allow custom model code from the hub.")
    revision: Optional[str] = Field(default=None, description="Model revision (branch, tag or commit).")

    def _build_scorer(self) -> Scorer:
        embeddings = self.embeddings
        return EmbeddingScorer.from_model_or_embed(
            self.model,
            embeddings.embed_documents if embeddings is not None else None,
            embed_query=embeddings.embed_query if embeddings is not None else None,
            name=type(embeddings).__name__ if embeddings is not None else None,
            embed_field="embeddings",
            query_prefix=self.query_prefix,
            text_prefix=self.text_prefix,
            device=self.device,
            batch_size=self.batch_size,
            local_files_only=self.local_files_only,
            trust_remote_code=self.trust_remote_code,
            revision=self.revision,
        )
