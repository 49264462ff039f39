"""``rerank-kit rerank``: rerank JSONL candidates for shell pipelines.

With ``query``, every input line is one candidate (a JSON string, or an object holding the text in
``text_field``) and the output is the ranked candidates, one per line. Without it, every line is an object
``{"query": ..., "candidates": [...], ...}`` and comes out with its candidates ranked. Each output candidate
is the input object (a string becomes ``{text_field: string}``) plus ``relevance_score`` and ``original_index``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from rerank_kit.reranker import Reranker
from rerank_kit.results import RerankResult

#: Queries reranked per ``rerank_many`` call: local models pack their pairs into shared batches.
QUERIES_PER_CALL = 32


def rerank_jsonl(
    reranker: Reranker,
    source: TextIO,
    sink: TextIO,
    *,
    query: str | None = None,
    text_field: str = "text",
) -> int:
    """Read JSONL from ``source``, write ranked JSONL to ``sink``; returns the number of lines written."""
    if query is not None:
        candidates = [_candidate(row, text_field, f"line {n}") for n, row in _rows(source)]
        texts = [c[text_field] for c in candidates]
        return _write(sink, _ranked(candidates, reranker.rerank(query, texts)))
    written = 0
    chunk: list[dict[str, Any]] = []
    for number, row in _rows(source):
        chunk.append(_request(row, text_field, number))
        if len(chunk) == QUERIES_PER_CALL:
            written += _write(sink, _rerank_requests(reranker, chunk, text_field))
            chunk = []
    if chunk:
        written += _write(sink, _rerank_requests(reranker, chunk, text_field))
    return written


def _rerank_requests(reranker: Reranker, rows: Sequence[dict[str, Any]], text_field: str) -> list[dict[str, Any]]:
    requests = [(row["query"], [c[text_field] for c in row["candidates"]]) for row in rows]
    ranked = reranker.rerank_many(requests)
    return [{**row, "candidates": _ranked(row["candidates"], results)} for row, results in zip(rows, ranked)]


def _ranked(candidates: Sequence[dict[str, Any]], results: Sequence[RerankResult]) -> list[dict[str, Any]]:
    return [{**candidates[r.index], "relevance_score": r.score, "original_index": r.index} for r in results]


def _rows(source: TextIO) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"input line {number}: not valid JSON ({exc.msg})") from exc


def _request(row: Any, text_field: str, number: int) -> dict[str, Any]:
    if not (isinstance(row, dict) and isinstance(row.get("query"), str) and isinstance(row.get("candidates"), list)):
        raise ValueError(
            f"input line {number}: expected {{\"query\": str, \"candidates\": [...]}} (or pass --query for one query)"
        )
    candidates = [_candidate(c, text_field, f"line {number}, candidate {i}") for i, c in enumerate(row["candidates"])]
    return {**row, "candidates": candidates}


def _candidate(value: Any, text_field: str, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {text_field: value}
    if isinstance(value, dict) and isinstance(value.get(text_field), str):
        return value
    raise ValueError(f"{where}: a candidate must be a string or an object with a string {text_field!r} field")


def _write(sink: TextIO, rows: Sequence[Any]) -> int:
    for row in rows:
        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    sink.flush()
    return len(rows)
