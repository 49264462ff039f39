"""``rerank-kit demo``: a real two-stage run on the shipped support corpus, offline.

BM25 fetches candidates, then each reranker that works on this machine reorders them: the bi-encoder
on the all-MiniLM-L6-v2 weights shipped by the ``offline-model`` extra, and the hub cross-encoder when
the model hub is reachable or the model is cached (otherwise one line says why it was skipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TextIO

from rerank_kit.cli.beir import BeirDataset, load_beir
from rerank_kit.cli.evaluate import Contender, bm25_first_stage, evaluate, format_table
from rerank_kit.model_loading import hub_endpoint, hub_offline, reachable
from rerank_kit.pipeline.two_stage import candidate_count
from rerank_kit.reranker import Reranker
from rerank_kit.scorer import Scorer

EXAMPLE_QUERY_ID = "q-reset-password"
#: Results shown per query, and the candidates the first stage fetches for them (the pipeline default).
SHOWN = 5
DEPTH = candidate_count(SHOWN)


def demo_dataset_path() -> Path:
    """Folder of the shipped demo dataset (BEIR layout)."""
    return Path(str(resources.files("rerank_kit") / "data" / "demo"))


def run_demo(out: TextIO, *, max_queries: int | None = None, progress: bool = True) -> None:
    """Print the example query's BM25 and reranked orders, then the evaluation table."""
    dataset = load_beir(demo_dataset_path())
    rerankers = available_rerankers(out)
    query_ids = dataset.judged_query_ids
    first_stage = bm25_first_stage(dataset, query_ids, DEPTH)

    query = dataset.queries[EXAMPLE_QUERY_ID]
    candidates = [doc_id for doc_id, _ in first_stage[EXAMPLE_QUERY_ID]]
    out.write(f"\nQuery: {query!r}  ({len(dataset.corpus)} passages, BM25 fetches {DEPTH}, rerankers keep {SHOWN})\n")
    out.write("\nFirst stage (BM25):\n")
    _print_ranking(out, dataset, EXAMPLE_QUERY_ID, [(d, s) for d, s in first_stage[EXAMPLE_QUERY_ID][:SHOWN]])
    for label, scorer in rerankers:
        results = Reranker(scorer, top_n=SHOWN).rerank(query, [dataset.corpus[d] for d in candidates])
        out.write(f"\nReranked by {label}:\n")
        _print_ranking(out, dataset, EXAMPLE_QUERY_ID, [(candidates[r.index], r.score) for r in results])

    evaluated = query_ids[:max_queries] if max_queries else query_ids
    out.write("\nScoring every query (the first run also compiles ranx's metrics with numba, about 30 s, once)\n")
    out.flush()
    contenders = [Contender("none (BM25 order)", None), *(Contender(label, scorer) for label, scorer in rerankers)]
    rows = evaluate(dataset, {q: first_stage[q] for q in evaluated}, contenders, recall_k=SHOWN, progress=progress)
    out.write(f"\nEvaluation on {len(evaluated)} queries (graded judgements 0-2):\n{format_table(rows)}\n")
    out.write("\nCompare rerankers on your own data: rerank-kit eval PATH/TO/BEIR -r none -r cross-encoder:MODEL\n")


def available_rerankers(out: TextIO) -> list[tuple[str, Scorer]]:
    """The (label, scorer) of each reranker that can run here; each one that cannot is reported in one line."""
    available = []
    for label, load in (
        ("embedding (all-MiniLM-L6-v2, offline)", _offline_embedding),
        ("cross-encoder (ms-marco-MiniLM-L6-v2)", _hub_cross_encoder),
    ):
        try:
            available.append((label, load()))
        except _Unavailable as reason:
            out.write(f"Skipped {label}: {reason}\n")
    return available


class _Unavailable(Exception):
    """Why a reranker cannot run on this machine."""


def _offline_embedding() -> Scorer:
    try:
        from rerank_kit.scorers.local.embedding import EmbeddingScorer, offline_model_path

        scorer = EmbeddingScorer(offline_model_path(), local_files_only=True)
        scorer.embed_texts(["warm-up"])
    except (ImportError, OSError) as exc:
        raise _Unavailable(str(exc).splitlines()[0]) from None
    return scorer


def _hub_cross_encoder() -> Scorer:
    from rerank_kit.scorers.local.cross_encoder import CrossEncoderScorer

    model = CrossEncoderScorer.default_model_name()
    try:
        cached = CrossEncoderScorer(model, local_files_only=True)
        cached.engine
        return cached
    except ImportError as exc:
        raise _Unavailable(str(exc)) from None
    except (OSError, ValueError):
        pass
    if hub_offline():
        raise _Unavailable(f"{model} is not in the local model cache and HF_HUB_OFFLINE is set")
    if not reachable(hub_endpoint()):
        raise _Unavailable(f"{model} is not cached and the model hub ({hub_endpoint()}) is unreachable")
    scorer = CrossEncoderScorer(model)
    try:
        scorer.engine
    except (OSError, ValueError) as exc:
        raise _Unavailable(f"could not download {model}: {str(exc).splitlines()[0]}") from None
    return scorer


def _print_ranking(out: TextIO, dataset: BeirDataset, query_id: str, ranked: Sequence[tuple[str, float]]) -> None:
    grades = dataset.qrels.get(query_id, {})
    for rank, (doc_id, score) in enumerate(ranked, start=1):
        text = dataset.corpus[doc_id]
        snippet = text if len(text) <= 80 else text[:77] + "..."
        out.write(f"  {rank}. {score:7.3f}  rel={grades.get(doc_id, 0)}  [{doc_id}] {snippet}\n")
