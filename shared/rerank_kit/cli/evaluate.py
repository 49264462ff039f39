"""Compare rerankers on one first stage: quality (nDCG@10, MRR@10, Recall@k via ranx), latency and usage."""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rerank_kit._optional import require
from rerank_kit.cli.beir import BeirDataset, DataError, read_lines
from rerank_kit.errors import RerankError
from rerank_kit.reranker import Reranker
from rerank_kit.scorer import Scorer

#: query id -> [(doc id, first-stage score)], best first.
FirstStage = dict[str, list[tuple[str, float]]]


@dataclass(frozen=True)
class Contender:
    """One row of the comparison: a label and its scorer (``None`` keeps the first-stage order).

    ``error`` says why a reranker could not even be built; it is reported as failed, the others still run.
    """

    label: str
    scorer: Scorer | None
    error: str | None = None


@dataclass
class Row:
    """Quality, latency and usage of one contender over the evaluated queries."""

    reranker: str
    ndcg_at_10: float
    mrr_at_10: float
    recall_at_k: float
    recall_k: int
    p50_ms: float
    p95_ms: float
    queries: int
    warmup_s: float = 0.0
    usage_per_query: dict[str, float] = field(default_factory=dict)
    #: Why this reranker failed (its metrics are then NaN); ``None`` when it ran.
    error: str | None = None
    #: Each query's ranked doc ids (written to the JSON and, with ``--save-runs``, as a TREC run).
    rankings: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def failed(self) -> bool:
        return self.error is not None


def bm25_first_stage(dataset: BeirDataset, query_ids: Sequence[str], depth: int) -> FirstStage:
    """Top ``depth`` documents per query by BM25 (bm25s, English stopwords, no stemming)."""
    bm25s = require("bm25s", "eval")
    doc_ids = list(dataset.corpus)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([dataset.corpus[d] for d in doc_ids], show_progress=False), show_progress=False)
    k = min(depth, len(doc_ids))
    tokens = bm25s.tokenize([dataset.queries[q] for q in query_ids], show_progress=False)
    positions, scores = retriever.retrieve(tokens, k=k, show_progress=False)
    return {
        query_id: [(doc_ids[int(p)], float(s)) for p, s in zip(positions[row], scores[row])]
        for row, query_id in enumerate(query_ids)
    }


def dense_first_stage(dataset: BeirDataset, query_ids: Sequence[str], depth: int, model: str) -> FirstStage:
    """Top ``depth`` documents per query by embedding cosine over the whole corpus (a sentence-transformers model)."""
    numpy = require("numpy", "embedding")
    from rerank_kit.scorers.local.embedding import EmbeddingScorer

    scorer = EmbeddingScorer(model)
    doc_ids = list(dataset.corpus)
    docs = _unit_rows(numpy.asarray(scorer.embed_texts([dataset.corpus[d] for d in doc_ids]), dtype="float32"))
    queries = _unit_rows(numpy.asarray(scorer.embed_queries([dataset.queries[q] for q in query_ids]), dtype="float32"))
    similarity = queries @ docs.T
    k = min(depth, len(doc_ids))
    stage = {}
    for row, query_id in enumerate(query_ids):
        best = numpy.argsort(-similarity[row], kind="stable")[:k]
        stage[query_id] = [(doc_ids[int(i)], float(similarity[row, i])) for i in best]
    return stage


def hybrid_first_stage(dataset: BeirDataset, query_ids: Sequence[str], depth: int, model: str) -> FirstStage:
    """Reciprocal rank fusion of the BM25 and dense first stages, top ``depth``."""
    from rerank_kit.pipeline.fusion import reciprocal_rank_fusion

    bm25 = bm25_first_stage(dataset, query_ids, depth)
    dense = dense_first_stage(dataset, query_ids, depth, model)
    return {
        query_id: reciprocal_rank_fusion([[d for d, _ in bm25[query_id]], [d for d, _ in dense[query_id]]])[:depth]
        for query_id in query_ids
    }


def _unit_rows(matrix: object) -> object:
    numpy = require("numpy", "embedding")
    norms = numpy.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / numpy.where(norms == 0, 1.0, norms)


