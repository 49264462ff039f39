"""Runs one loaded sentence-transformers CrossEncoder: tokenize once, sort by length, batch by tokens."""

from __future__ import annotations

import copy
import logging
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from rerank_kit.scorers.local.forward import CLSForward, padded_features
from rerank_kit.scorers.local.top_refinement import RefinementBand

logger = logging.getLogger("rerank_kit.cross_encoder")

#: Default cap on padded tokens per forward pass: bounds peak memory whatever the candidate count.
DEFAULT_MAX_TOKENS_PER_BATCH = 4096
#: Default cap on pairs per forward pass (16 measured fastest on 2 CPU cores; see benchmarks/).
DEFAULT_BATCH_SIZE = 16

T = TypeVar("T")


class CrossEncoderEngine:
    """Relevance logits for (query, text) pairs from one shared model, safe to call from many threads.

    Pairs are tokenized once with truncation to the model's max length, sorted by token length and cut into batches
    bounded by a pair count and a padded-token budget, so padding is small and memory does not grow with the number
    of candidates. BERT-family models run the last layer for [CLS] only and, on CPU, packed without any padding (see
    :mod:`~rerank_kit.scorers.local.forward`). A lock serializes callers: the fast tokenizer is not thread-safe and
    concurrent forward passes would only fight over the same cores.
    Models that are not a plain sequence-classification transformer go through ``CrossEncoder.predict``.
    """

    def __init__(self, cross_encoder: Any) -> None:
        import torch
        from sentence_transformers.base.modules.transformer import Transformer

        self.cross_encoder = cross_encoder
        self.tokenizer = cross_encoder.tokenizer
        self.model = cross_encoder.model
        self.num_labels = cross_encoder.num_labels
        if self.num_labels not in (1, 2):
            raise ValueError(
                f"cross-encoder has {self.num_labels} output labels; rerank-kit needs a relevance model "
                "with 1 logit (relevance) or 2 logits (not relevant, relevant)"
            )
        self.max_length = cross_encoder.max_seq_length
        modules = list(cross_encoder)
        self.direct = len(modules) == 1 and isinstance(modules[0], Transformer) and self.model is not None
        cross_encoder.eval()
        self.cls_forward = CLSForward.verified(self.model, self.tokenizer) if self.direct else None
        self.lock = threading.Lock()
        self._torch = torch
        self.bf16_pays_off = bf16_pays_off(torch, self.model.device if self.model is not None else None)
        compilable = self.cls_forward is not None and self.model.device.type == "cpu"  # measured there only
        self.forward = PrecisionForwards(self.model, self._forward_of, self._warm_up if compilable else None,
                                         CLSForward.bf16 if self.cls_forward is not None else None)

    def relevance_logits(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        batch_size: int,
        max_tokens_per_batch: int = DEFAULT_MAX_TOKENS_PER_BATCH,
        bf16: bool = False,
    ) -> list[float]:
        """One relevance logit per pair (for 2-logit models: relevant minus not relevant).

        ``bf16`` runs a bfloat16 copy of the weights (made once); after :meth:`warm_up` the compiled pass runs.
        """
        with self.lock:
            if not self.direct:
                return self._via_predict(pairs, batch_size)
            return self.forward.run(
                bf16, lambda forward: self._direct(pairs, batch_size, max_tokens_per_batch, forward)
            )

    def warm_up(self, *, bf16: bool) -> None:
        """Make the bf16 copy and compile now (``CrossEncoderScorer.warm_up``); later calls use the compiled pass."""
        with self.lock:
            if self.direct:
                self.forward.warm_up(bf16)

    def _forward_of(self, model: Any) -> Callable[..., Any]:
        """The logits function of ``model`` (this engine's model or its bf16 copy)."""
        if self.cls_forward is not None:
            return CLSForward(model)
        return lambda **features: model(**features).logits

    def _warm_up(self, compiled: Callable[..., Any], eager: Any) -> None:
        for rows in (1, 2):
            encoded = self.tokenizer(["warm up"] * rows, ["compilation"] * rows)
            compiled(**self._features(encoded, list(range(rows))))
        # compiled passes are CLSForward's; past 512 tokens the set-up is small against the attention itself
        longest = min(self.max_length or 512, 512)
        eager.warm_up_kernels(compiled, longest, max(DEFAULT_MAX_TOKENS_PER_BATCH, longest), DEFAULT_BATCH_SIZE)

    def _features(self, encoded: Any, rows: list[int]) -> dict[str, Any]:
        """The forward pass's inputs for ``rows`` of the tokenizer's unpadded output."""
        if self.cls_forward is not None:
            return self.cls_forward.inputs(encoded, rows, self.tokenizer)
        return padded_features(self.tokenizer, encoded, rows, self.model.device)

    def _direct(
        self, pairs: Sequence[tuple[str, str]], batch_size: int, max_tokens: int, forward: Callable[..., Any],
    ) -> list[float]:
        encoded = self.tokenizer(
            [query for query, _ in pairs],
            [text for _, text in pairs],
            truncation="longest_first",
            max_length=self.max_length,
        )
        lengths = [len(ids) for ids in encoded["input_ids"]]

        def score_batch(batch: list[int]) -> list[float]:
            out = forward(**self._features(encoded, batch)).float()
            return self._reduce(out).tolist()

        return score_in_batches(lengths, batch_size, max_tokens, score_batch)

    def _via_predict(self, pairs: Sequence[tuple[str, str]], batch_size: int) -> list[float]:
        torch = self._torch
        out = self.cross_encoder.predict(
            list(pairs), batch_size=batch_size, activation_fn=torch.nn.Identity(), convert_to_tensor=True
        )
        out = out.float().reshape(len(pairs), -1)
        return self._reduce(out).tolist()

    def _reduce(self, logits: Any) -> Any:
        if self.num_labels == 2:
            return (logits[:, 1] - logits[:, 0]).double()
        return logits[:, 0].double()


