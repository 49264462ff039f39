"""Decoder rerankers in the local engine against each model card's recipe, on tiny random models built here.

Every reference below is written from the model card alone (plain transformers forward, one pair at a time,
no padding), never from rerank-kit's recipe data, so a wrong template string fails here.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from rerank_kit import CrossEncoderScorer, PromptTemplate, Reranker, model_registry
from rerank_kit.cli.main import main
from rerank_kit.scorers.local.decoder_engine import DecoderEngine
from tests.conftest import WORDS
from tests.core.test_cross_encoder import QUERY
from tests.core.test_cross_encoder import TEXTS as CROSS_ENCODER_TEXTS
from tests.decoder_models import build_decoder_reranker, build_seq_cls_conversion

TEXTS = [*CROSS_ENCODER_TEXTS, "2024 (see) rain: a document starting with digits and punctuation"]
LONG = " ".join(WORDS[i % len(WORDS)] for i in range(300))
MIXED = [(QUERY, TEXTS), ("python keyerror exception", [TEXTS[1] * 6, "cat", LONG[:400], TEXTS[0] * 3])]
INSTRUCTION = "Given a support question, find the passage that solves it"
TRUNCATE_AT = 160

QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
MXBAI_PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
)
MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
MXBAI_TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)
BGE_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by providing "
    "a prediction of either 'Yes' or 'No'."
)


class Reference:
    """A model card's recipe on one loaded model, one pair at a time."""

    def __init__(self, path: str, classifier: bool = False) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        auto = AutoModelForSequenceClassification if classifier else AutoModelForCausalLM
        self.model = auto.from_pretrained(path, dtype=torch.float32).eval()

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def token(self, text: str) -> int:
        return self.tokenizer.convert_tokens_to_ids(text)

    def last_logits(self, ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return self.model(torch.tensor([ids])).logits[0, -1]


def qwen3_prompt(ref: Reference, query: str, doc: str, instruction: str | None, max_length: int) -> list[int]:
    """Qwen3-Reranker model card: prefix + body truncated to fit + suffix."""
    prefix, suffix = ref.ids(QWEN3_PREFIX), ref.ids(QWEN3_SUFFIX)
    body = f"<Instruct>: {instruction or QWEN3_INSTRUCTION}\n<Query>: {query}\n<Document>: {doc}"
    body_ids = ref.tokenizer(body, add_special_tokens=False, truncation=True,
                             max_length=max_length - len(prefix) - len(suffix))["input_ids"]
    return prefix + body_ids + suffix


def qwen3_reference(ref: Reference, query: str, doc: str, instruction: str | None, max_length: int) -> float:
    """P(yes) from log-softmax over the logits of ["no", "yes"] at the last position."""
    logits = ref.last_logits(qwen3_prompt(ref, query, doc, instruction, max_length))
    pair = torch.log_softmax(torch.stack([logits[ref.token("no")], logits[ref.token("yes")]]), dim=0)
    return pair[1].exp().item()


def mxbai_reference(ref: Reference, query: str, doc: str, instruction: str | None, max_length: int) -> float:
    """mxbai-rerank-v2: chat prefix, query (+instruction), sep, document (cut), sep, task, suffix; sigmoid(1 - 0)."""
    query_prompt = (f"instruction: {instruction}\n" if instruction else "") + f"query: {query}"
    sep, task = ref.ids("\n"), ref.ids(MXBAI_TASK)
    prefix, suffix, query_ids = ref.ids(MXBAI_PREFIX), ref.ids(MXBAI_SUFFIX), ref.ids(query_prompt)
    budget = max_length - len(prefix) - len(query_ids) - 2 * len(sep) - len(task) - len(suffix)
    ids = prefix + query_ids + sep + ref.ids(f"document: {doc}")[:budget] + sep + task + suffix
    logits = ref.last_logits(ids)
    return torch.sigmoid(logits[ref.ids("1")[0]] - logits[ref.ids("0")[0]]).item()


def bge_gemma_reference(ref: Reference, query: str, doc: str, instruction: str | None, max_length: int) -> float:
    """bge-reranker-v2-gemma: bos, "A: query", sep, "B: passage" (cut to fit), sep, prompt; the logit of "Yes"."""
    sep, prompt = ref.ids("\n"), ref.ids(instruction or BGE_PROMPT)
    head = [ref.tokenizer.bos_token_id] + ref.ids(f"A: {query}") + sep
    budget = max_length - len(head) - len(sep) - len(prompt)
    ids = head + ref.ids(f"B: {doc}")[:budget] + sep + prompt
    return ref.last_logits(ids)[ref.ids("Yes")[0]].item()


def seq_cls_reference(ref: Reference, query: str, doc: str, instruction: str | None, max_length: int) -> float:
    """A sequence-classification conversion: its one logit on the Qwen3-Reranker prompt, through a sigmoid."""
    with torch.no_grad():
        logit = ref.model(torch.tensor([qwen3_prompt(ref, query, doc, instruction, max_length)])).logits[0, 0]
    return torch.sigmoid(logit).item()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_qwen3_reranker: str) -> dict[str, str]:
    """The tiny models: mxbai's folder name matches no family, so it is recognized from its config (qwen2)."""
    root = tmp_path_factory.mktemp("decoders")
    return {
        "qwen3": tiny_qwen3_reranker,
        "mxbai": str(build_decoder_reranker(root / "tiny-mxbai", "mxbai-rerank-v2", seed=1)),
        "gemma": str(build_decoder_reranker(root / "bge-reranker-v2-gemma", "bge-reranker-v2-gemma", seed=2)),
        "llama": str(build_decoder_reranker(root / "tiny-llama", "llama", seed=3)),
        "seq-cls": str(build_seq_cls_conversion(Path(tiny_qwen3_reranker), root / "qwen3-reranker-seq-cls")),
    }