def load_trec_run(
    path: str | Path, query_ids: Sequence[str], depth: int, *, dataset: BeirDataset | None = None
) -> FirstStage:
    """Top ``depth`` documents per query from a TREC run file (``qid Q0 docid rank score tag``), by score.

    With ``dataset``, every qid and docid of the file must be in its queries and corpus (else a DataError).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a run file has lines 'qid Q0 docid rank score tag'")
    wanted = set(query_ids)
    run: dict[str, list[tuple[str, float]]] = {}
    for number, line in read_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise DataError(
                path, number, f"expected 6 whitespace-separated columns (qid Q0 docid rank score tag), got {len(parts)}"
            )
        query_id, _, doc_id, _, score, _ = parts
        try:
            value = float(score)
            if math.isnan(value):
                raise ValueError("NaN would make the order undefined")
        except ValueError:
            raise DataError(path, number, f"column 'score' must be a number, got {score!r}") from None
        if dataset is not None and query_id not in dataset.queries:
            raise DataError(path, number, f"column 'qid' names {query_id!r}, which is not in queries.jsonl")
        if dataset is not None and doc_id not in dataset.corpus:
            raise DataError(path, number, f"column 'docid' names {doc_id!r}, which is not in corpus.jsonl")
        if query_id in wanted:
            run.setdefault(query_id, []).append((doc_id, value))
    ranked = {q: sorted(docs, key=lambda d: -d[1])[:depth] for q, docs in run.items()}
    return {q: ranked.get(q, []) for q in query_ids}


def evaluate(
    dataset: BeirDataset,
    first_stage: FirstStage,
    contenders: Sequence[Contender],
    *,
    recall_k: int = 10,
    progress: bool = True,
) -> list[Row]:
    """Rerank every query's candidates with each contender, one query at a time as in serving, and score them.

    Latency is measured per query after a warm-up call for local models (loading is reported as
    ``warmup_s``); the score cache is off so every query is really scored.
    """
    tqdm = require("tqdm", "eval").tqdm
    query_ids = list(first_stage)
    rows = []
    for contender in contenders:
        scorer = contender.scorer
        if contender.error is not None:
            rows.append(_failed_row(contender.label, contender.error, recall_k, len(query_ids)))
            continue
        try:
            warmup = _warm_up(scorer, dataset, first_stage) if scorer is not None else 0.0
            usage_before = {} if scorer is None else scorer.usage.total
            bar = tqdm(query_ids, desc=contender.label, file=sys.stderr, disable=not progress, leave=False)
            rankings, latencies = _rerank_all(scorer, dataset, first_stage, bar)
        except (RerankError, OSError, ValueError, ImportError) as exc:
            rows.append(_failed_row(contender.label, one_line(exc), recall_k, len(query_ids)))
            continue
        quality = ranx_metrics(dataset, rankings, recall_k)
        rows.append(
            Row(
                reranker=contender.label,
                ndcg_at_10=quality["ndcg@10"],
                mrr_at_10=quality["mrr@10"],
                recall_at_k=quality[f"recall@{recall_k}"],
                recall_k=recall_k,
                p50_ms=_percentile(latencies, 50),
                p95_ms=_percentile(latencies, 95),
                queries=len(query_ids),
                warmup_s=warmup,
                usage_per_query=_usage_per_query(scorer, usage_before, len(query_ids)),
                rankings=rankings,
            )
        )
    return rows


def one_line(exc: BaseException) -> str:
    """An exception as one line: its first line, or its type when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _failed_row(label: str, error: str, recall_k: int, queries: int) -> Row:
    nan = float("nan")
    return Row(reranker=label, ndcg_at_10=nan, mrr_at_10=nan, recall_at_k=nan, recall_k=recall_k, p50_ms=nan,
               p95_ms=nan, queries=queries, error=error)


def _rerank_all(
    scorer: Scorer | None, dataset: BeirDataset, first_stage: FirstStage, query_ids: Iterable[str]
) -> tuple[dict[str, list[str]], list[float]]:
    """Each query's reranked doc ids (the first-stage order for ``None``) and its latency in ms."""
    reranker = None if scorer is None else Reranker(scorer, top_n=None, cache=False)
    rankings, latencies = {}, []
    for query_id in query_ids:
        doc_ids = [doc_id for doc_id, _ in first_stage[query_id]]
        if reranker is None or not doc_ids:
            rankings[query_id] = doc_ids
            latencies.append(0.0)
            continue
        texts = [dataset.corpus[doc_id] for doc_id in doc_ids]
        start = time.perf_counter()
        results = reranker.rerank(dataset.queries[query_id], texts)
        latencies.append((time.perf_counter() - start) * 1000)
        rankings[query_id] = [doc_ids[r.index] for r in results]
    return rankings, latencies


