"""CPU decoder reranker speed: rerank-kit against the Qwen3-Reranker model card's transformers recipe.

Both run in one process on a model of Qwen3-Reranker-0.6B's shape (random weights; hidden 1024, 28 layers,
16 query / 8 key-value heads, vocab 151,936) and the same deterministic workload, interleaved query by query.
The model card's recipe is copied as written (batches of 8 in input order, left padding, the full LM head at
every position, ``log_softmax`` over ["no", "yes"]). Prints docs/s, ratios, p50 latency per query, score fidelity
(exact mode vs the recipe: max |diff| and identical rankings; fast mode vs exact: top-10 and Spearman) and peak
memory for 100 and 1,000 candidates; writes a markdown table with the CPU's features.

    python benchmarks/decoder_speed.py                              # 4 queries x 10 passages (~10 min, 2 cores)
    python benchmarks/decoder_speed.py --queries 20 --passages 50   # the issue's workload (~2 h on 2 cores)

The memory check scores 100 and 1,000 candidates of ~100 tokens in fresh processes on a model of the same
shape but ``--memory-layers`` deep (default 2, so it takes minutes, not hours): activations are per layer and
bounded by ``max_tokens_per_batch``, so depth adds only its weights, which the table lists.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402

TOP_N = 10
HERE = Path(__file__).resolve().parent


class ModelCardQwen3Reranker:
    """The Qwen3-Reranker model card's code, as written there (transformers, batch 8, max_length 8192)."""

    prefix = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
        'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    )
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    task = "Given a web search query, retrieve relevant passages that answer the query"

    def __init__(self, path: str, batch_size: int = 8, max_length: int = 8192) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        self.token_false_id = self.tokenizer.convert_tokens_to_ids("no")
        self.token_true_id = self.tokenizer.convert_tokens_to_ids("yes")
        self.prefix_tokens = self.tokenizer.encode(self.prefix, add_special_tokens=False)
        self.suffix_tokens = self.tokenizer.encode(self.suffix, add_special_tokens=False)
        self.batch_size, self.max_length = batch_size, max_length

    def process_inputs(self, pairs: list[str]) -> Any:
        inputs = self.tokenizer(
            pairs, padding=False, truncation="longest_first", return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
        )
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix_tokens + ele + self.suffix_tokens
        inputs = self.tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=self.max_length)
        return {key: value.to(self.model.device) for key, value in inputs.items()}

    def compute_logits(self, inputs: Any) -> list[float]:
        with self.torch.no_grad():
            batch_scores = self.model(**inputs).logits[:, -1, :]
            true_vector = batch_scores[:, self.token_true_id]
            false_vector = batch_scores[:, self.token_false_id]
            batch_scores = self.torch.stack([false_vector, true_vector], dim=1)
            batch_scores = self.torch.nn.functional.log_softmax(batch_scores, dim=1)
            return batch_scores[:, 1].exp().tolist()

    def score(self, query: str, passages: list[str]) -> list[float]:
        pairs = [f"<Instruct>: {self.task}\n<Query>: {query}\n<Document>: {doc}" for doc in passages]
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            scores += self.compute_logits(self.process_inputs(pairs[start : start + self.batch_size]))
        return scores


def build_contenders(model_path: str) -> dict[str, Any]:
    """Each contender scores one query's passages, returning one score per passage in input order."""
    from rerank_kit import CrossEncoderScorer, Reranker

    card = ModelCardQwen3Reranker(model_path)
    exact = Reranker(CrossEncoderScorer(model_path), top_n=None, cache=False)
    fast = Reranker(CrossEncoderScorer(model_path, mode="fast"), top_n=None, cache=False)

    def scores_of(reranker: Reranker) -> Any:
        def run(query: str, passages: list[str]) -> list[float]:
            by_index = {result.index: result.score for result in reranker.rerank(query, passages)}
            return [by_index[i] for i in range(len(passages))]

        return run

    return {
        "model card recipe (transformers, batch 8)": card.score,
        "rerank-kit exact": scores_of(exact),
        "rerank-kit fast": scores_of(fast),
    }


def fidelity(outputs: dict[str, list[list[float]]]) -> dict[str, float]:
    """Exact vs the model card (max |diff|, identical rankings); fast vs exact (top-10 agreement, Spearman)."""
    from scipy.stats import spearmanr

    card, exact, fast = outputs.values()
    order = lambda scores: sorted(range(len(scores)), key=lambda i: -scores[i])  # noqa: E731
    top = lambda scores: set(order(scores)[:TOP_N])  # noqa: E731
    return {
        "max_abs_diff": max(abs(a - b) for want, got in zip(card, exact) for a, b in zip(want, got)),
        "same_rankings": statistics.mean(order(want) == order(got) for want, got in zip(card, exact)),
        "fast_top10": statistics.mean(len(top(a) & top(b)) / min(TOP_N, len(a)) for a, b in zip(exact, fast)),
        "fast_spearman": statistics.mean(spearmanr(a, b).statistic for a, b in zip(exact, fast)),
    }