#: family -> (reference, activation that gives the model card's score, reference loads a classifier)
FAMILIES: dict[str, tuple[Callable[..., float], str, bool]] = {
    "qwen3": (qwen3_reference, "sigmoid", False),
    "mxbai": (mxbai_reference, "sigmoid", False),
    "gemma": (bge_gemma_reference, "raw", False),
    "seq-cls": (seq_cls_reference, "sigmoid", True),
}


@pytest.fixture(scope="module")
def references(models: dict[str, str]) -> dict[str, Reference]:
    return {family: Reference(models[family], classifier) for family, (_, _, classifier) in FAMILIES.items()}


def expected(family: str, ref: Reference, requests: list[tuple[str, list[str]]], **settings: Any) -> list[list[float]]:
    reference = FAMILIES[family][0]
    instruction, max_length = settings.get("instruction"), settings.get("max_length") or 512
    return [[reference(ref, query, doc, instruction, max_length) for doc in docs] for query, docs in requests]


SCENARIOS: dict[str, tuple[list[tuple[str, list[str]]], dict[str, Any]]] = {
    "single-pair": ([(QUERY, TEXTS[:1])], {}),
    "mixed-lengths-padded-batches": (MIXED, {"batch_size": 3, "max_tokens_per_batch": 500}),
    "truncated-long-documents": ([(QUERY, [LONG, TEXTS[0], LONG[:900]])], {"max_length": TRUNCATE_AT}),
    "instruction": (MIXED, {"instruction": INSTRUCTION, "batch_size": 2}),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("family", FAMILIES)
def test_scores_equal_the_model_card_recipe(family, scenario, models, references):
    requests, settings = SCENARIOS[scenario]
    scorer = CrossEncoderScorer(models[family], activation=FAMILIES[family][1], local_files_only=True, **settings)
    got = scorer.score_many(requests)
    want = expected(family, references[family], requests, **settings)
    for got_scores, want_scores in zip(got, want):
        assert got_scores == pytest.approx(want_scores, abs=1e-4)
    assert isinstance(scorer.engine, DecoderEngine)


def test_truncation_cuts_only_the_document_and_keeps_the_answer_position(models):
    scorer = CrossEncoderScorer(models["qwen3"], max_length=TRUNCATE_AT, local_files_only=True)
    engine = scorer.engine
    [long_ids, short_ids] = engine.encode([(QUERY, LONG), (QUERY, "cat")], scorer.decoder_prompt(engine))
    suffix = engine.tokenizer(QWEN3_SUFFIX, add_special_tokens=False)["input_ids"]
    assert len(long_ids) == TRUNCATE_AT and len(short_ids) < TRUNCATE_AT
    assert long_ids[-len(suffix):] == short_ids[-len(suffix):] == suffix
    query_ids = engine.tokenizer(f"<Query>: {QUERY}", add_special_tokens=False)["input_ids"]
    assert any(long_ids[i:i + len(query_ids)] == query_ids for i in range(len(long_ids)))


def test_a_query_longer_than_max_length_keeps_the_query_and_warns(models, caplog):
    scorer = CrossEncoderScorer(models["qwen3"], max_length=40, local_files_only=True)
    with caplog.at_level(logging.WARNING, logger="rerank_kit.cross_encoder"):
        [score] = scorer.score(QUERY + " and more" * 5, ["reset password"])
    assert 0 < score < 1 and "over max_length=40" in caplog.text


def test_a_renamed_seq_cls_conversion_needs_the_family_named(models, references, tmp_path):
    renamed = shutil.copytree(models["seq-cls"], tmp_path / "my-classifier")
    scorer = CrossEncoderScorer(str(renamed), prompt_template="qwen3-reranker", local_files_only=True)
    assert scorer.score(QUERY, TEXTS) == pytest.approx(expected("seq-cls", references["seq-cls"], [(QUERY, TEXTS)])[0],
                                                       abs=1e-4)
    assert not isinstance(CrossEncoderScorer(str(renamed), local_files_only=True).engine, DecoderEngine)


def test_the_seq_cls_conversion_scores_as_the_causal_reranker(models):
    causal = CrossEncoderScorer(models["qwen3"], local_files_only=True).score_many(MIXED)
    classifier = CrossEncoderScorer(models["seq-cls"], local_files_only=True).score_many(MIXED)
    for a, b in zip(causal, classifier):
        assert a == pytest.approx(b, abs=1e-4)


@pytest.mark.parametrize("instruction", [None, "Prefer passages about accounts"])
def test_a_prompt_template_scores_a_model_of_no_known_family(models, instruction):
    template = "<bos>Task: {instruction}\nQuestion: {query}\nPassage: {document}\nRelevant (Yes or No):"
    scorer = CrossEncoderScorer(models["llama"], prompt_template=PromptTemplate(template=template, yes="Yes", no="No"),
                                instruction=instruction, local_files_only=True, batch_size=2)
    ref = Reference(models["llama"])
    want = []
    for text in TEXTS:
        filled = template.replace("{instruction}", instruction or "").replace("{query}", QUERY)
        logits = ref.last_logits(ref.ids(filled.replace("{document}", text)))
        want.append(torch.sigmoid(logits[ref.ids("Yes")[0]] - logits[ref.ids("No")[0]]).item())
    assert scorer.score(QUERY, TEXTS) == pytest.approx(want, abs=1e-4)


def test_a_causal_lm_of_no_known_family_names_what_is_missing(models):
    with pytest.raises(ValueError, match=r"LlamaForCausalLM.*model_type 'llama'.*prompt_template"):
        CrossEncoderScorer(models["llama"], local_files_only=True).score(QUERY, TEXTS)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt_template": "Question: {query}\nRelevant:"}, r"no \{document\} placeholder"),
        ({"prompt_template": "qwen4-reranker"}, "neither a known family"),
        ({"prompt_template": "{query} {document} {document}"}, "exactly once"),
        ({"prompt_template": {"template": "{query} {document}", "answer": "yes"}}, "answer"),
    ],
)
def test_a_bad_prompt_template_fails_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        CrossEncoderScorer(**options)


