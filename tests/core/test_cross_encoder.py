"""CrossEncoderScorer on a real (tiny) sentence-transformers model loaded from disk."""

from __future__ import annotations

import math
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from sentence_transformers import CrossEncoder

from rerank_kit import CrossEncoderScorer, Reranker, model_registry

QUERY = "how do i reset my password"
TEXTS = [
    "reset password account login",
    "python error traceback keyerror",
    "the cat and the dog",
    "forgot password email",
    "paris is the capital city of france",
]


def test_scores_equal_cross_encoder_predict(tiny_cross_encoder):
    scorer = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True)
    expected = CrossEncoder(tiny_cross_encoder).predict([(QUERY, t) for t in TEXTS])
    assert scorer.score(QUERY, TEXTS) == pytest.approx(expected.tolist(), abs=1e-5)


def test_raw_activation_gives_the_logits(tiny_cross_encoder):
    scorer = CrossEncoderScorer(tiny_cross_encoder, activation="raw", local_files_only=True)
    expected = CrossEncoder(tiny_cross_encoder).predict([(QUERY, t) for t in TEXTS], activation_fn=torch.nn.Identity())
    assert scorer.score(QUERY, TEXTS) == pytest.approx(expected.tolist(), abs=1e-5)


def test_two_logit_models_score_the_probability_of_relevant(tiny_two_logit_cross_encoder):
    scorer = CrossEncoderScorer(tiny_two_logit_cross_encoder, local_files_only=True)
    logits = CrossEncoder(tiny_two_logit_cross_encoder).predict([(QUERY, t) for t in TEXTS])
    expected = torch.softmax(torch.tensor(logits), dim=1)[:, 1].tolist()
    assert scorer.score(QUERY, TEXTS) == pytest.approx(expected, abs=1e-5)


def test_scores_are_python_floats(tiny_cross_encoder):
    scores = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True).score(QUERY, TEXTS[:2])
    assert all(type(score) is float for score in scores)


def test_texts_longer_than_max_length_are_truncated_not_rejected(tiny_cross_encoder):
    scorer = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True)
    long_text = "password " * 5000
    [score] = scorer.score(QUERY, [long_text])
    expected = CrossEncoder(tiny_cross_encoder).predict([(QUERY, long_text)])[0]
    assert math.isfinite(score) and score == pytest.approx(float(expected), abs=1e-5)


def test_batching_and_packing_do_not_change_scores(tiny_cross_encoder):
    one_by_one = CrossEncoderScorer(tiny_cross_encoder, batch_size=1, local_files_only=True)
    packed = CrossEncoderScorer(tiny_cross_encoder, batch_size=64, max_tokens_per_batch=100, local_files_only=True)
    requests = [(QUERY, TEXTS), ("python keyerror", TEXTS[::-1])]
    expected = [one_by_one.score(q, t) for q, t in requests]
    for got, want in zip(packed.score_many(requests), expected):
        assert got == pytest.approx(want, abs=1e-5)


def test_model_loads_lazily_and_not_for_an_empty_list(tiny_cross_encoder):
    model_registry.clear()
    reranker = Reranker(CrossEncoderScorer(tiny_cross_encoder, local_files_only=True))
    assert reranker.rerank(QUERY, []) == []
    assert model_registry.load_count == {}


def test_rerankers_on_the_same_model_share_one_load(tiny_cross_encoder):
    model_registry.clear()
    first = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True)
    second = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True, batch_size=4)
    first.score(QUERY, TEXTS)
    second.score(QUERY, TEXTS)
    assert first.engine is second.engine
    assert list(model_registry.load_count.values()) == [1]


def test_concurrent_threads_on_one_model_match_serial_scores(tiny_cross_encoder):
    scorer = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True)
    reranker = Reranker(scorer, top_n=None, cache=False)
    queries = [f"{QUERY} {i % 5}" for i in range(50)]
    serial = [reranker.rerank(q, TEXTS) for q in queries]

    def run_all(_: int) -> list:
        return [reranker.rerank(q, TEXTS) for q in queries]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(run_all, range(8)))
    for outcome in outcomes:
        for got, want in zip(outcome, serial):
            assert [r.index for r in got] == [r.index for r in want]
            assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-6)


def test_repeated_call_is_served_from_the_score_cache(tiny_cross_encoder):
    scorer = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True)
    reranker = Reranker(scorer)
    first = reranker.rerank(QUERY, TEXTS)
    hits = scorer.shared_cache.hits
    assert reranker.rerank(QUERY, TEXTS) == first
    assert scorer.shared_cache.hits == hits + len(TEXTS)


