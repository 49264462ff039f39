"""Attention over packed sequences: each pair's tokens attend only to its own, with no padding anywhere.

The CPU's fused attention kernel pays for masked (padded) positions as for real ones, and its cost grows
with the square of the padded length; running it per pair on that pair's slice of the packed tokens gives
the same values with none of that work. A torch custom op, so that a compiled pass keeps one graph around it.
"""

from __future__ import annotations

import functools
from typing import Any

_SCHEMA = "(Tensor query, Tensor key, Tensor value, Tensor lengths, bool cls_only) -> Tensor"


@functools.cache
def packed_attention_op() -> Any:
    """The op ``(query, key, value, lengths, cls_only) -> context``, all [tokens, heads, head_size].

    Keys and values hold every pair's tokens end to end, ``lengths`` [pairs] counting each pair's. Queries
    are the same tokens, or with ``cls_only`` one row per pair (its first token: the [CLS]-only last layer).
    """
    import torch

    functional = torch.nn.functional

    @torch.library.custom_op("rerank_kit::packed_attention", mutates_args=(), schema=_SCHEMA)
    def packed_attention(query: Any, key: Any, value: Any, lengths: Any, cls_only: bool) -> Any:
        context = torch.empty_like(query)
        start = 0
        for row, length in enumerate(lengths.tolist()):
            end = start + length
            asked = slice(row, row + 1) if cls_only else slice(start, end)
            heads_first = functional.scaled_dot_product_attention(  # 4-d: the fused CPU kernel takes no other
                *(part.transpose(0, 1)[None] for part in (query[asked], key[start:end], value[start:end])))
            context[asked] = heads_first[0].transpose(0, 1)
            start = end
        return context

    @packed_attention.register_fake
    def _(query: Any, key: Any, value: Any, lengths: Any, cls_only: bool) -> Any:
        return torch.empty_like(query)

    return torch.ops.rerank_kit.packed_attention.default  # the op itself: what a compiled graph calls