def test_an_answer_that_is_not_one_token_or_an_unused_instruction_is_an_error(models):
    multi = PromptTemplate(template="Q: {query}\nD: {document}\nA:", yes="yes indeed")
    with pytest.raises(ValueError, match=r"answer 'yes indeed' is \d+ tokens"):
        CrossEncoderScorer(models["llama"], prompt_template=multi, local_files_only=True).score(QUERY, TEXTS)
    no_slot = PromptTemplate(template="Q: {query}\nD: {document}\nA:")
    with pytest.raises(ValueError, match=r"no \{instruction\} placeholder"):
        CrossEncoderScorer(models["llama"], prompt_template=no_slot, instruction="x", local_files_only=True).score(
            QUERY, TEXTS)


def test_cache_keys_follow_template_and_instruction(models):
    base = CrossEncoderScorer(models["qwen3"]).cache_key
    assert CrossEncoderScorer(models["qwen3"]).cache_key == base
    others = {
        CrossEncoderScorer(models["qwen3"], instruction=INSTRUCTION).cache_key,
        CrossEncoderScorer(models["qwen3"], prompt_template="qwen3-reranker").cache_key,
        CrossEncoderScorer(models["qwen3"], prompt_template=PromptTemplate(template="{query} {document}")).cache_key,
        CrossEncoderScorer(models["qwen3"], prompt_template=PromptTemplate(template="{query} {document}", yes="Yes")
                           ).cache_key,
    }
    assert len(others) == 4 and base not in others


