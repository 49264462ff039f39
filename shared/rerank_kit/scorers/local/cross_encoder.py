"""Local cross-encoder scorer on sentence-transformers models (hub name or local path)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, Optional

from pydantic import Field

from rerank_kit import model_registry
from rerank_kit._math import sigmoid
from rerank_kit._optional import require
from rerank_kit.model_fingerprint import model_fingerprint
from rerank_kit.device import resolve_device
from rerank_kit.options import LocalModelOptions
from rerank_kit.scorer import ConfiguredScorer, ScoreRequest
from rerank_kit.scorers.local.engine import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_TOKENS_PER_BATCH,
    CrossEncoderEngine,
)

logger = logging.getLogger("rerank_kit.cross_encoder")

Activation = Literal["sigmoid", "raw"]
Mode = Literal["exact", "fast"]


class CrossEncoderOptions(LocalModelOptions):
    """Options of the local cross-encoder backend."""

    positional = ("model",)

    model: str = Field(
        default="cross-encoder/ms-marco-MiniLM-L6-v2", min_length=1, description="Hub model name or local path."
    )
    max_length: Optional[int] = Field(default=None, ge=1, description="Token limit per pair; None uses the model's.")
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, description="Most pairs per forward pass.")
    max_tokens_per_batch: int = Field(
        default=DEFAULT_MAX_TOKENS_PER_BATCH, ge=1, description="Padded-token budget per pass."
    )
    activation: Activation = Field(default="sigmoid", description="'sigmoid' for (0, 1) scores, 'raw' for logits.")
    mode: Mode = Field(default="exact", description="'exact' (fp32) or 'fast' (bf16 where the CPU supports it).")


class CrossEncoderScorer(ConfiguredScorer):
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

    Options = CrossEncoderOptions

    def _configure(self, options: Any) -> None:
        self._warned_precision = False

    @property
    def name(self) -> str:
        return self.model

    @property
    def cache_key(self) -> str:
        model = model_fingerprint(self.model, self.revision)  # replaced files at the same path get a new key
        return f"cross-encoder|{model}|{self.revision}|{self.max_length}|{self.activation}|{self.mode}"

    @property
    def engine(self) -> CrossEncoderEngine:
        """The shared loaded model; loads it on first access."""
        device = resolve_device(self.device)
        fingerprint = model_fingerprint(self.model, self.revision)  # files replaced at a path load anew
        key = ("cross-encoder", fingerprint, device, self.max_length, self.trust_remote_code, self.revision)
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