def test_fast_mode_gives_the_exact_scores_within_1e_4(tiny_cross_encoder):
    exact = CrossEncoderScorer(tiny_cross_encoder, activation="raw", local_files_only=True).score(QUERY, TEXTS)
    fast = CrossEncoderScorer(tiny_cross_encoder, activation="raw", mode="fast", local_files_only=True)
    tolerance = 1e-4 if fast.precision == "float32" else 0.1
    assert fast.score(QUERY, TEXTS) == pytest.approx(exact, abs=tolerance)
    assert fast.score("python keyerror", TEXTS[:3]) == pytest.approx(
        CrossEncoderScorer(tiny_cross_encoder, activation="raw", local_files_only=True).score("python keyerror", TEXTS[:3]),
        abs=tolerance,
    )


def test_missing_model_fails_without_downloading(tmp_path):
    scorer = CrossEncoderScorer(str(tmp_path / "no-such-model"), local_files_only=True)
    with pytest.raises(OSError):
        scorer.score(QUERY, TEXTS)


def test_missing_extra_names_the_install_command_at_construction(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r'pip install "rerank-kit\[cross-encoder\]"'):
        CrossEncoderScorer(str(tmp_path / "model-not-loaded-yet"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": ""}, "model"),
        ({"activation": "softmax"}, "activation"),
        ({"mode": "turbo"}, "mode"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_length": -5}, "max_length"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CrossEncoderScorer(**kwargs)


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
@pytest.mark.parametrize("warmup", [False, True])
def test_bert_family_models_run_packed_with_the_cls_only_last_layer_and_identical_scores(tmp_path, model_type, warmup):
    from tests.conftest import build_tiny_cross_encoder

    path = str(build_tiny_cross_encoder(tmp_path / model_type, model_type=model_type))
    scorer = CrossEncoderScorer(path, activation="raw", warmup=warmup, batch_size=3, local_files_only=True)
    assert scorer.engine.cls_forward is not None and scorer.engine.cls_forward.packed  # CPU: no padding anywhere
    model, tokenizer = scorer.engine.model, scorer.engine.tokenizer
    texts = [*TEXTS, " ".join(TEXTS) * 3]  # one pair truncated to max_length, batches of mixed lengths
    features = tokenizer([QUERY] * len(texts), texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        full = model(**features).logits[:, 0].tolist()
    assert scorer.score(QUERY, texts) == pytest.approx(full, abs=1e-5)


def test_the_padded_pass_for_other_devices_matches_the_models_own_forward(tiny_cross_encoder):
    from rerank_kit.scorers.local.forward import CLSForward

    engine = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True).engine
    padded = CLSForward(engine.model)
    padded.packed = False  # what a GPU runs: one masked attention call per padded batch
    texts = [*TEXTS, " ".join(TEXTS) * 3]
    encoded = engine.tokenizer([QUERY] * len(texts), texts, truncation=True, max_length=64)
    features = engine.tokenizer([QUERY] * len(texts), texts, padding=True, truncation=True, max_length=64,
                                return_tensors="pt")
    with torch.inference_mode():
        got = padded(**padded.inputs(encoded, list(range(len(texts))), engine.tokenizer))[:, 0].tolist()
        assert got == pytest.approx(engine.model(**features).logits[:, 0].tolist(), abs=1e-5)


def test_warm_up_falls_back_to_eager_when_compilation_fails(tiny_cross_encoder, monkeypatch, caplog):
    def compiler_missing(function, **options):
        def fail(**features):
            raise RuntimeError("no C++ compiler found")

        return fail

    model_registry.clear()
    monkeypatch.setattr(torch, "compile", compiler_missing)
    warmed = CrossEncoderScorer(tiny_cross_encoder, warmup=True, local_files_only=True)
    assert warmed.engine.forward.current(False) is warmed.engine.forward.eager(False)
    assert warmed.score(QUERY, TEXTS) == pytest.approx(CrossEncoderScorer(tiny_cross_encoder).score(QUERY, TEXTS))
    assert "torch.compile failed (RuntimeError: no C++ compiler found)" in caplog.text


def test_a_loaded_cross_encoder_object_is_reused_as_the_model(tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    loaded = CrossEncoder(tiny_cross_encoder, local_files_only=True)

    class HuggingFaceCrossEncoderLike:
        """LangChain's HuggingFaceCrossEncoder keeps its CrossEncoder as ``client``."""

        client = loaded

    by_path = CrossEncoderScorer(tiny_cross_encoder, local_files_only=True)
    for given in (loaded, HuggingFaceCrossEncoderLike()):
        scorer = CrossEncoderScorer(given)
        assert scorer.score(QUERY, TEXTS) == pytest.approx(by_path.score(QUERY, TEXTS), abs=1e-5)
        assert scorer.engine.cross_encoder is loaded and scorer.name == tiny_cross_encoder
    with pytest.raises(ValueError, match="CrossEncoder"):
        CrossEncoderScorer(object())