def test_batches_are_length_sorted_and_bounded_by_the_token_budget(models):
    scorer = CrossEncoderScorer(models["qwen3"], batch_size=4, max_tokens_per_batch=600, local_files_only=True)
    engine = scorer.engine
    shapes: list[tuple[int, int]] = []
    eager = engine.forward.eager(False)

    def recording(**features: Any) -> Any:
        shapes.append(tuple(features["input_ids"].shape))
        return eager(**features)

    engine.forward._eager[False] = recording
    try:
        scorer.score_many(MIXED * 3)
    finally:
        engine.forward._eager[False] = eager
    assert len(shapes) > 3
    assert all(rows <= 4 and (rows == 1 or rows * width <= 600) for rows, width in shapes)
    assert [width for _, width in shapes] == sorted((width for _, width in shapes), reverse=True)


def test_one_load_shared_and_concurrent_threads_match_serial_scores(models):
    model_registry.clear()
    scorer = CrossEncoderScorer(models["qwen3"], local_files_only=True)
    reranker = Reranker(scorer, top_n=None, cache=False)
    queries = [f"{QUERY} {WORDS[i]}" for i in range(8)]
    serial = [[r.score for r in reranker.rerank(q, TEXTS)] for q in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda _: [[r.score for r in reranker.rerank(q, TEXTS)] for q in queries], range(4)))
    for outcome in outcomes:
        for got, want in zip(outcome, serial):
            assert got == pytest.approx(want, abs=1e-6)
    assert CrossEncoderScorer(models["qwen3"], batch_size=2, local_files_only=True).engine is scorer.engine
    assert list(model_registry.load_count.values()) == [1]


def test_fast_mode_ranks_as_exact_mode(models, caplog):
    exact = CrossEncoderScorer(models["qwen3"], activation="raw", local_files_only=True).score(QUERY, TEXTS)
    fast = CrossEncoderScorer(models["qwen3"], activation="raw", mode="fast", local_files_only=True)
    tolerance = 1e-4 if fast.precision == "float32" else 0.1  # bf16 on GPUs and AMX CPUs
    assert fast.score(QUERY, TEXTS) == pytest.approx(exact, abs=tolerance)
    assert "torch.compile failed" not in caplog.text


def test_cli_rerank_scores_with_a_decoder_reranker(models, references, tmp_path):
    source, sink = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    assert main(["rerank", "-r", f"cross-encoder:{models['qwen3']}", "--query", QUERY, "--input", str(source),
                 "--output", str(sink)]) == 0
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    want = expected("qwen3", references["qwen3"], [(QUERY, TEXTS)])[0]
    assert all(math.isclose(line["relevance_score"], want[line["original_index"]], abs_tol=1e-4) for line in lines)
    assert [line["original_index"] for line in lines] == sorted(range(len(want)), key=lambda i: -want[i])[: len(lines)]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"instruction": "Find the fix"}, "instruction= is for decoder rerankers"),
     ({"prompt_template": "qwen3-reranker"}, "prompt_template is for decoder rerankers")],
)
def test_decoder_options_on_a_bert_cross_encoder_are_an_error(tiny_cross_encoder, options, message):
    with pytest.raises(ValueError, match=message):
        CrossEncoderScorer(tiny_cross_encoder, local_files_only=True, **options).score(QUERY, TEXTS)
