"""CPU cross-encoder reranking speed: rerank-kit against LangChain, LlamaIndex and sentence-transformers.

All contenders run in one process on the same model (MiniLM-L6-H384, the shape of
cross-encoder/ms-marco-MiniLM-L-6-v2) and the same deterministic workload, interleaved query by query so
that machine drift hits every contender alike. Prints docs/s, ratios, p50 latency per query, score fidelity,
ranking agreement of fast mode, adapter overhead, cache latency and peak memory; writes a markdown table.

    python benchmarks/cross_encoder_speed.py            # 20 queries x 100 passages (~20 min on 2 cores)
    python benchmarks/cross_encoder_speed.py --quick    # 3 queries x 30 passages
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload  # noqa: E402

TOP_N = 10
HERE = Path(__file__).resolve().parent


def build_contenders(model_path: str) -> dict[str, Callable[[str, list[str]], object]]:
    """Each contender reranks one query's passages, the way its users would call it.

    rerank-kit's rows are warmed up (``warmup=True``: loaded and compiled at construction, the documented way
    to serve); the eager row reuses a loaded ``CrossEncoder`` so that it gets an engine of its own.
    """
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    from langchain_core.documents import Document
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import NodeWithScore, TextNode
    from sentence_transformers import CrossEncoder

    from rerank_kit import CrossEncoderScorer, Reranker

    langchain = CrossEncoderReranker(model=HuggingFaceCrossEncoder(model_name=model_path), top_n=TOP_N)
    llamaindex = SentenceTransformerRerank(model=model_path, top_n=TOP_N, device="cpu")
    plain = CrossEncoder(model_path)
    exact = Reranker(CrossEncoderScorer(model_path, warmup=True), top_n=TOP_N, cache=False)
    eager = Reranker(CrossEncoderScorer(CrossEncoder(model_path)), top_n=TOP_N, cache=False)
    fast = Reranker(CrossEncoderScorer(model_path, mode="fast", warmup=True), top_n=TOP_N, cache=False)
    bf16_only = Reranker(CrossEncoderScorer(model_path, mode="fast", exact_top_n=False, warmup=True), top_n=TOP_N,
                         cache=False)
    return {
        "LangChain CrossEncoderReranker": lambda q, ps: langchain.compress_documents(
            [Document(page_content=p) for p in ps], q),
        "LlamaIndex SentenceTransformerRerank": lambda q, ps: llamaindex.postprocess_nodes(
            [NodeWithScore(node=TextNode(text=p), score=0.0) for p in ps], query_str=q),
        "sentence-transformers CrossEncoder.predict": lambda q, ps: plain.predict([(q, p) for p in ps]),
        "rerank-kit exact": lambda q, ps: exact.rerank(q, ps),
        "rerank-kit exact, no warm-up (eager)": lambda q, ps: eager.rerank(q, ps),
        "rerank-kit fast (exact top-10)": lambda q, ps: fast.rerank(q, ps),
        "rerank-kit fast, exact_top_n=False": lambda q, ps: bf16_only.rerank(q, ps),
    }


def time_packed(model_path: str, mode: str, requests: list[tuple[str, list[str]]]) -> float:
    """Seconds for ``rerank_many`` over every query at once (pairs of all queries share batches)."""
    from rerank_kit import CrossEncoderScorer, Reranker

    reranker = Reranker(CrossEncoderScorer(model_path, mode=mode, warmup=True), top_n=TOP_N, cache=False)
    reranker.rerank(*requests[0])  # untimed, as in workload.time_interleaved
    start = time.perf_counter()
    reranker.rerank_many(requests)
    return time.perf_counter() - start


def fidelity(model_path: str, requests: list[tuple[str, list[str]]]) -> dict[str, float]:
    """Exact mode vs CrossEncoder.predict (max |diff|); fast mode's top-10 (as reranked) and its bf16 scores
    (Spearman over all candidates) vs exact mode; the same for the bf16 pass alone (``exact_top_n=False``)."""
    from scipy.stats import spearmanr
    from sentence_transformers import CrossEncoder

    from rerank_kit import CrossEncoderScorer, Reranker

    plain = CrossEncoder(model_path)
    pairs = [[(query, p) for p in passages] for query, passages in requests]
    sigmoid_scores = CrossEncoderScorer(model_path).score_many(requests)
    max_diff = max(
        abs(a - b)
        for scores, query_pairs in zip(sigmoid_scores, pairs)
        for a, b in zip(scores, plain.predict(query_pairs).tolist())
    )
    exact = Reranker(CrossEncoderScorer(model_path, activation="raw"), top_n=None, cache=False)
    fast_scorer = CrossEncoderScorer(model_path, mode="fast", activation="raw")
    rerankers = {"fast": Reranker(fast_scorer, top_n=TOP_N, cache=False),
                 "bf16": Reranker(CrossEncoderScorer(model_path, mode="fast", activation="raw", exact_top_n=False),
                                  top_n=None, cache=False)}
    result = {"max_abs_diff": max_diff}
    band = fast_scorer.engine.forward.bf16_band
    refined_before = band.observed
    for name, reranker in rerankers.items():
        overlaps, rhos = [], []
        for query, passages in requests:
            truth = exact.rerank(query, passages)
            got = reranker.rerank(query, passages)
            overlaps.append(len({r.index for r in truth[:TOP_N]} & {r.index for r in got[:TOP_N]}) / TOP_N)
            if len(got) == len(truth):
                by_index = {r.index: r.score for r in got}
                rhos.append(spearmanr([r.score for r in truth], [by_index[r.index] for r in truth]).statistic)
        result[f"{name}_top10"] = statistics.mean(overlaps)
        if name == "fast":
            result["refined_per_query"] = (band.observed - refined_before) / len(requests)
        if rhos:
            result[f"{name}_spearman"] = statistics.mean(rhos)
    result["rms_error"] = fast_scorer.engine.forward.bf16_band.rms_error
    return result


def adapter_overhead(model_path: str, query: str, passages: list[str], scoring_seconds: float) -> dict[str, float]:
    """Adapter time beyond the core, measured with warm caches so only mapping is timed, vs scoring time."""
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, TextNode

    from langchain_rerankers import CrossEncoderRerank as LangChainRerank
    from llamaindex_rerankers import CrossEncoderRerank as LlamaIndexRerank
    from rerank_kit import CrossEncoderScorer, Reranker

    langchain = LangChainRerank(model=model_path, top_n=TOP_N)
    llamaindex = LlamaIndexRerank(model=model_path, top_n=TOP_N)
    core = Reranker(CrossEncoderScorer(model_path), top_n=TOP_N)
    docs = [Document(page_content=p) for p in passages]
    nodes = [NodeWithScore(node=TextNode(text=p), score=0.0) for p in passages]
    calls = {
        "core": lambda: core.rerank(query, passages),
        "langchain": lambda: langchain.compress_documents(docs, query),
        "llamaindex": lambda: llamaindex.postprocess_nodes(nodes, query_str=query),
    }
    for call in calls.values():
        call()
    best = {}
    for name, call in calls.items():
        runs = []
        for _ in range(30):
            start = time.perf_counter()
            call()
            runs.append(time.perf_counter() - start)
        best[name] = statistics.median(runs)
    return {
        "cache_hit_ms": best["core"] * 1000,
        "langchain_pct": 100 * (best["langchain"] - best["core"]) / scoring_seconds,
        "llamaindex_pct": 100 * (best["llamaindex"] - best["core"]) / scoring_seconds,
    }


FIRST_CALL_SETUPS = {"exact": {}, "fast": {"mode": "fast"}, "exact, warmup=True": {"warmup": True},
                     "fast, warmup=True": {"mode": "fast", "warmup": True}}


def time_to_first_results(model_path: str, calls: int = 10) -> dict[str, tuple[float, list[float]]]:
    """Per setup, in a fresh process (no compiled code or loaded model to reuse): construction seconds and the
    seconds of each of the first ``calls`` calls (load included where construction does not load)."""
    out = {}
    for label in FIRST_CALL_SETUPS:
        run = subprocess.run([sys.executable, __file__, "--first-calls", model_path, label, str(calls)],
                             capture_output=True, text=True, check=True)
        out[label] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def _first_calls(model_path: str, label: str, calls: int) -> None:
    """Child of :func:`time_to_first_results`: prints ``[construction, [call seconds...]]`` as JSON."""
    from rerank_kit import CrossEncoderScorer, Reranker

    requests = workload.workload(calls, 100)
    start = time.perf_counter()
    reranker = Reranker(CrossEncoderScorer(model_path, **FIRST_CALL_SETUPS[label]), top_n=TOP_N, cache=False)
    built = time.perf_counter() - start
    times = []
    for query, passages in requests:
        start = time.perf_counter()
        reranker.rerank(query, passages)
        times.append(time.perf_counter() - start)
    print(json.dumps([built, times]))


def concurrency(model_path: str, requests: list[tuple[str, list[str]]], rounds: int = 5) -> dict[str, float]:
    """16 async callers x 10 passages: shared batches vs one ``rerank_many`` vs the calls one after another."""
    import asyncio

    from rerank_kit import CrossEncoderScorer, Reranker

    small = [(query, passages[:10]) for query, passages in (requests * 16)[:16]]
    reranker = Reranker(CrossEncoderScorer(model_path), top_n=TOP_N, cache=False)
    reranker.rerank(*small[0])
    latencies: list[float] = []

    async def caller(query: str, passages: list[str]) -> None:
        start = time.perf_counter()
        await reranker.arerank(query, passages)
        latencies.append(time.perf_counter() - start)

    async def together() -> None:
        await asyncio.gather(*(caller(q, p) for q, p in small))

    timings: dict[str, list[float]] = {"concurrent": [], "rerank_many": [], "sequential": []}
    for _ in range(rounds):
        for name, run in (("concurrent", lambda: asyncio.run(together())),
                          ("rerank_many", lambda: reranker.rerank_many(small)),
                          ("sequential", lambda: [reranker.rerank(q, p) for q, p in small])):
            start = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in timings.items()}
    return {
        "vs_rerank_many": best["rerank_many"] / best["concurrent"],
        "vs_sequential": best["sequential"] / best["concurrent"],
        "p95_ms": 1000 * statistics.quantiles(latencies, n=20)[-1],
        "pairs_per_s": 160 / best["concurrent"],
    }


def bert_base_row(cache_dir: Path, requests: list[tuple[str, list[str]]]) -> dict[str, float]:
    """docs/s of the anchors and our modes on a BERT-base-sized (L-12, hidden 768) model, interleaved."""
    model_path = str(workload.bert_base_cross_encoder(cache_dir))
    contenders = build_contenders(model_path)
    for name in ("sentence-transformers CrossEncoder.predict", "rerank-kit exact, no warm-up (eager)"):
        del contenders[name]
    seconds, _ = workload.time_interleaved(contenders, requests)
    pairs = sum(len(passages) for _, passages in requests)
    return {name: pairs / sum(times) for name, times in seconds.items()}


def peak_rss_mb(model_path: str, candidates: int) -> float:
    """Peak RSS of a fresh process scoring ``candidates`` passages of 512 tokens (run in a subprocess)."""
    return workload.peak_rss_mb(
        "from rerank_kit import CrossEncoderScorer\n"
        f"s = CrossEncoderScorer({model_path!r})\n"
        f"s.score('what is the capital', ['text %d ' % i + 'word ' * 600 for i in range({candidates})])\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 queries x 30 passages, smaller memory check")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "rerank-kit-bench")
    parser.add_argument("--out", type=Path, help="markdown output (default: benchmarks/cross_encoder_speed[_quick].md)")
    parser.add_argument("--first-calls", nargs=3, metavar=("MODEL", "SETUP", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_calls:
        model, label, calls = args.first_calls
        _first_calls(model, label, int(calls))
        return

    n_queries, n_passages = (3, 30) if args.quick else (20, 100)
    memory_sizes = (20, 200) if args.quick else (100, 1000)
    model_path = str(workload.minilm_cross_encoder(args.cache_dir))
    requests = workload.workload(n_queries, n_passages)
    pairs = n_queries * n_passages

    seconds, _ = workload.time_interleaved(build_contenders(model_path), requests)
    packed = {mode: time_packed(model_path, mode, requests) for mode in ("exact", "fast")}
    quality = fidelity(model_path, requests)
    overhead = adapter_overhead(model_path, *requests[0], statistics.median(seconds["rerank-kit exact"]))
    memory = {n: peak_rss_mb(model_path, n) for n in memory_sizes}
    first = time_to_first_results(model_path)
    shared = concurrency(model_path, requests)
    base_requests = workload.workload(*((2, 10) if args.quick else (3, 30)), seed=5)
    base = bert_base_row(args.cache_dir, base_requests)
    from rerank_kit import CrossEncoderScorer

    fast_precision = CrossEncoderScorer(model_path, mode="fast").precision

    rates = {name: pairs / sum(times) for name, times in seconds.items()}
    rates["rerank-kit exact, rerank_many"] = pairs / packed["exact"]
    rates["rerank-kit fast, rerank_many"] = pairs / packed["fast"]
    p50 = {name: statistics.median(times) for name, times in seconds.items()}
    anchors = ["LangChain CrossEncoderReranker", "LlamaIndex SentenceTransformerRerank"]
    best_anchor = max(anchors, key=rates.__getitem__)
    base_anchor = max(anchors, key=base.__getitem__)

    lines = [
        f"# Cross-encoder speed ({'quick' if args.quick else 'full'} run)",
        "",
        f"Model: MiniLM-L6-H384 cross-encoder (shape of cross-encoder/ms-marco-MiniLM-L-6-v2), max_length 512. "
        f"Workload: {n_queries} queries x {n_passages} passages, mean "
        f"{workload.mean_tokens(model_path, requests):.0f} tokens per pair. {workload.cpu_features()}; "
        f"fast mode chose {fast_precision}. Each contender answers the first query once, untimed, before the timed "
        f"runs (one-time costs, fast mode's calibration included, are in the fresh-process rows). "
        f"Command: `python benchmarks/cross_encoder_speed.py{' --quick' if args.quick else ''}`.",
        "",
        f"| contender | docs/s | x {best_anchor.split()[0]} (faster anchor) | p50 s/query |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, rate in rates.items():
        latency = f"{p50[name]:.2f}" if name in p50 else "(batch)"
        lines.append(f"| {name} | {rate:.1f} | {rate / rates[best_anchor]:.2f} | {latency} |")
    lines += [
        "",
        "| check | result |",
        "| --- | --- |",
        f"| exact mode vs `CrossEncoder.predict`, max abs score diff | {quality['max_abs_diff']:.2e} |",
        f"| fast mode precision on this machine | {fast_precision} |",
        f"| fast mode (exact top-{TOP_N}) vs exact mode: top-{TOP_N} agreement | {quality['fast_top10']:.3f} |",
        f"| bf16 pass alone (`exact_top_n=False`) vs exact: top-{TOP_N} agreement / Spearman | "
        f"{quality['bf16_top10']:.3f} / {quality['bf16_spearman']:.4f} |",
        f"| bf16 pass: rms logit error near the cut (logit spread ~3; margin re-scored = 3x) | "
        f"{quality['rms_error']:.3f} |",
        f"| fast mode: candidates re-scored in float32 per query (of {n_passages}; the model calibrated already) | "
        f"{quality['refined_per_query']:.1f} |",
        f"| LangChain adapter overhead, % of scoring time | {overhead['langchain_pct']:.3f}% |",
        f"| LlamaIndex adapter overhead, % of scoring time | {overhead['llamaindex_pct']:.3f}% |",
        f"| repeated call served from the score cache ({n_passages} candidates) | {overhead['cache_hit_ms']:.3f} ms |",
    ]
    lines += [f"| peak RSS scoring {n} candidates of 512 tokens | {mb:.0f} MB |" for n, mb in memory.items()]
    for label, (built, times) in first.items():
        lines.append(f"| {label}, fresh process: construction / first call / mean of calls 2-10 (100 passages) | "
                     f"{built:.2f} s / {times[0]:.2f} s / {statistics.mean(times[1:]):.2f} s |")
    lines += [
        f"| 16 async callers x 10 passages: throughput vs one `rerank_many` / vs one after another | "
        f"{shared['vs_rerank_many']:.2f}x / {shared['vs_sequential']:.2f}x |",
        f"| 16 async callers: p95 latency per caller | {shared['p95_ms']:.0f} ms |",
        "",
        f"BERT-base-sized model (L-12, hidden 768, random weights), {len(base_requests)} queries x "
        f"{len(base_requests[0][1])} passages:",
        "",
        f"| contender | docs/s | x {base_anchor.split()[0]} (faster anchor) |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {name} | {rate:.2f} | {rate / base[base_anchor]:.2f} |" for name, rate in base.items()]
    report = "\n".join(lines) + "\n"
    print(report)
    out = args.out or HERE / f"cross_encoder_speed{'_quick' if args.quick else ''}.md"
    out.write_text(report)


if __name__ == "__main__":
    main()