class PrecisionForwards:
    """A model's forward pass in float32 or with bfloat16 matrix weights; compiled after :meth:`warm_up`.

    The bfloat16 variant is made once: the pass's own where the engine gives one (``CLSForward.bf16``: every layer
    bfloat16, the head float32), else a copy whose linear layers hold bfloat16 weights (no per-call conversion,
    unlike autocast over float32 weights) while norms, embeddings and the residual stream stay float32 under
    autocast, which keeps the ranking as faithful as autocast (measured: benchmarks/). Where the engine says its
    pass compiles (it gives a ``warm_up``), :meth:`warm_up` compiles a variant with its weights frozen in
    (constants of the pass, laid out once for the CPU's matrix kernels; inductor fuses the casts, bias, activation
    and norms around the matrix multiplies; benchmarks/cross_encoder_speed.md compares warmed and eager passes) for
    every batch and length at once; calls use it from then on and never wait for a compiler. Without a warm-up calls
    run eager: compiling and setting up the kernels takes tens of seconds of CPU (construction times:
    benchmarks/cross_encoder_speed.md), and compiling in a background thread measured 4x slower calls meanwhile
    (the compiler holds the GIL). Changing a model's weights after its warm-up does not reach the compiled pass. If
    compiling fails, for example without a C++ compiler, it logs why and the variant stays eager.
    """

    def __init__(self, model: Any, forward_of: Callable[[Any], Callable[..., Any]],
                 warm_up: Callable[[Callable[..., Any], Callable[..., Any]], None] | None = None,
                 bf16_forward_of: Callable[[Any], Callable[..., Any]] | None = None) -> None:
        self.model = model
        self._forward_of = forward_of
        self._warm_up = warm_up
        #: builds the bf16 variant from the float32 model where a pass has its own (else bf16 linears + autocast)
        self._bf16_forward_of = bf16_forward_of
        self._models: dict[bool, Any] = {False: model}
        self._eager: dict[bool, Callable[..., Any]] = {}
        self._compiled: dict[bool, Callable[..., Any]] = {}
        #: the bf16 pass's error near top-n cuts, learned once per model by every scorer using it
        self.bf16_band = RefinementBand()

    def run(self, bf16: bool, work: Callable[[Callable[..., Any]], T]) -> T:
        """``work(forward)`` with the variant asked for: the compiled one after a warm-up, else eager."""
        forward = self.current(bf16)
        try:
            return work(forward)
        except Exception as exc:  # noqa: BLE001 - a failing compiled pass falls back to the eager one
            if forward is self.eager(bf16):
                raise
            logger.warning("compiled forward failed (%s: %s); scoring without compilation", type(exc).__name__, exc)
            self._compiled[bf16] = self.eager(bf16)
            return work(self.eager(bf16))

    def current(self, bf16: bool) -> Callable[..., Any]:
        """The forward a call runs now: the compiled one if warmed up, else the eager one."""
        return self._compiled.get(bf16) or self.eager(bf16)

    def warm_up(self, bf16: bool) -> None:
        """Build the variant and, where the pass compiles, compile it and run it once per shape class."""
        eager = self.eager(bf16)
        if self._warm_up is None or bf16 in self._compiled:
            return
        import torch
        from torch._inductor import config as inductor_config

        try:
            compiled = torch.compile(_own_frame(eager), dynamic=True)
            # compiling happens at the first calls, here; only the global flag freezes (a compile option does not)
            with inductor_config.patch(freezing=True), torch.inference_mode():
                self._warm_up(compiled, eager)
        except Exception as exc:  # noqa: BLE001 - any compiler failure keeps the eager pass
            logger.warning("torch.compile failed (%s: %s); scoring without compilation", type(exc).__name__, exc)
            compiled = eager
        self._compiled[bf16] = compiled

    def eager(self, bf16: bool) -> Callable[..., Any]:
        """The eager forward of one variant, built on first use."""
        if bf16 not in self._eager:
            if bf16 and self._bf16_forward_of is not None:
                self._eager[bf16] = self._bf16_forward_of(self.model)
            elif bf16:
                self._eager[bf16] = _under_bf16_autocast(self._forward_of(self._model(True)), self.model.device)
            else:
                self._eager[bf16] = self._forward_of(self.model)
        return self._eager[bf16]

    def _model(self, bf16: bool) -> Any:
        if bf16 not in self._models:
            self._models[bf16] = bf16_linear_copy(self.model)
        return self._models[bf16]


