"""Runs one loaded sentence-transformers CrossEncoder: tokenize once, sort by length, batch by tokens."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rerank_kit.scorers.local.forward import CLSForward

logger = logging.getLogger("rerank_kit.cross_encoder")

#: Default cap on padded tokens per forward pass: bounds peak memory whatever the candidate count.
DEFAULT_MAX_TOKENS_PER_BATCH = 4096
#: Default cap on pairs per forward pass (16 measured fastest on 2 CPU cores; see benchmarks/).
DEFAULT_BATCH_SIZE = 16


class CrossEncoderEngine:
    """Relevance logits for (query, text) pairs from one shared model, safe to call from many threads.

    Pairs are tokenized once with truncation to the model's max length, sorted by token length and
    cut into batches bounded by a pair count and a padded-token budget, so padding is near zero and
    memory does not grow with the number of candidates. BERT-family models run the last layer for
    [CLS] only (see :mod:`~rerank_kit.scorers.local.forward`). A lock serializes callers: the fast tokenizer
    is not thread-safe and concurrent forward passes would only fight over the same cores.
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
        self.bf16_pays_off = _bf16_pays_off(torch, self.model.device if self.model is not None else None)
        self._compiled: Callable[..., Any] | None = None

    def relevance_logits(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        batch_size: int,
        max_tokens_per_batch: int = DEFAULT_MAX_TOKENS_PER_BATCH,
        bf16: bool = False,
        compiled: bool = False,
    ) -> list[float]:
        """One relevance logit per pair (for 2-logit models: relevant minus not relevant).

        ``compiled`` runs the forward pass through ``torch.compile`` (compiled once, on first use, for all
        shapes); if compilation fails, for example without a C++ compiler, it logs why and stays eager.
        """
        with self.lock:
            if not self.direct:
                return self._via_predict(pairs, batch_size)
            if not compiled:
                return self._direct(pairs, batch_size, max_tokens_per_batch, bf16, self._eager)
            try:
                return self._direct(pairs, batch_size, max_tokens_per_batch, bf16, self._compiled_forward())
            except Exception as exc:  # noqa: BLE001 - any compiler failure falls back to the eager pass
                logger.warning("torch.compile failed (%s: %s); scoring without compilation", type(exc).__name__, exc)
                self._compiled = self._eager
                return self._direct(pairs, batch_size, max_tokens_per_batch, bf16, self._eager)

    def _eager(self, **features: Any) -> Any:
        return self.cls_forward(**features) if self.cls_forward else self.model(**features).logits

    def _compiled_forward(self) -> Callable[..., Any]:
        """The compiled pass, compiled up front for one row and for many (Dynamo specializes size 1)."""
        if self._compiled is None:
            compiled = self._torch.compile(self._eager, dynamic=True)
            device = self.model.device
            with self._torch.inference_mode():
                for rows in (1, 2):
                    features = self.tokenizer(["warm up"] * rows, ["compilation"] * rows, return_tensors="pt")
                    compiled(**{key: value.to(device) for key, value in features.items()})
            self._compiled = compiled
        return self._compiled

    def _direct(
        self, pairs: Sequence[tuple[str, str]], batch_size: int, max_tokens: int, bf16: bool,
        forward: Callable[..., Any],
    ) -> list[float]:
        torch = self._torch
        encoded = self.tokenizer(
            [query for query, _ in pairs],
            [text for _, text in pairs],
            truncation="longest_first",
            max_length=self.max_length,
        )
        keys = [key for key in ("input_ids", "token_type_ids", "attention_mask") if key in encoded]
        lengths = [len(ids) for ids in encoded["input_ids"]]
        order = sorted(range(len(pairs)), key=lambda i: -lengths[i])
        logits = [0.0] * len(pairs)
        device = self.model.device
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            for batch in token_budget_batches(order, lengths, batch_size, max_tokens):
                features = self.tokenizer.pad({key: [encoded[key][i] for i in batch] for key in keys}, return_tensors="pt")
                features = {key: value.to(device) for key, value in features.items()}
                out = forward(**features).float()
                for i, value in zip(batch, self._reduce(out).tolist()):
                    logits[i] = value
        return logits

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


def _bf16_pays_off(torch: Any, device: Any) -> bool:
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
