"""A decoder reranker (Qwen3-Reranker shape) through LangChain's CrossEncoderRerank, options included."""

from __future__ import annotations

import pickle

import pytest
from langchain_core.documents import Document

from langchain_rerankers import CrossEncoderRerank
from rerank_kit import CrossEncoderScorer

TEXTS = ["reset password account login", "python error traceback keyerror", "forgot password email reset", "the cat"]
INSTRUCTION = "Given a support question, find the passage that solves it"


def test_decoder_reranker_scores_as_the_core_with_instruction_and_after_changes(tiny_qwen3_reranker):
    documents = [Document(page_content=text, id=f"d{i}") for i, text in enumerate(TEXTS)]
    reranker = CrossEncoderRerank(model=tiny_qwen3_reranker, instruction=INSTRUCTION, local_files_only=True, top_n=None)
    core = CrossEncoderScorer(tiny_qwen3_reranker, instruction=INSTRUCTION, local_files_only=True)
    expected = core.score("reset my password", TEXTS)
    out = reranker.compress_documents(documents, "reset my password")
    assert [d.metadata["relevance_score"] for d in out] == pytest.approx(
        [expected[d.metadata["original_index"]] for d in out], abs=1e-6)

    reranker.instruction = None  # the family's default instruction, on the next call
    default = CrossEncoderScorer(tiny_qwen3_reranker, local_files_only=True).score("reset my password", TEXTS)
    again = pickle.loads(pickle.dumps(reranker)).compress_documents(documents, "reset my password")
    assert [d.metadata["relevance_score"] for d in again] == pytest.approx(
        [default[d.metadata["original_index"]] for d in again], abs=1e-6)
    assert default != pytest.approx(expected, abs=1e-6)