def _own_frame(forward: Callable[..., Any]) -> Callable[..., Any]:
    """``forward`` behind a code object of its own. Dynamo keeps compiled graphs per code object and stops compiling
    one after ``recompile_limit`` (8) graphs, so passes warmed up in one process must not share one."""

    def call(**features: Any) -> Any:
        return forward(**features)

    return types.FunctionType(call.__code__.replace(), call.__globals__, call.__name__, None, call.__closure__)


def bf16_linear_copy(model: Any) -> Any:
    """A copy of ``model`` whose linear layers hold bfloat16 weights; everything else stays float32."""
    import torch

    copied = copy.deepcopy(model).eval()
    for module in copied.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(torch.bfloat16)
    return copied


def _under_bf16_autocast(forward: Callable[..., Any], device: Any) -> Callable[..., Any]:
    import torch

    def run(**features: Any) -> Any:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return forward(**features)

    return run


def score_in_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int, score_batch: Callable[[list[int]], list[float]],
) -> list[float]:
    """One score per sequence: longest first, in token-budget batches, under ``inference_mode``."""
    import torch

    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    scores = [0.0] * len(lengths)
    with torch.inference_mode():
        for batch in token_budget_batches(order, lengths, batch_size, max_tokens):
            for i, value in zip(batch, score_batch(batch)):
                scores[i] = value
    return scores


def bf16_pays_off(torch: Any, device: Any) -> bool:
    """bfloat16 is faster than float32 on GPUs that support it and on CPUs with AMX tiles only.

    Measured on an AVX512-BF16 CPU without AMX: bf16 GEMMs ran below fp32 speed (benchmarks/).
    """
    if device is None:
        return False
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    return False


def token_budget_batches(
    order: Sequence[int], lengths: Sequence[int], batch_size: int, max_tokens: int
) -> Iterator[list[int]]:
    """Cut ``order`` (longest first) into batches of at most ``batch_size`` pairs and ``max_tokens`` padded tokens."""
    batch: list[int] = []
    width = 0
    for i in order:
        new_width = max(width, lengths[i])
        if batch and (len(batch) >= batch_size or new_width * (len(batch) + 1) > max_tokens):
            yield batch
            batch, new_width = [], lengths[i]
        batch.append(i)
        width = new_width
    if batch:
        yield batch
