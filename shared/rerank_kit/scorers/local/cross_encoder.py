"""Local cross-encoder scorer on sentence-transformers models (hub name or local path)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from rerank_kit import model_registry
from rerank_kit._math import sigmoid
from rerank_kit._optional import require
from rerank_kit.device import resolve_device
from rerank_kit.scorer import ScoreRequest, Scorer
from rerank_kit.scorers.local.engine import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_TOKENS_PER_BATCH,
    CrossEncoderEngine,
)
from rerank_kit.validation import check_positive_int

logger = logging.getLogger("rerank_kit.cross_encoder")

DEFAULT_CROSS_ENCODER = "cross-encoder/ms-marco-MiniLM-L6-v2"

Activation = Literal["sigmoid", "raw"]
Mode = Literal["exact", "fast"]


class CrossEncoderScorer(Scorer):
    """Scores (query, text) pairs jointly with a cross-encoder: the accurate, local reranking tier.

    ``model`` is a hub name or a local folder. ``activation="sigmoid"`` (default, as
    ``CrossEncoder.predict``) gives scores in (0, 1); ``"raw"`` gives logits. Models with two output
    logits score ``relevant - not relevant`` (its sigmoid equals the softmax probability of "relevant").
    ``mode="fast"`` compiles the forward pass with ``torch.compile`` (float32: same scores within 1e-4, the
    first call pays a one-time compilation) and adds bfloat16 where that is faster (GPUs, CPUs with AMX);
    ``precision`` tells which precision runs. See benchmarks/cross_encoder_speed.md for both modes.
    The model loads on first use and is shared by every scorer asking for the same model and options.
    """

    cache_by_default = True

    def __init__(
        self,
        model: str = DEFAULT_CROSS_ENCODER,
        *,
        device: str | None = None,
        max_length: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens_per_batch: int = DEFAULT_MAX_TOKENS_PER_BATCH,
        activation: Activation = "sigmoid",
        mode: Mode = "exact",
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        revision: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, str) or not model.strip():
            raise ValueError("model must be a hub model name or a local path")
        if activation not in ("sigmoid", "raw"):
            raise ValueError(f"activation must be 'sigmoid' or 'raw', got {activation!r}")
        if mode not in ("exact", "fast"):
            raise ValueError(f"mode must be 'exact' or 'fast', got {mode!r}")
        if max_length is not None:
            check_positive_int("max_length", max_length)
        self.model = model
        self.device = device
        self.max_length = max_length
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.max_tokens_per_batch = check_positive_int("max_tokens_per_batch", max_tokens_per_batch)
        self.activation = activation
        self.mode = mode
        self.local_files_only = local_files_only
        self.trust_remote_code = trust_remote_code
        self.revision = revision
        self._warned_precision = False

    @property
    def name(self) -> str:
        return self.model

    @property
    def cache_key(self) -> str:
        return f"cross-encoder|{self.model}|{self.revision}|{self.max_length}|{self.activation}|{self.mode}"

    @property
    def engine(self) -> CrossEncoderEngine:
        """The shared loaded model; loads it on first access."""
        device = resolve_device(self.device)
        key = ("cross-encoder", self.model, device, self.max_length, self.trust_remote_code, self.revision)
        return model_registry.shared_model(key, lambda: CrossEncoderEngine(self._load(device)))

    @property
    def precision(self) -> str:
        """``"bfloat16"`` when fast mode pays off on this device, else ``"float32"`` (loads the model)."""
        if self.mode != "fast":
            return "float32"
        if self.engine.bf16_pays_off:
            return "bfloat16"
        if not self._warned_precision:
            self._warned_precision = True
            logger.info("mode='fast': bfloat16 is not faster on this device; compiled float32 instead")
        return "float32"

    def _load(self, device: str) -> object:
        sentence_transformers = require("sentence_transformers", "cross-encoder")
        return sentence_transformers.CrossEncoder(
            self.model,
            device=device,
            max_length=self.max_length,
            local_files_only=self.local_files_only,
            trust_remote_code=self.trust_remote_code,
            revision=self.revision,
        )

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return self.score_many([(query, texts)])[0]

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Packs every query's pairs into shared length-sorted batches."""
        pairs = [(query, text) for query, texts in requests for text in texts]
        if not pairs:
            return [[] for _ in requests]
        logits = self.engine.relevance_logits(
            pairs,
            batch_size=self.batch_size,
            max_tokens_per_batch=self.max_tokens_per_batch,
            bf16=self.precision == "bfloat16",
            compiled=self.mode == "fast",
        )
        scores = [sigmoid(x) for x in logits] if self.activation == "sigmoid" else logits
        out, start = [], 0
        for _, texts in requests:
            out.append(scores[start : start + len(texts)])
            start += len(texts)
        return out

    def __repr__(self) -> str:
        return f"CrossEncoderScorer(model={self.model!r}, device={self.device!r}, mode={self.mode!r})"
