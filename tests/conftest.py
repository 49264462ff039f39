"""Shared fixtures: a tiny BERT cross-encoder built offline, and a deterministic keyword scorer."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rerank_kit import Scorer  # noqa: E402
from tests.messages_server import serve  # noqa: E402, F401  (fixture: a scripted Messages API server)

WORDS = (
    "the a an is of to in and or how do i my what why when reset password account login email forgot "
    "python error exception traceback keyerror valueerror import module file list dict key value "
    "cat dog paris france capital city river weather rain sun coffee tea bank money interest rate"
).split()


def build_tiny_cross_encoder(path: Path, num_labels: int = 1, seed: int = 0, model_type: str = "bert") -> Path:
    """Save a 2-layer BERT (or RoBERTa) sequence classifier with a word-level vocab to ``path``."""
    import torch
    from transformers import (BertConfig, BertForSequenceClassification, BertTokenizerFast, RobertaConfig,
                              RobertaForSequenceClassification)

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz"]
    (path / "vocab.txt").write_text("\n".join(vocab))
    tokenizer = BertTokenizerFast(str(path / "vocab.txt"), model_max_length=64)
    shape = {"vocab_size": len(vocab), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "num_labels": num_labels}
    torch.manual_seed(seed)
    if model_type == "roberta":  # positions start after the padding index; two segment types for the BERT vocab
        config = RobertaConfig(**shape, max_position_embeddings=130, pad_token_id=0, type_vocab_size=2)
        model = RobertaForSequenceClassification(config)
        head = model.classifier.out_proj
    else:
        model = BertForSequenceClassification(BertConfig(**shape, max_position_embeddings=128))
        head = model.classifier
    with torch.no_grad():
        head.weight.mul_(40.0)  # spread scores so orderings are not all near-ties
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a tiny 1-logit cross-encoder, max_length 64."""
    return str(build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce")))


@pytest.fixture(scope="session")
def tiny_two_logit_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a tiny cross-encoder with two output logits (not relevant, relevant)."""
    return str(build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce2"), num_labels=2, seed=1))


@pytest.fixture(scope="session")
def tiny_qwen3_reranker(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a tiny random Qwen3ForCausalLM reranker with its own tokenizer (tests/decoder_models.py)."""
    from tests.decoder_models import build_decoder_reranker

    return str(build_decoder_reranker(tmp_path_factory.mktemp("tiny") / "qwen3-reranker", "qwen3-reranker"))


class KeywordScorer(Scorer):
    """Deterministic scorer: the number of query words found in the text. Counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        self.calls.append((query, list(texts)))
        words = set(query.lower().split())
        return [float(len(words & set(text.lower().split()))) for text in texts]


@pytest.fixture
def keyword_scorer() -> KeywordScorer:
    return KeywordScorer()
