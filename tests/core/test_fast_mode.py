"""Fast mode: real bf16 weights (checked on any CPU), warm-up without later recompiles, shared async batches."""

from __future__ import annotations

import asyncio

import pytest
import torch

from rerank_kit import CrossEncoderScorer, Reranker, model_registry
from tests.core.test_cross_encoder import QUERY, TEXTS


def _plain_bf16_logits(path: str) -> list[float]:
    """The reference: the model's own forward under bfloat16 autocast, one pair at a time."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return [float(model(**tokenizer(QUERY, text, return_tensors="pt")).logits[0, 0]) for text in TEXTS]


def test_forced_bf16_runs_bf16_weights_and_ranks_like_float32(tiny_cross_encoder) -> None:
    exact = CrossEncoderScorer(tiny_cross_encoder, activation="raw", local_files_only=True)
    bf16 = CrossEncoderScorer(tiny_cross_encoder, activation="raw", mode="fast", precision="bfloat16",
                              local_files_only=True)
    assert bf16.precision == "bfloat16"
    fast_scores, exact_scores = bf16.score(QUERY, TEXTS), exact.score(QUERY, TEXTS)
    assert fast_scores == pytest.approx(exact_scores, abs=0.25)
    assert fast_scores == pytest.approx(_plain_bf16_logits(tiny_cross_encoder), abs=1e-2)
    copy, original = bf16.engine.forward._models[True], bf16.engine.forward._models[False]
    linears = [m for m in copy.modules() if isinstance(m, torch.nn.Linear)]
    norms = [m for m in copy.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)  # norms and residuals stay float32
    assert all(p.dtype == torch.float32 for p in original.parameters())  # the exact model is untouched


def test_exact_mode_cannot_be_bf16_and_precision_changes_the_cache_key(tiny_cross_encoder) -> None:
    with pytest.raises(ValueError, match="needs mode='fast'"):
        CrossEncoderScorer(tiny_cross_encoder, precision="bfloat16")
    fast = CrossEncoderScorer(tiny_cross_encoder, mode="fast", local_files_only=True)
    forced = CrossEncoderScorer(tiny_cross_encoder, mode="fast", precision="bfloat16", local_files_only=True)
    assert fast.cache_key != forced.cache_key


def test_warm_up_compiles_at_construction_and_nothing_recompiles_later(tiny_cross_encoder) -> None:
    from torch._dynamo.utils import counters

    model_registry.clear()
    scorer = CrossEncoderScorer(tiny_cross_encoder, mode="fast", precision="float32", warmup=True,
                                local_files_only=True)
    graphs = counters["stats"]["unique_graphs"]
    for size in (1, 2, 3, 7, 16):
        for words in (1, 5, 20):
            scorer.score(QUERY, [" ".join(["reset password"] * words)] * size)
    assert counters["stats"]["unique_graphs"] == graphs
    exact = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True)
    assert scorer.score(QUERY, TEXTS) == pytest.approx(exact.score(QUERY, TEXTS), abs=1e-4)


async def test_concurrent_async_callers_share_batches_and_get_their_own_scores(tiny_cross_encoder) -> None:
    scorer = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True, batch_wait_ms=20)
    requests = [(f"{QUERY} {i}", TEXTS[i % len(TEXTS):] + TEXTS[: i % len(TEXTS)]) for i in range(16)]
    expected = scorer.score_many(requests)
    before = scorer._batcher.batches
    got = await asyncio.gather(*(scorer.ascore(query, texts) for query, texts in requests))
    for scores, wanted in zip(got, expected):
        assert scores == pytest.approx(wanted, abs=1e-6)
    assert scorer._batcher.batches - before <= 2


async def test_a_cancelled_caller_does_not_disturb_the_others(tiny_cross_encoder) -> None:
    scorer = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True, batch_wait_ms=50)
    reranker = Reranker(scorer, top_n=None, cache=False)
    doomed = asyncio.create_task(reranker.arerank(QUERY, TEXTS))
    others = [asyncio.create_task(reranker.arerank(f"{QUERY} {i}", TEXTS)) for i in range(3)]
    await asyncio.sleep(0.01)
    doomed.cancel()
    results = await asyncio.gather(*others)
    assert all(len(r) == len(TEXTS) for r in results)
    with pytest.raises(asyncio.CancelledError):
        await doomed


async def test_batch_sharing_can_be_switched_off(tiny_cross_encoder) -> None:
    scorer = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True, batch_wait_ms=0)
    assert await scorer.ascore(QUERY, TEXTS) == pytest.approx(scorer.score(QUERY, TEXTS))
    assert scorer._batcher.batches == 0
