"""Runs one loaded decoder reranker: prompt pieces, document-only truncation, left padding, one pass per batch.

Each pair becomes the family's prompt (see :mod:`~rerank_kit.scorers.local.decoder_families`); only the
document's tokens are truncated, so the template, the query and the answer position always survive. Pairs are
sorted by length and cut into token-budget batches, left padded (position ids follow the real tokens, so a
padded row scores as it would alone), and scored from the last position's hidden state in one forward pass
without a KV cache: only the answer tokens' rows of the LM head are multiplied, never the whole vocabulary.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rerank_kit._optional import require
from rerank_kit.scorers.local.decoder_families import DecoderModel, DecoderPrompt, DecoderRecipe, fill
from rerank_kit.scorers.local.engine import (
    DEFAULT_MAX_TOKENS_PER_BATCH,
    PrecisionForwards,
    bf16_pays_off,
    score_in_batches,
)

logger = logging.getLogger("rerank_kit.cross_encoder")

#: Token limits above this are a tokenizer's "no limit" placeholder, not a real one.
_NO_LIMIT = 1_000_000


class DecoderEngine:
    """Relevance logits from one shared decoder reranker (LM head answer rows or seq-cls head), thread-safe."""

    def __init__(self, model: Any, tokenizer: Any, detected: DecoderModel) -> None:
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.detected = detected
        self.device = model.device
        self.pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
        limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
        self.model_max_length = min([int(n) for n in limits if n and n < _NO_LIMIT] or [_NO_LIMIT])
        if detected.head == "classifier" and model.config.num_labels not in (1, 2):
            raise ValueError(
                f"decoder reranker has {model.config.num_labels} output labels; rerank-kit needs 1 (relevance) "
                "or 2 (not relevant, relevant)"
            )
        self.softcap = getattr(model.config, "final_logit_softcapping", None) if detected.head == "causal" else None
        self.lock = threading.Lock()
        self.bf16_pays_off = bf16_pays_off(torch, self.device)
        self.forward = PrecisionForwards(model, _last_hidden_of)  # compiling decoders is not measured yet
        self._heads: dict[DecoderRecipe, tuple[Any, Any]] = {}
        self._warned_long_query = False

    @classmethod
    def load(
        cls, name: str, detected: DecoderModel, *, device: str, local_files_only: bool, trust_remote_code: bool,
        revision: str | None,
    ) -> DecoderEngine:
        """Load tokenizer and model in float32 (bf16 is applied per call, where it pays off)."""
        import torch

        transformers = require("transformers", "cross-encoder")
        hub = {"local_files_only": local_files_only, "trust_remote_code": trust_remote_code, "revision": revision}
        tokenizer = transformers.AutoTokenizer.from_pretrained(name, **hub)
        auto = (transformers.AutoModelForCausalLM if detected.head == "causal"
                else transformers.AutoModelForSequenceClassification)
        model = auto.from_pretrained(name, dtype=torch.float32, **hub).to(device)
        return cls(model, tokenizer, detected)

    def relevance_logits(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        prompt: DecoderPrompt,
        batch_size: int,
        max_tokens_per_batch: int = DEFAULT_MAX_TOKENS_PER_BATCH,
        bf16: bool = False,
    ) -> list[float]:
        """One relevance logit per pair: ``logit(yes) - logit(no)`` (or ``logit(yes)``; classifiers: their logit)."""
        with self.lock:
            weight, bias = self._head(prompt.recipe)
            sequences = self.encode(pairs, prompt)
            lengths = [len(ids) for ids in sequences]

            def work(forward: Callable[..., Any]) -> list[float]:
                return score_in_batches(
                    lengths, batch_size, max_tokens_per_batch,
                    lambda batch: self._score_batch([sequences[i] for i in batch], forward, weight, bias),
                )

            return self.forward.run(bf16, work)

    def warm_up(self, *, bf16: bool) -> None:
        """Make the bf16 copy now (``CrossEncoderScorer.warm_up``); decoder passes are not compiled."""
        with self.lock:
            self.forward.warm_up(bf16)

    def encode(self, pairs: Sequence[tuple[str, str]], prompt: DecoderPrompt) -> list[list[int]]:
        """Token ids of each pair's prompt, the document truncated so the whole fits ``max_length``."""
        recipe = prompt.recipe
        max_length = prompt.max_length or recipe.max_length or self.model_max_length
        instruction = recipe.instruction_text(prompt.instruction)
        at = recipe.document_piece
        label = recipe.pieces[at][: -len("{document}")]
        start = [self._bos()] if recipe.bos else []
        fixed: dict[str, list[int]] = {}

        def ids(text: str) -> list[int]:
            if text not in fixed:
                fixed[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            return fixed[text]

        around, document_texts, label_chars = [], [], []
        for query, document in pairs:
            values = {"query": query, "instruction": instruction, "document": document}
            before = start + [t for piece in recipe.pieces[:at] for t in ids(fill(piece, values))]
            after = [t for piece in recipe.pieces[at + 1 :] for t in ids(fill(piece, values))]
            filled_label = fill(label, values)
            around.append((before, after))
            document_texts.append(filled_label + document)
            label_chars.append(len(filled_label))
        protected, documents = self._tokenize_documents(document_texts, label_chars)
        sequences = []
        for (before, after), keep_at_least, tokens in zip(around, protected, documents):
            budget = max_length - len(before) - len(after)
            if budget < keep_at_least and not self._warned_long_query:
                self._warned_long_query = True
                logger.warning(
                    "the prompt without its document is %d tokens, over max_length=%d: documents are left out",
                    len(before) + len(after) + keep_at_least, max_length,
                )
            sequences.append(before + tokens[: max(keep_at_least, budget)] + after)
        return sequences

    def _tokenize_documents(self, texts: list[str], label_chars: list[int]) -> tuple[list[int], list[list[int]]]:
        """The document pieces' token ids, and per piece how many tokens come before the document (never cut)."""
        if not getattr(self.tokenizer, "is_fast", False):
            tokens = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            labels = [len(self.tokenizer(t[:n].rstrip(), add_special_tokens=False)["input_ids"])
                      for t, n in zip(texts, label_chars)]
            return labels, tokens
        encoded = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        protected = [
            next((k for k, (_, end) in enumerate(offsets) if end > n), len(offsets))
            for offsets, n in zip(encoded["offset_mapping"], label_chars)
        ]
        return protected, encoded["input_ids"]

    def _bos(self) -> int:
        if self.tokenizer.bos_token_id is None:
            raise ValueError("this reranker's prompt starts with a BOS token, but the tokenizer has none")
        return self.tokenizer.bos_token_id

    def _head(self, recipe: DecoderRecipe) -> tuple[Any, Any]:
        """Rows (and bias) that map the last hidden state to ``[relevant, not relevant]`` or ``[relevant]``."""
        if recipe not in self._heads:
            if self.detected.head == "classifier":
                linear = self.model.score
                rows = [1, 0] if self.model.config.num_labels == 2 else [0]
            else:
                linear = self.model.get_output_embeddings()
                rows = [self._answer_id(recipe.yes)] + ([self._answer_id(recipe.no)] if recipe.no else [])
            bias = None if linear.bias is None else linear.bias.detach()[rows].float()
            self._heads[recipe] = (linear.weight.detach()[rows].float(), bias)
        return self._heads[recipe]

    def _answer_id(self, answer: str) -> int:
        ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(
                f"answer {answer!r} is {len(ids)} tokens for this tokenizer; a decoder reranker's answer must be "
                "one token (set PromptTemplate(yes=..., no=...) to tokens of this vocabulary)"
            )
        return ids[0]

    def _score_batch(self, rows: list[list[int]], forward: Callable[..., Any], weight: Any, bias: Any) -> list[float]:
        import torch

        width = max(len(ids) for ids in rows)
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = forward(input_ids=input_ids, attention_mask=mask, position_ids=positions).float()
        logits = hidden @ weight.T  # the answer rows in float32, also when the model runs in bf16
        if bias is not None:
            logits = logits + bias
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        out = logits[:, 0] - logits[:, 1] if logits.shape[1] == 2 else logits[:, 0]
        return out.double().tolist()


def _last_hidden_of(model: Any) -> Callable[..., Any]:
    """The last position's final hidden state of ``model``: one forward pass, no KV cache, no LM head."""
    base = model.base_model

    def last_hidden(input_ids: Any, attention_mask: Any, position_ids: Any) -> Any:
        out = base(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        return out.last_hidden_state[:, -1]

    return last_hidden
