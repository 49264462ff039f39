"""Fast mode: real bf16 weights (checked on any CPU), exact top-n, compiled warm-up without later recompiles,
shared async batches."""

from __future__ import annotations

import asyncio

import pytest
import torch

from rerank_kit import CrossEncoderScorer, Reranker, model_registry
from rerank_kit.scorers.local.top_refinement import MIN_OBSERVED, SMALL_ROUNDS, RefinementBand
from tests.core.test_cross_encoder import QUERY, TEXTS

WORDS = "reset password account login email error python cat dog paris capital france city help forgot".split()
#: Forty texts of varied words and lengths: enough near-ties at a top-5 cut for bf16 to swap some.
MANY = [" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(2 + i % 9)) for i in range(40)]


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
    copy, original = bf16.engine.forward.eager(True).model, bf16.engine.model
    head = {*copy.classifier.parameters(), *copy.base_model.pooler.parameters()}
    assert all(p.dtype == torch.float32 for p in head)  # the logit keeps float32 precision
    assert all(p.dtype == torch.bfloat16 for p in copy.parameters() if p not in head)  # every layer runs bf16
    assert all(p.dtype == torch.float32 for p in original.parameters())  # the exact model is untouched


def test_other_models_run_bf16_linears_under_autocast(tiny_cross_encoder) -> None:
    from sentence_transformers import CrossEncoder

    from rerank_kit.scorers.local.engine import CrossEncoderEngine

    engine = CrossEncoderEngine(CrossEncoder(tiny_cross_encoder, local_files_only=True))
    engine.cls_forward = None  # as for a model CLSForward does not support
    engine.forward = type(engine.forward)(engine.model, engine._forward_of)
    engine.forward.eager(True)
    copy = engine.forward._models[True]
    linears = [m for m in copy.modules() if isinstance(m, torch.nn.Linear)]
    norms = [m for m in copy.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)  # norms and residuals stay float32
    pairs = [(QUERY, text) for text in TEXTS]
    assert engine.relevance_logits(pairs, batch_size=4, bf16=True) == pytest.approx(
        _plain_bf16_logits(tiny_cross_encoder), abs=1e-2)


def test_exact_mode_cannot_be_bf16_and_precision_changes_the_cache_key(tiny_cross_encoder) -> None:
    with pytest.raises(ValueError, match="needs mode='fast'"):
        CrossEncoderScorer(tiny_cross_encoder, precision="bfloat16")
    fast = CrossEncoderScorer(tiny_cross_encoder, mode="fast", local_files_only=True)
    forced = CrossEncoderScorer(tiny_cross_encoder, mode="fast", precision="bfloat16", local_files_only=True)
    assert fast.cache_key != forced.cache_key


@pytest.mark.parametrize("mode, precision", [("exact", "auto"), ("fast", "bfloat16")])
def test_warm_up_compiles_at_construction_and_nothing_recompiles_later(tiny_cross_encoder, mode, precision) -> None:
    from torch._dynamo.utils import counters

    model_registry.clear()
    scorer = CrossEncoderScorer(tiny_cross_encoder, activation="raw", mode=mode, precision=precision, warmup=True,
                                local_files_only=True)
    forward = scorer.engine.forward
    bf16 = precision == "bfloat16"
    assert forward.current(bf16) is not forward.eager(bf16)  # the compiled pass serves from now on
    graphs = counters["stats"]["unique_graphs"]
    for size in (1, 2, 3, 7, 16):
        for words in (1, 5, 20):
            scorer.score(QUERY, [" ".join(["reset password"] * words)] * size)
    assert counters["stats"]["unique_graphs"] == graphs
    eager = scorer.engine.relevance_logits  # compiled and eager passes give the same scores
    with torch.inference_mode():
        pairs = [(QUERY, text) for text in TEXTS]
        expected = scorer.engine._direct(pairs, 16, 4096, forward.eager(bf16))
    assert eager(pairs, batch_size=16, bf16=bf16) == pytest.approx(expected, abs=1e-4 if not bf16 else 0.1)


def test_models_of_one_shape_warmed_up_in_one_process_keep_their_own_weights(tmp_path) -> None:
    from tests.conftest import build_tiny_cross_encoder

    for seed in (3, 4):
        path = str(build_tiny_cross_encoder(tmp_path / str(seed), seed=seed))
        eager = CrossEncoderScorer(path, activation="raw", max_length=63, local_files_only=True)  # own engine
        warmed = CrossEncoderScorer(path, activation="raw", warmup=True, local_files_only=True)
        assert warmed.engine is not eager.engine
        assert warmed.score(QUERY, TEXTS) == pytest.approx(eager.score(QUERY, TEXTS), abs=1e-5)


def test_every_warmed_up_pass_is_compiled_with_its_weights_frozen_in(tiny_cross_encoder) -> None:
    """A weight changed after warm-up reaches only the eager pass; passes warmed up in one process each compile,
    however many (dynamo's per-code-object limit, lowered here, applies to each pass alone)."""
    pairs = [(QUERY, text) for text in TEXTS]
    with torch._dynamo.config.patch(recompile_limit=3):  # a warm-up compiles two graphs
        for _ in range(2):
            model_registry.clear()
            scorer = CrossEncoderScorer(tiny_cross_encoder, activation="raw", warmup=True, local_files_only=True)
            before = scorer.score(QUERY, TEXTS)
            with torch.no_grad():
                scorer.engine.model.classifier.bias.add_(5.0)
            assert scorer.score(QUERY, TEXTS) == pytest.approx(before, abs=1e-6)
            with torch.inference_mode():
                moved = scorer.engine._direct(pairs, 16, 4096, scorer.engine.forward.eager(False))
            assert moved == pytest.approx([score + 5.0 for score in before], abs=1e-4)
    model_registry.clear()


def test_without_warm_up_nothing_compiles(tiny_cross_encoder) -> None:
    model_registry.clear()
    scorer = CrossEncoderScorer(tiny_cross_encoder, mode="fast", precision="bfloat16", local_files_only=True)
    scorer.score(QUERY, TEXTS * 40)
    assert scorer.engine.forward.current(True) is scorer.engine.forward.eager(True)


def _top(results) -> set[int]:
    return {result.index for result in results}


@pytest.mark.parametrize("top_n", [1, 5, 12])
def test_fast_mode_returns_exact_modes_top_n(tiny_cross_encoder, top_n) -> None:
    exact = Reranker(CrossEncoderScorer(tiny_cross_encoder, local_files_only=True), top_n=top_n, cache=False)
    fast_scorer = CrossEncoderScorer(tiny_cross_encoder, mode="fast", precision="bfloat16", local_files_only=True)
    fast = Reranker(fast_scorer, top_n=top_n, cache=False)
    for i in range(6):
        query = f"{QUERY} {WORDS[i]}"
        assert _top(fast.rerank(query, MANY)) == _top(exact.rerank(query, MANY))
    assert fast_scorer.engine.forward.bf16_band.rms_error > 0  # bf16 does differ: texts near the cut were re-scored


def test_refined_scores_are_exact_and_the_others_stay_bf16(tiny_cross_encoder) -> None:
    model_registry.clear()
    fast = CrossEncoderScorer(tiny_cross_encoder, activation="raw", mode="fast", precision="bfloat16",
                              local_files_only=True)
    exact = CrossEncoderScorer(tiny_cross_encoder, activation="raw", local_files_only=True).score(QUERY, MANY)
    bf16 = fast.score(QUERY, MANY)
    refined = fast.refine_top([(QUERY, MANY, bf16)], 5)[0]
    changed = [i for i, value in enumerate(refined) if value != bf16[i]]
    assert changed  # which ones: test_texts_are_re_scored_nearest_the_cut_first_while_their_margin_straddles_it
    assert all(refined[i] == pytest.approx(exact[i], abs=1e-5) for i in changed)
    top = lambda scores: set(sorted(range(len(scores)), key=lambda i: -scores[i])[:5])  # noqa: E731
    assert top(refined) == top(exact)


async def test_async_reranking_and_the_cache_keep_the_refined_top_n(tiny_cross_encoder) -> None:
    exact = Reranker(CrossEncoderScorer(tiny_cross_encoder, local_files_only=True), top_n=5, cache=False)
    fast = Reranker(CrossEncoderScorer(tiny_cross_encoder, mode="fast", precision="bfloat16",
                                       local_files_only=True), top_n=5, cache=True)
    wanted = _top(exact.rerank(QUERY, MANY))
    assert _top(await fast.arerank(QUERY, MANY)) == wanted
    again = fast.rerank(QUERY, MANY)
    assert _top(again) == wanted and all(result.cached for result in again)


def test_exact_top_n_can_be_switched_off_and_exact_mode_never_refines(tiny_cross_encoder) -> None:
    plain = CrossEncoderScorer(tiny_cross_encoder, mode="fast", precision="bfloat16", exact_top_n=False,
                               local_files_only=True)
    assert not plain.refines_top
    assert not CrossEncoderScorer(tiny_cross_encoder, local_files_only=True).refines_top
    assert CrossEncoderScorer(tiny_cross_encoder, mode="fast", precision="bfloat16",
                              local_files_only=True).refines_top
    results = Reranker(plain, top_n=5, cache=False, normalize="none").rerank(QUERY, MANY)
    bf16 = plain.score(QUERY, MANY)
    assert [r.score for r in results] == sorted(bf16, reverse=True)[:5]


def test_fast_mode_runs_float32_for_a_model_whose_bf16_error_swamps_its_scores(tiny_cross_encoder, caplog) -> None:
    model_registry.clear()
    scorer = CrossEncoderScorer(tiny_cross_encoder, mode="fast", local_files_only=True)
    scorer.engine.bf16_pays_off = True  # as on an AMX CPU, whatever this machine is
    exact = Reranker(CrossEncoderScorer(tiny_cross_encoder, local_files_only=True), top_n=5, cache=False)
    fast = Reranker(scorer, top_n=5, cache=False)
    assert scorer.precision == "bfloat16"
    for i in range(3):  # the tiny random model's logits differ by ~1e-5, its bf16 error is ~2e-3
        query = f"{QUERY} {WORDS[i]}"
        assert _top(fast.rerank(query, MANY)) == _top(exact.rerank(query, MANY))
    assert scorer.precision == "float32" and not scorer.refines_top
    assert "runs float32 for it from now on" in caplog.text
    assert _top(fast.rerank(QUERY, MANY)) == _top(exact.rerank(QUERY, MANY))


def _calibrated(rms_error: float) -> RefinementBand:
    band = RefinementBand()
    band.observe([0.0] * MIN_OBSERVED, [rms_error] * MIN_OBSERVED)
    return band


def test_the_margin_follows_the_observed_error() -> None:
    band = RefinementBand()
    logits = [float(i) for i in range(2 * MIN_OBSERVED)]
    nearest = band.to_refine(logits, 5, set())  # calibrating: the texts nearest the cut, all at once
    assert sorted(nearest) == list(range(len(logits) - MIN_OBSERVED, len(logits)))  # the 5 inside, 11 below
    band.observe([0.0] * MIN_OBSERVED, [2.0] * MIN_OBSERVED)  # an rms error of 2: margin 6
    assert band.calibrated and band.margin == 6.0
    band.observe([0.0] * 100 * MIN_OBSERVED, [0.1] * 100 * MIN_OBSERVED)  # later ones were closer: rms shrinks,
    assert band.margin == 2.0  # but the largest error seen bounds it


def test_texts_are_re_scored_nearest_the_cut_first_while_their_margin_straddles_it() -> None:
    band = _calibrated(2.0)  # margin 6
    logits = [float(i) for i in range(32)]  # the top 5 are 27..31
    assert band.to_refine(logits, 5, set()) == [27, 26]
    # with 26 and 27 exact, 28..31 and 16..25 could still cross (each within 6 of a fast rival across the cut)
    assert band.to_refine(logits, 5, {26, 27}) == [28, 25]
    assert sorted(band.to_refine(logits, 5, {26, 27}, round_number=SMALL_ROUNDS)) == [
        *range(16, 26), *range(28, 32)]  # after a few small rounds, every text in doubt at once
    apart = [*range(5), *range(100, 105)]  # the cut's gap is wider than twice the margin: nothing to re-score
    assert band.to_refine([float(x) for x in apart], 5, set()) == []
    assert band.to_refine(logits, len(logits), set()) == []


def test_re_scored_texts_settle_the_cut() -> None:
    band = _calibrated(0.5)  # margin 1.5
    logits = [0.0, 1.0, 2.2, 2.4, 2.6, 5.5]  # top 2: the cut lies between 2.6 and 2.4
    assert band.to_refine(logits, 2, set()) == [4, 3]
    logits[3], logits[4] = 1.2, 3.5  # their exact logits; 2.2 could still reach 3.5, 5.5 and 1.0 could not cross
    assert band.to_refine(logits, 2, {3, 4}) == [2]
    logits[2] = 2.3
    assert band.to_refine(logits, 2, {2, 3, 4}) == []


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
