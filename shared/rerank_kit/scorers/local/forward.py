"""A forward pass for BERT-family sequence classifiers that skips work the score never uses.

The classifier reads only the first ([CLS]) position of the last layer, so that layer needs keys and values for
every token but its query projection, attention output and feed-forward only for [CLS]: about a sixth of a 6-layer
model's compute, with identical results. On CPU the batch is also packed: the pairs' tokens are laid end to end
without padding and attention runs per pair (:mod:`~rerank_kit.scorers.local.packed_attention`), so no layer
computes padded positions (batches sorted by length still carry some, and attention's cost grows with the square of
the padded length). ``CLSForward.verified`` checks all this on the loaded model before it is used; anything
unfamiliar keeps the model's own forward.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from rerank_kit.scorers.local.packed_attention import packed_attention_op

SUPPORTED_MODEL_TYPES = ("bert", "roberta", "xlm-roberta")
#: Packed batches are filled up to a multiple of this many tokens (with one filler sequence, scored and
#: dropped), so matrix shapes repeat from call to call: the CPU kernels set up per shape, on first use.
TOKEN_BUCKET = 64
#: RoBERTa-style position ids start after the padding index; BERT's start at 0
_POSITIONS_AFTER_PADDING = ("roberta", "xlm-roberta")


class CLSForward:
    """Logits equal to ``model(...).logits``, from padded or (on CPU) packed inputs.

    ``packed`` says which inputs :meth:`inputs` builds (call ``forward(**forward.inputs(...))``): on CPU the pairs'
    tokens end to end with their positions and lengths, elsewhere the tokenizer's right-padded batch.
    """

    def __init__(self, model: Any) -> None:
        import torch

        self.model = model
        self.base = model.base_model
        self.layers = list(self.base.encoder.layer)
        self._torch = torch
        #: measured faster on CPU; elsewhere one masked attention call per padded batch (GPU: unmeasured)
        self.packed = model.device.type == "cpu"
        self._attention = packed_attention_op() if self.packed else None
        config = model.config
        self._first_position = config.pad_token_id + 1 if config.model_type in _POSITIONS_AFTER_PADDING else 0
        self._filler_id = config.pad_token_id or 0

    @classmethod
    def verified(cls, model: Any, tokenizer: Any) -> CLSForward | None:
        """A ``CLSForward`` if the model is of a supported kind and matches its own forward, else ``None``."""
        config = model.config
        if config.model_type not in SUPPORTED_MODEL_TYPES or config.is_decoder:
            return None
        if getattr(config, "position_embedding_type", "absolute") != "absolute":
            return None
        try:
            candidate = cls(model)
            features = tokenizer(
                ["a short query", "another question here"],
                ["a passage of some length to read", "short"],
                padding=True,
                return_tensors="pt",
            )
            features = {k: v.to(model.device) for k, v in features.items()}
            unpadded = tokenizer(["a short query", "another question here"],
                                 ["a passage of some length to read", "short"])
            with candidate._torch.inference_mode():
                expected = model(**features).logits.float()
                got = candidate(**candidate.inputs(unpadded, [0, 1], tokenizer)).float()
            if got.shape == expected.shape and candidate._torch.allclose(got, expected, atol=1e-4, rtol=1e-4):
                return candidate
        except (AttributeError, TypeError, RuntimeError, ValueError):
            return None
        return None

    @classmethod
    def bf16(cls, model: Any) -> CLSForward:
        """The same pass over a bfloat16 copy of ``model``: every layer in bfloat16, pooler and classifier float32.

        Against float32 linears under autocast it saves the casts between layers; the float32 head keeps the
        logit's own precision (bf16 fidelity: benchmarks/cross_encoder_speed.md).
        """
        import torch

        copied = copy.deepcopy(model).eval().to(torch.bfloat16)
        copied.classifier.float()
        if getattr(copied.base_model, "pooler", None) is not None:
            copied.base_model.pooler.float()
        return cls(copied)

    def inputs(self, encoded: Any, rows: Sequence[int], tokenizer: Any) -> dict[str, Any]:
        """This pass's inputs for ``rows`` of a tokenizer's unpadded output: packed on CPU, else padded."""
        if not self.packed:
            return padded_features(tokenizer, encoded, rows, self.model.device, padding_side="right")
        torch = self._torch
        ids = [encoded["input_ids"][i] for i in rows]
        lengths = [len(row) for row in ids]
        filler = TOKEN_BUCKET - sum(lengths) % TOKEN_BUCKET
        types = ([t for i in rows for t in encoded["token_type_ids"][i]] if "token_type_ids" in encoded
                 else [0] * sum(lengths))
        return {
            "input_ids": torch.tensor([token for row in ids for token in row] + [self._filler_id] * filler),
            "token_type_ids": torch.tensor(types + [0] * filler),
            "position_ids": self._positions([*lengths, filler]),
            "lengths": torch.tensor([*lengths, filler]),
        }

    def _positions(self, lengths: Sequence[int]) -> Any:
        """Position ids of sequences laid end to end: each counts from the model's first position."""
        torch = self._torch
        return torch.cat([torch.arange(n) for n in lengths]) + self._first_position

    def warm_up_kernels(self, forward: Any, max_length: int, max_tokens: int, max_rows: int) -> None:
        """Run every kernel shape a packed batch can need once: attention for each pair length up to
        ``max_length``, and ``forward`` (this pass or its compiled form) once per token bucket up to ``max_tokens``,
        covering each row count of the [CLS]-only layer up to ``max_rows`` pairs. The CPU kernels set up per
        shape on first use; after this, no serving call pays for that."""
        if not self.packed:
            return
        torch = self._torch
        attention = self.layers[0].attention.self
        dtype = attention.query.weight.dtype
        tokens = torch.zeros(max_length, attention.num_attention_heads, attention.attention_head_size, dtype=dtype)
        with torch.inference_mode():
            for length in range(1, max_length + 1):
                lengths = torch.tensor([length])
                self._attention(tokens[:length], tokens[:length], tokens[:length], lengths, False)
                self._attention(tokens[:1], tokens[:length], tokens[:length], lengths, True)
            buckets = range(TOKEN_BUCKET, max_tokens + 2 * TOKEN_BUCKET, TOKEN_BUCKET)
            for step, total in enumerate(buckets):
                # ``rows`` sequences as a batch has them: 1 to ``max_rows`` pairs and the filler, none longer
                # than ``max_length`` (never a single sequence: no batch has one, and freezing such a graph crashed)
                rows = max(-(-total // max_length), step % max_rows + 2)
                lengths = torch.tensor([total // rows + (i < total % rows) for i in range(rows)])
                positions = self._positions(lengths.tolist())
                forward(input_ids=torch.full((total,), self._filler_id), token_type_ids=torch.zeros_like(positions),
                        position_ids=positions, lengths=lengths)

    def __call__(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None,
                 position_ids: Any = None, lengths: Any = None) -> Any:
        if self.packed:
            hidden = self.base.embeddings(input_ids=input_ids[None], token_type_ids=token_type_ids[None],
                                          position_ids=position_ids[None])[0]
            starts = lengths.cumsum(0) - lengths
            for layer in self.layers[:-1]:
                hidden = self._packed_layer(layer, hidden, hidden, lengths, cls_only=False)
            hidden = self._packed_layer(self.layers[-1], hidden, hidden[starts], lengths, cls_only=True)[:-1, None]
        else:
            hidden = self.base.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            mask = attention_mask.bool()[:, None, None, :]
            for layer in self.layers[:-1]:
                hidden = self._padded_layer(layer, hidden, hidden, mask)
            hidden = self._padded_layer(self.layers[-1], hidden, hidden[:, :1], mask)
        return self._head(hidden)

    def _head(self, hidden: Any) -> Any:
        """Classifier logits from the last layer's [CLS] rows ([batch, 1, width]), in the head's own dtype."""
        hidden = hidden.to(next(self.model.classifier.parameters()).dtype)
        if getattr(self.base, "pooler", None) is not None and self.model.config.model_type == "bert":
            hidden = self.base.pooler(hidden)
            return self.model.classifier(self.model.dropout(hidden))
        return self.model.classifier(hidden)

    def _packed_layer(self, layer: Any, hidden: Any, queries_in: Any, lengths: Any, *, cls_only: bool) -> Any:
        """One layer over packed tokens [tokens, width]; ``queries_in`` is ``hidden`` or its [CLS] rows."""
        attention = layer.attention.self
        heads, head_size = attention.num_attention_heads, attention.attention_head_size
        query = attention.query(queries_in).view(-1, heads, head_size)
        key = attention.key(hidden).view(-1, heads, head_size)
        value = attention.value(hidden).view(-1, heads, head_size)
        context = self._attention(query, key, value, lengths, cls_only).reshape(queries_in.shape)
        return _after_attention(layer, context, queries_in)

    def _padded_layer(self, layer: Any, hidden: Any, queries_in: Any, mask: Any) -> Any:
        """One layer over a padded batch [batch, length, width] with masked attention."""
        attention = layer.attention.self
        batch, length, width = hidden.shape
        heads, head_size = attention.num_attention_heads, attention.attention_head_size
        query = attention.query(queries_in).view(batch, -1, heads, head_size).transpose(1, 2)
        key = attention.key(hidden).view(batch, length, heads, head_size).transpose(1, 2)
        value = attention.value(hidden).view(batch, length, heads, head_size).transpose(1, 2)
        context = self._torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        return _after_attention(layer, context.transpose(1, 2).reshape(batch, -1, width), queries_in)


def _after_attention(layer: Any, context: Any, queries_in: Any) -> Any:
    """The rest of a BERT layer: attention output projection and norm, then the feed-forward block."""
    attended = layer.attention.output(context, queries_in)
    return layer.output(layer.intermediate(attended), attended)


def padded_features(
    tokenizer: Any, encoded: Any, rows: Sequence[int], device: Any, **pad_options: Any
) -> dict[str, Any]:
    """``rows`` of a tokenizer's unpadded output as one padded batch of tensors on ``device``."""
    keys = [key for key in ("input_ids", "token_type_ids", "attention_mask") if key in encoded]
    features = tokenizer.pad({key: [encoded[key][i] for i in rows] for key in keys}, return_tensors="pt",
                             **pad_options)
    return {key: value.to(device) for key, value in features.items()}
