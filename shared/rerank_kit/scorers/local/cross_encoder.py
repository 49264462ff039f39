"""Local cross-encoder scorer: sentence-transformers models, and decoder rerankers (Qwen3-Reranker and kin)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from rerank_kit import model_registry
from rerank_kit._math import logit, sigmoid
from rerank_kit._optional import require
from rerank_kit.model_fingerprint import model_fingerprint
from rerank_kit.model_loading import load_model
from rerank_kit.device import resolve_device
from rerank_kit.options import LocalModelOptions
from rerank_kit.scorer import ConfiguredScorer, RefineRequest, ScoreRequest
from rerank_kit.scorers.local.decoder_engine import DecoderEngine
from rerank_kit.scorers.local.decoder_families import (
    DecoderPrompt,
    PromptTemplateOption,
    check_prompt_template,
    detect_decoder,
    family_by_name,
    template_identity,
    template_recipe,
)
from rerank_kit.scorers.local.batcher import MicroBatcher
from rerank_kit.scorers.local.engine import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_TOKENS_PER_BATCH,
    CrossEncoderEngine,
)

logger = logging.getLogger("rerank_kit.cross_encoder")

Activation = Literal["sigmoid", "raw"]
Mode = Literal["exact", "fast"]
Precision = Literal["auto", "float32", "bfloat16"]


class CrossEncoderOptions(LocalModelOptions):
    """Options of the local cross-encoder backend."""

    positional = ("model",)

    model: Any = Field(
        default="cross-encoder/ms-marco-MiniLM-L6-v2",
        description="Hub model name or local path, or a loaded sentence-transformers CrossEncoder (or LangChain's "
        "HuggingFaceCrossEncoder) to reuse.",
    )
    max_length: Optional[int] = Field(default=None, ge=1, description="Token limit per pair; None uses the model's.")
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, description="Most pairs per forward pass.")
    max_tokens_per_batch: int = Field(
        default=DEFAULT_MAX_TOKENS_PER_BATCH, ge=1, description="Padded-token budget per pass."
    )
    activation: Activation = Field(default="sigmoid", description="'sigmoid' for (0, 1) scores, 'raw' for logits.")
    mode: Mode = Field(default="exact", description="'exact' (fp32) or 'fast' (bf16 where the CPU supports it).")
    precision: Precision = Field(
        default="auto",
        description="Fast mode's number format: 'auto' (bfloat16 where it is faster: AMX CPUs, GPUs), or force "
        "'float32' or 'bfloat16' (any CPU; slow without bf16 hardware, for checking bf16 scores).",
    )
    warmup: bool = Field(
        default=False,
        description="Load the model, make the bf16 copy, compile the pass and set up its kernels (BERT-family models "
        "on CPU; 25-29 s for a MiniLM-L6 on 2 cores: benchmarks/cross_encoder_speed.md) at construction: later "
        "calls run faster and never wait for a compiler. False: load on first call, eager.",
    )
    exact_top_n: bool = Field(
        default=True,
        description="Fast mode in bfloat16: re-score in float32 the candidates too close to the top_n cut to call, "
        "so the top n are exact mode's (a few more pairs per query). False: bfloat16 scores only.",
    )
    batch_wait_ms: float = Field(
        default=2.0, ge=0, description="Async callers within this many ms share one batch; 0: no sharing."
    )
    instruction: Optional[str] = Field(
        default=None, description="Decoder rerankers: the task description; None uses the family's default."
    )
    prompt_template: PromptTemplateOption = Field(
        default=None,
        description="Decoder rerankers: a family name, a template with {query} and {document} (and optionally "
        "{instruction}), or a PromptTemplate with its answer tokens; None detects the family from the model.",
    )

    @field_validator("model")
    @classmethod
    def _model(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("model must be a hub model name, a local path or a loaded CrossEncoder")
            return value
        loaded = getattr(value, "client", value)  # LangChain's HuggingFaceCrossEncoder wraps one as .client
        if not (hasattr(loaded, "predict") and hasattr(loaded, "tokenizer")):
            raise ValueError(f"model must be a name, a path or a sentence-transformers CrossEncoder, "
                             f"got {type(value).__name__}")
        return loaded

    @model_validator(mode="after")
    def _exact_is_float32(self) -> CrossEncoderOptions:
        if self.mode == "exact" and self.precision == "bfloat16":
            raise ValueError("precision='bfloat16' needs mode='fast': exact mode gives float32 scores")
        return self

    @field_validator("prompt_template")
    @classmethod
    def _prompt_template(cls, value: PromptTemplateOption) -> PromptTemplateOption:
        return check_prompt_template(value)


class CrossEncoderScorer(ConfiguredScorer):
    """Scores (query, text) pairs jointly with a cross-encoder: the accurate, local reranking tier.

    ``model`` is a hub name or a local folder. ``activation="sigmoid"`` (default, as
    ``CrossEncoder.predict``) gives scores in (0, 1); ``"raw"`` gives logits. Models with two output
    logits score ``relevant - not relevant`` (its sigmoid equals the softmax probability of "relevant").
    ``mode="fast"`` runs a copy with bfloat16 matrix weights where that is faster (GPUs, CPUs with AMX), else
    the exact float32 pass; ``precision`` tells which runs. ``warmup=True`` (or :meth:`warm_up`) loads the model
    and compiles its pass at construction, so calls run faster and never wait for a compiler (without it the
    model loads on first use and runs eager). In bfloat16, ``exact_top_n`` re-scores in float32 the candidates
    near a reranker's ``top_n`` cut, so fast mode returns exact mode's top n. Concurrent async calls share
    batches. See benchmarks/cross_encoder_speed.md for both modes.
    Decoder rerankers (Qwen3-Reranker, mxbai-rerank-v2, bge-reranker-v2-gemma, or any causal LM with a
    ``prompt_template``) are recognized from the model's config and scored by their model card's recipe
    with ``instruction`` (see :mod:`~rerank_kit.scorers.local.decoder_families`).
    The model loads on first use and is shared by every scorer asking for the same model and options.
    """

    cache_by_default = True

    Options = CrossEncoderOptions

    def _configure(self, options: Any) -> None:
        self._warned_precision = False
        self._batcher = MicroBatcher(self.score_many, wait_s=options.batch_wait_ms / 1000,
                                     max_pairs=options.max_tokens_per_batch)
        if options.warmup:
            self.warm_up()

    def warm_up(self) -> None:
        """Load the model, make the bf16 copy (fast mode) and compile now, so every call runs at full speed."""
        engine = self.engine
        engine.warm_up(bf16=self.precision == "bfloat16")

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        """Concurrent async calls share batches (within ``batch_wait_ms``); each gets only its own scores."""
        if self.batch_wait_ms <= 0:
            return await super().ascore(query, texts)
        return await self._batcher.score(query, texts)

    async def ascore_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        if self.batch_wait_ms <= 0:
            return await asyncio.to_thread(self.score_many, requests)
        return list(await asyncio.gather(*(self._batcher.score(query, texts) for query, texts in requests)))

    @property
    def name(self) -> str:
        """The model's name or path (for a loaded CrossEncoder, the one it was loaded from)."""
        if isinstance(self.model, str):
            return self.model
        config = getattr(getattr(self.model, "model", None), "config", None)
        return str(getattr(config, "_name_or_path", "") or type(self.model).__name__)

    @property
    def cache_key(self) -> str:
        model = model_fingerprint(self.name, self.revision)  # replaced files at the same path get a new key
        key = f"cross-encoder|{model}|{self.revision}|{self.max_length}|{self.activation}|{self.mode}"
        if self.options.precision != "auto":
            key += f"|{self.options.precision}"
        if self.prompt_template is None and self.instruction is None:
            return key  # unchanged for every model without decoder options: persistent caches stay valid
        return f"{key}|{template_identity(self.prompt_template)}|{self.instruction!r}"

    @property
    def engine(self) -> CrossEncoderEngine | DecoderEngine:
        """The shared loaded model; loads it on first access."""
        if not isinstance(self.model, str):  # a loaded CrossEncoder: used as given, on its own device
            return model_registry.shared_model(("cross-encoder-object", id(self.model)),
                                               lambda: CrossEncoderEngine(self.model))
        device = resolve_device(self.device)
        fingerprint = model_fingerprint(self.model, self.revision)  # files replaced at a path load anew
        # a template, or a family named in the path, decides whether a decoder's classifier conversion is one
        how = (self.prompt_template is not None, family_by_name(self.model))
        key = ("cross-encoder", fingerprint, device, self.max_length, self.trust_remote_code, self.revision, how)
        return model_registry.shared_model(key, lambda: self._load_engine(device))

    @property
    def precision(self) -> str:
        """What runs: ``"bfloat16"`` in fast mode where it pays off (or forced), else ``"float32"`` (loads the model).

        Fast mode with ``exact_top_n`` also runs float32 for a model whose bf16 error swamps its score differences.
        """
        if self.mode != "fast":
            return "float32"
        if self.options.precision != "auto":
            return self.options.precision
        engine = self.engine
        if engine.bf16_pays_off and not (self.exact_top_n and engine.forward.bf16_band.unhelpful):
            return "bfloat16"
        if not self._warned_precision:
            self._warned_precision = True
            logger.info("mode='fast': bfloat16 is not faster on this device; float32 instead")
        return "float32"

    def _load_engine(self, device: str) -> CrossEncoderEngine | DecoderEngine:
        """The engine, or one :class:`~rerank_kit.ModelLoadError` line saying what to do (at once when offline)."""
        return load_model(self.model, lambda: self._open_engine(device), local_files_only=self.local_files_only,
                          revision=self.revision)

    def _open_engine(self, device: str) -> CrossEncoderEngine | DecoderEngine:
        """A decoder engine when the config says decoder reranker, else the sentence-transformers engine."""
        transformers = require("transformers", "cross-encoder")
        hub = {"local_files_only": self.local_files_only, "trust_remote_code": self.trust_remote_code,
               "revision": self.revision}
        try:
            config = transformers.AutoConfig.from_pretrained(self.model, **hub)
        except (OSError, ValueError):  # not a transformers model folder: sentence-transformers says why
            config = None
        templated = self.prompt_template is not None
        detected = None if config is None else detect_decoder(self.model, config, templated=templated)
        if detected is None:
            return CrossEncoderEngine(self._load(device))
        return DecoderEngine.load(self.model, detected, device=device, **hub)

    def decoder_prompt(self, engine: DecoderEngine) -> DecoderPrompt:
        """The recipe, instruction and token limit this scorer asks a decoder engine for."""
        recipe = template_recipe(self.prompt_template) or engine.detected.recipe
        if recipe is None:
            raise ValueError(f"{self.model} needs prompt_template= to say how its prompt reads")
        if self.instruction is not None and not recipe.uses_instruction:
            raise ValueError("instruction= was given but prompt_template has no {instruction} placeholder")
        return DecoderPrompt(recipe, self.instruction, self.max_length)

    def _call_options(self, engine: CrossEncoderEngine | DecoderEngine) -> dict[str, Any]:
        """What the engine needs per call besides the pairs: a decoder's prompt, nothing for sentence-transformers."""
        if isinstance(engine, DecoderEngine):
            return {"prompt": self.decoder_prompt(engine)}
        if self.instruction is not None:
            raise ValueError(f"instruction= is for decoder rerankers; {self.model} is a sentence-transformers model")
        return {}

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
        engine = self.engine
        logits = engine.relevance_logits(
            pairs,
            batch_size=self.batch_size,
            max_tokens_per_batch=self.max_tokens_per_batch,
            bf16=self.precision == "bfloat16",
            **self._call_options(engine),
        )
        scores = [sigmoid(x) for x in logits] if self.activation == "sigmoid" else logits
        out, start = [], 0
        for _, texts in requests:
            out.append(scores[start : start + len(texts)])
            start += len(texts)
        return out

    @property
    def refines_top(self) -> bool:
        """Whether a reranker should call :meth:`refine_top`: fast mode in bfloat16 with ``exact_top_n``."""
        return self.exact_top_n and self.mode == "fast" and self.precision == "bfloat16"

    def refine_top(self, requests: Sequence[RefineRequest], top_n: int) -> list[list[float]]:
        """Each request's scores with those near the ``top_n`` cut replaced by float32 scores.

        Rounds of packed passes (bounded: see :mod:`~rerank_kit.scorers.local.top_refinement`) re-score the texts
        whose fast logits could fall on the other side of the cut, nearest it first, until the top n is settled.
        """
        raw = self.activation == "raw"
        engine = self.engine
        band = engine.forward.bf16_band
        logits = [[float(x) if raw else logit(x) for x in scores] for _, _, scores in requests]
        refined = [list(scores) for _, _, scores in requests]
        exact: list[set[int]] = [set() for _ in requests]
        round_number = 0
        while True:
            todo = [band.to_refine(values, top_n, done, round_number) for values, done in zip(logits, exact)]
            pairs = [(query, texts[i]) for (query, texts, _), near in zip(requests, todo) for i in near]
            if not pairs:
                band.judge(logits)
                return refined
            values = iter(engine.relevance_logits(pairs, batch_size=self.batch_size,
                                                  max_tokens_per_batch=self.max_tokens_per_batch, bf16=False,
                                                  **self._call_options(engine)))
            fast_seen, exact_seen = [], []
            for scores, query_logits, near, done in zip(refined, logits, todo, exact):
                for i in near:
                    value = next(values)
                    fast_seen.append(query_logits[i])
                    exact_seen.append(value)
                    query_logits[i] = value
                    scores[i] = value if raw else sigmoid(value)
                    done.add(i)
            band.observe(fast_seen, exact_seen)
            round_number += 1
