"""Batch reranking on Ray Data vs one process: throughput, fixed overhead, and scaling from 1 to 2 actors.

The MiniLM-L6-H384 cross-encoder of ``workload.py`` on 20 queries x 50 passages (~310 tokens per pair). Contenders:
``Reranker.rerank_many`` in this process (torch on every core, 32 queries per call, as ``rerank-kit rerank``), and
``rerank_dataset`` on a local Ray with 1 actor x 1 CPU, 2 actors x 1 CPU and 1 actor x 2 CPUs (Ray gives an actor
as many torch threads as CPUs), on 8 buckets, and once on 1 bucket (all queries in one call, as in one process).
Each Ray time is a whole cold run (actors start, load the model, shuffle, score); the fixed overhead is the same
run on one query of two passages. Scores are checked against the one-process run.

    python benchmarks/ray_batch.py --output benchmarks/ray_batch.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workload  # noqa: E402

from rerank_kit import CrossEncoderScorer, Reranker  # noqa: E402

#: name: (actors, CPUs per actor, buckets); 8 buckets of 20 queries: ~2.5 queries per rerank_many call.
RAY_SETUPS = {
    "Ray, 1 actor x 1 CPU, 8 buckets": (1, 1.0, 8),
    "Ray, 2 actors x 1 CPU, 8 buckets": (2, 1.0, 8),
    "Ray, 1 actor x 2 CPUs, 8 buckets": (1, 2.0, 8),
    "Ray, 1 actor x 2 CPUs, 1 bucket": (1, 2.0, 1),
}
QUERIES_PER_CALL = 32


def rows_of(requests: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    return [{"query_id": f"q{q:03d}", "query": query, "doc_id": f"d{d:03d}", "text": text,
             "first_stage_score": float(len(texts) - d)}
            for q, (query, texts) in enumerate(requests) for d, text in enumerate(texts)]


def one_process(model: str, requests: list[tuple[str, list[str]]]) -> tuple[float, float, dict[str, list[Any]]]:
    """Seconds to load the model and score the first pair, seconds for the whole workload, and the rankings."""
    start = time.perf_counter()
    reranker = Reranker(CrossEncoderScorer(model), top_n=None, cache=False)
    reranker.rerank(requests[0][0], requests[0][1][:1])
    loaded = time.perf_counter()
    ranked = []
    for first in range(0, len(requests), QUERIES_PER_CALL):
        ranked += reranker.rerank_many(requests[first : first + QUERIES_PER_CALL])
    done = time.perf_counter()
    rankings = {f"q{q:03d}": [(f"d{r.index:03d}", r.score) for r in results] for q, results in enumerate(ranked)}
    return loaded - start, done - loaded, rankings


def on_ray(model: str, rows: list[dict[str, Any]], actors: int, cpus: float, buckets: int
           ) -> tuple[float, dict[str, list[Any]]]:
    """Seconds for a cold ``rerank_dataset`` run over ``rows``, and its rankings."""
    import ray

    from rerank_kit.batch import rerank_dataset

    start = time.perf_counter()
    out = rerank_dataset(ray.data.from_items(rows), f"cross-encoder:{model}", actors=actors, num_cpus=cpus,
                         buckets=buckets).take_all()
    seconds = time.perf_counter() - start
    rankings: dict[str, list[Any]] = {}
    for row in sorted(out, key=lambda r: (r["query_id"], r["rank"])):
        rankings.setdefault(row["query_id"], []).append((row["doc_id"], row["score"]))
    return seconds, rankings


def agreement(got: dict[str, list[Any]], expected: dict[str, list[Any]]) -> tuple[bool, float]:
    """Whether every query's order is identical, and the largest score difference."""
    same = all([d for d, _ in got[q]] == [d for d, _ in expected[q]] for q in expected)
    diff = max(abs(a - b) for q in expected for (_, a), (_, b) in zip(sorted(got[q]), sorted(expected[q])))
    return same, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--passages", type=int, default=50)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "rerank-kit-bench")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("ray_batch.md"))
    args = parser.parse_args()

    import ray

    model = str(workload.minilm_cross_encoder(args.cache_dir))
    requests = workload.workload(args.queries, args.passages, seed=5)
    rows, docs = rows_of(requests), args.queries * args.passages
    tokens = workload.mean_tokens(model, requests)
    features = workload.cpu_features()
    load_s, single_s, expected = one_process(model, requests)
    print(f"one process: {single_s:.1f} s (+{load_s:.1f} s load)", file=sys.stderr)

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    ray.data.DataContext.get_current().enable_progress_bars = False
    table = [("one process, `Reranker.rerank_many` (torch on all cores)", single_s + load_s, load_s, True, 0.0)]
    for name, (actors, cpus, buckets) in RAY_SETUPS.items():
        overhead, _ = on_ray(model, rows_of([(requests[0][0], requests[0][1][:2])]), actors, cpus, buckets)
        seconds, got = on_ray(model, rows, actors, cpus, buckets)
        same, diff = agreement(got, expected)
        print(f"{name}: {seconds:.1f} s (fixed {overhead:.1f} s)", file=sys.stderr)
        table.append((name, seconds, overhead, same, diff))
    ray.shutdown()

    lines = [
        "# Batch reranking on Ray Data vs one process",
        "",
        f"Model: MiniLM-L6-H384 cross-encoder (workload.py), {args.queries} queries x {args.passages} passages "
        f"= {docs} pairs, mean {tokens:.0f} tokens per pair. {os.cpu_count()} CPUs; {features}. "
        f"Ray {ray.__version__}, local, `num_cpus={os.cpu_count()}`. "
        "Command: `python benchmarks/ray_batch.py`.",
        "",
        "| contender | wall s (cold) | docs/s (cold) | x one process (cold) | fixed s | docs/s less fixed "
        "| same order | max score diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    base = table[0][1]
    for name, seconds, fixed, same, diff in table:
        lines.append(f"| {name} | {seconds:.1f} | {docs / seconds:.1f} | {base / seconds:.2f} | {fixed:.1f} | "
                     f"{docs / (seconds - fixed):.1f} | {'yes' if same else 'NO'} | {diff:.1e} |")
    lines += [
        "",
        "Cold: from the call to the last row (Ray: actors start, import torch, load the model, shuffle, score; one "
        "process: load the model and score). Fixed: the one-process model load, or the Ray run on one query of "
        "two passages (startup, model load, shuffle, scheduling). docs/s less fixed: the scoring rate once running.",
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