def ranx_metrics(dataset: BeirDataset, rankings: dict[str, list[str]], recall_k: int) -> dict[str, float]:
    """Mean nDCG@10 (linear gain, as trec_eval), MRR@10 and Recall@k of ranked doc ids, computed by ranx."""
    ranx = require("ranx", "eval")
    qrels = ranx.Qrels({q: dict(dataset.qrels[q]) for q in rankings})
    run = ranx.Run({q: {doc: float(len(docs) - i) for i, doc in enumerate(docs)} for q, docs in rankings.items()})
    metrics = ["ndcg@10", "mrr@10", f"recall@{recall_k}"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unsafe cast")  # numba noise from ranx's compiled metrics
        scores = ranx.evaluate(qrels, run, metrics, make_comparable=True)
    return {metric: float(scores[metric]) for metric in metrics}


def format_table(rows: Sequence[Row]) -> str:
    """The comparison as an aligned text table; a failed reranker is a row saying why."""
    recall = f"Recall@{rows[0].recall_k}" if rows else "Recall@k"
    header = ["reranker", "nDCG@10", "MRR@10", recall, "p50 ms", "p95 ms", "warm-up s", "usage/query"]
    body = [
        [row.reranker, "failed", *[""] * 5, row.error or ""] if row.failed else [
            row.reranker,
            f"{row.ndcg_at_10:.3f}",
            f"{row.mrr_at_10:.3f}",
            f"{row.recall_at_k:.3f}",
            f"{row.p50_ms:.1f}",
            f"{row.p95_ms:.1f}",
            f"{row.warmup_s:.1f}",
            ", ".join(f"{k}={v:g}" for k, v in row.usage_per_query.items()) or "-",
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *body]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def write_results(rows: Sequence[Row], out_dir: str | Path, *, settings: dict[str, object],
                  save_runs: bool = False) -> dict[str, Path]:
    """Write ``results.json`` (settings, rows with per-query rankings), ``results.csv``, ``quality_latency.png``.

    With ``save_runs`` each reranker's ranking is also a TREC run file under ``runs/``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "plot": out / "quality_latency.png"}
    document = {"settings": settings, "rows": [_json_row(row) for row in rows]}
    paths["json"].write_text(json.dumps(document, indent=2))
    columns = [
        "reranker", "ndcg_at_10", "mrr_at_10", "recall_at_k", "recall_k", "p50_ms", "p95_ms", "queries", "warmup_s"
    ]
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, "usage_per_query", "error"])
        for row in rows:
            usage = json.dumps(row.usage_per_query) if row.usage_per_query else ""
            writer.writerow([*(getattr(row, c) for c in columns), usage, row.error or ""])
    plot_quality_latency(rows, paths["plot"])
    if save_runs:
        paths["runs"] = out / "runs"
        paths["runs"].mkdir(exist_ok=True)
        for row in rows:
            if not row.failed:
                write_trec_run(row, paths["runs"] / f"{_file_name(row.reranker)}.trec")
    return paths


def write_trec_run(row: Row, path: Path) -> None:
    """One reranker's rankings as a TREC run file (``qid Q0 docid rank score tag``, score = depth - rank)."""
    tag = _file_name(row.reranker)
    with path.open("w") as handle:
        for query_id, doc_ids in row.rankings.items():
            for rank, doc_id in enumerate(doc_ids, start=1):
                handle.write(f"{query_id} Q0 {doc_id} {rank} {len(doc_ids) - rank + 1} {tag}\n")


def _json_row(row: Row) -> dict[str, object]:
    data = asdict(row)
    for key in ("ndcg_at_10", "mrr_at_10", "recall_at_k", "p50_ms", "p95_ms"):
        if isinstance(data[key], float) and math.isnan(data[key]):
            data[key] = None
    return data


def _file_name(label: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in label).strip("_") or "run"


def plot_quality_latency(rows: Sequence[Row], path: Path) -> None:
    """PNG scatter of nDCG@10 (axis from 0) against p50 latency: one named point per reranker that ran."""
    figure_module = require("matplotlib.figure", "eval")
    figure = figure_module.Figure(figsize=(6.4, 4.2), dpi=100)
    axes = figure.add_subplot()
    ran = [row for row in rows if not row.failed]
    right = max((row.p50_ms for row in ran), default=1.0)
    for row in ran:
        on_right = row.p50_ms > right / 2 and row.p50_ms > 1.0
        axes.scatter(row.p50_ms, row.ndcg_at_10)
        axes.annotate(row.reranker, (row.p50_ms, row.ndcg_at_10), textcoords="offset points",
                      xytext=(-6 if on_right else 6, 6), ha="right" if on_right else "left", fontsize=8,
                      annotation_clip=True)
    axes.set_xscale("symlog", linthresh=1.0)
    axes.set_xlim(left=-0.5, right=max(right * 1.5, 2.0))
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("p50 latency per query (ms, symlog)")
    axes.set_ylabel("nDCG@10")
    axes.set_title("Reranker quality vs latency")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")


def _warm_up(scorer: Scorer, dataset: BeirDataset, first_stage: FirstStage) -> float:
    """Load a local model before timing (remote scorers are not called: a call costs money)."""
    if not scorer.cache_by_default:
        return 0.0
    query_id, docs = next(((q, d) for q, d in first_stage.items() if d), (None, []))
    if query_id is None:
        return 0.0
    start = time.perf_counter()
    scorer.score(dataset.queries[query_id], [dataset.corpus[docs[0][0]]])
    return time.perf_counter() - start


def _percentile(values: Sequence[float], percent: int) -> float:
    if len(values) < 2:
        return float(values[0]) if values else 0.0
    return float(statistics.quantiles(values, n=100, method="inclusive")[percent - 1])


def _usage_per_query(scorer: Scorer | None, before: dict[str, float], queries: int) -> dict[str, float]:
    """What the provider reported for this run (usage after minus before), per query."""
    if scorer is None or not queries:
        return {}
    after = scorer.usage.total
    return {key: (value - before.get(key, 0.0)) / queries for key, value in after.items() if value != before.get(key)}
