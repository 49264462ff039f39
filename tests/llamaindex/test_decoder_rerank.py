"""A decoder reranker (Qwen3-Reranker shape) through LlamaIndex's CrossEncoderRerank."""

from __future__ import annotations

import json

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from llamaindex_rerankers import CrossEncoderRerank
from rerank_kit import CrossEncoderScorer

TEXTS = ["reset password account login", "python error traceback keyerror", "forgot password email reset", "the cat"]


def test_decoder_reranker_scores_nodes_as_the_core(tiny_qwen3_reranker):
    nodes = [NodeWithScore(node=TextNode(text=text, id_=f"n{i}"), score=0.0) for i, text in enumerate(TEXTS)]
    reranker = CrossEncoderRerank(model=tiny_qwen3_reranker, instruction="Find the fix", local_files_only=True, top_n=2)
    out = reranker.postprocess_nodes(nodes, query_str="reset my password")
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    expected = CrossEncoderScorer(tiny_qwen3_reranker, instruction="Find the fix", local_files_only=True).score(
        "reset my password", texts)
    best = sorted(range(len(TEXTS)), key=lambda i: -expected[i])[:2]
    assert [n.node.metadata["original_index"] for n in out] == best
    assert [n.score for n in out] == pytest.approx([expected[i] for i in best], abs=1e-6)
    assert json.loads(reranker.to_json())["instruction"] == "Find the fix"