def peak_rss_mb(model_path: str, candidates: int) -> float:
    """Peak RSS of a fresh process scoring ``candidates`` passages of ~100 tokens with rerank-kit (exact mode)."""
    return workload.peak_rss_mb(
        "import workload\nfrom rerank_kit import CrossEncoderScorer\n"
        f"[(query, passages)] = workload.workload(1, {candidates}, seed=7, min_words=60, max_words=90)\n"
        f"CrossEncoderScorer({model_path!r}).score(query, passages)\n"
    )


def mean_prompt_tokens(model_path: str, requests: list[tuple[str, list[str]]]) -> float:
    """Mean tokens per (query, passage) prompt as rerank-kit builds it (template included)."""
    from rerank_kit import CrossEncoderScorer

    scorer = CrossEncoderScorer(model_path)
    engine = scorer.engine
    lengths = [len(ids) for query, passages in requests
               for ids in engine.encode([(query, p) for p in passages], scorer.decoder_prompt(engine))]
    return sum(lengths) / len(lengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=4, help="queries in the workload (default 4)")
    parser.add_argument("--passages", type=int, default=10, help="passages per query (default 10)")
    parser.add_argument("--min-words", type=int, default=100, help="shortest passage in words (default 100)")
    parser.add_argument("--max-words", type=int, default=200, help="longest passage in words (default 200)")
    parser.add_argument("--memory-layers", type=int, default=2, help="depth of the memory-check model (default 2)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "rerank-kit-bench")
    parser.add_argument("--out", type=Path, default=HERE / "decoder_speed.md", help="markdown output")
    args = parser.parse_args()

    model_path = str(workload.qwen3_reranker_shaped(args.cache_dir))
    requests = workload.workload(args.queries, args.passages, min_words=args.min_words, max_words=args.max_words)
    pairs = args.queries * args.passages
    seconds, outputs = workload.time_interleaved(build_contenders(model_path), requests)
    quality = fidelity(outputs)
    memory_model = workload.qwen3_reranker_shaped(args.cache_dir, layers=args.memory_layers)
    memory = {n: peak_rss_mb(str(memory_model), n) for n in (100, 1000)}
    weights_mb = {path: (Path(path) / "model.safetensors").stat().st_size / 2**20
                  for path in (model_path, str(memory_model))}
    from rerank_kit import CrossEncoderScorer

    fast_precision = CrossEncoderScorer(model_path, mode="fast").precision
    rates = {name: pairs / sum(times) for name, times in seconds.items()}
    anchor = next(iter(rates))
    command = "python benchmarks/decoder_speed.py" + "".join(
        f" --{flag.replace('_', '-')} {value}" for flag, value in vars(args).items()
        if flag not in ("cache_dir", "out") and value != parser.get_default(flag))

    lines = [
        f"# Decoder reranker speed ({args.queries} queries x {args.passages} passages)",
        "",
        f"Model: random weights in Qwen3-Reranker-0.6B's shape (hidden 1024, 28 layers, GQA 16/8 heads, vocab "
        f"151,936), float32. Workload: {args.queries} queries x {args.passages} passages of {args.min_words}-"
        f"{args.max_words} words, mean {mean_prompt_tokens(model_path, requests):.0f} tokens per prompt with the "
        f"template. {workload.cpu_features()}. Command: `{command}`.",
        "",
        "| contender | docs/s | x model card | p50 s/query |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, rate in rates.items():
        lines.append(f"| {name} | {rate:.2f} | {rate / rates[anchor]:.2f} | {statistics.median(seconds[name]):.2f} |")
    lines += [
        "",
        "| check | result |",
        "| --- | --- |",
        f"| exact mode vs the model card recipe, max abs score diff | {quality['max_abs_diff']:.2e} |",
        f"| exact mode vs the model card recipe, queries ranked identically | {quality['same_rankings']:.0%} |",
        f"| fast mode precision on this machine | {fast_precision} |",
        f"| fast mode vs exact: top-{TOP_N} agreement / Spearman | {quality['fast_top10']:.3f} / "
        f"{quality['fast_spearman']:.4f} |",
        f"| weights: 28 layers / {args.memory_layers} layers (memory-check model) | {weights_mb[model_path]:.0f} MB / "
        f"{weights_mb[str(memory_model)]:.0f} MB |",
    ]
    lines += [f"| peak RSS scoring {n} candidates of ~100 tokens ({args.memory_layers} layers) | {mb:.0f} MB |"
              for n, mb in memory.items()]
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.write_text(report)


if __name__ == "__main__":
    main()
