"""Rows of one bucket, as query groups in, ranked rows out: the pyarrow side of the Ray actors, testable without Ray."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rerank_kit._optional import require
from rerank_kit.results import RerankResult

#: Columns every input row has (the text column may be renamed); ``first_stage_score`` is optional.
INPUT_COLUMNS = ("query_id", "query", "doc_id", "text")
FIRST_STAGE = "first_stage_score"
#: Columns of every output row; ``error`` is null except on rows whose query could not be reranked.
OUTPUT_COLUMNS = ("query_id", "doc_id", "score", "rank", "error")
BUCKET = "_rerank_kit_bucket"


def bucket_of(query_id: Any, buckets: int) -> int:
    """The bucket of a query id: stable across runs and machines (CRC-32 of its text), so reruns find their files."""
    return zlib.crc32(str(query_id).encode("utf-8")) % buckets


@dataclass
class QueryGroup:
    """One query's candidates in scoring order, candidates with bad data set aside with the reason, and
    ``problem``: why the whole query cannot be scored (a null or empty query), if so."""

    query_id: Any
    query: Any
    doc_ids: list[Any] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    rejected: list[tuple[Any, str]] = field(default_factory=list)
    problem: str | None = None

    @property
    def size(self) -> int:
        return len(self.doc_ids) + len(self.rejected)


def query_groups(table: Any, text_column: str = "text") -> list[QueryGroup]:
    """Split rows into query groups, candidates in first-stage order (``first_stage_score`` descending, then doc_id)."""
    order = [("query_id", "ascending")]
    if FIRST_STAGE in table.column_names:
        order.append((FIRST_STAGE, "descending"))
    order.append(("doc_id", "ascending"))
    table = table.sort_by(order)
    groups: list[QueryGroup] = []
    rows = zip(*(table.column(name).to_pylist() for name in ("query_id", "query", "doc_id", text_column)))
    for query_id, query, doc_id, text in rows:
        if not groups or groups[-1].query_id != query_id:
            groups.append(QueryGroup(query_id, query))
        group = groups[-1]
        if group.problem is None:
            group.problem = _query_problem(query_id, query)
        if isinstance(text, str):
            group.doc_ids.append(doc_id)
            group.texts.append(text)
        else:
            group.rejected.append((doc_id, f"{text_column} is {'null' if text is None else type(text).__name__}"))
    return groups


def _query_problem(query_id: Any, query: Any) -> str | None:
    if query_id is None:
        return "query_id is null"
    if not isinstance(query, str) or not query.strip():
        return f"query is {'null' if query is None else 'empty or not a string'}"
    return None


def chunks(groups: Sequence[QueryGroup], size: int) -> Iterator[Sequence[QueryGroup]]:
    """``groups`` in runs of ``size``: the queries one ``rerank_many`` call packs into shared batches."""
    for start in range(0, len(groups), size):
        yield groups[start : start + size]


class RankedRows:
    """Output rows collected column by column, with the id types of the input so every block has one schema."""

    def __init__(self, input_schema: Any) -> None:
        self.input_schema = input_schema
        self.columns: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}

    def add(self, group: QueryGroup, outcome: list[RerankResult] | str) -> None:
        """A ranked group (best first), or every candidate of a failed group with the reason; rejected rows last."""
        if isinstance(outcome, str):
            ranked = [(doc_id, None, None, outcome) for doc_id in group.doc_ids]
        else:
            ranked = [(group.doc_ids[r.index], r.score, rank, None) for rank, r in enumerate(outcome, start=1)]
        ranked += [(doc_id, None, None, reason) for doc_id, reason in group.rejected]
        for doc_id, score, rank, error in ranked:
            for name, value in zip(OUTPUT_COLUMNS, (group.query_id, doc_id, score, rank, error)):
                self.columns[name].append(value)

    def table(self) -> Any:
        pa = require("pyarrow", "ray")
        types = {"query_id": self.input_schema.field("query_id").type, "doc_id": self.input_schema.field("doc_id").type,
                 "score": pa.float64(), "rank": pa.int64(), "error": pa.string()}
        return pa.table({name: pa.array(self.columns[name], type=types[name]) for name in OUTPUT_COLUMNS})
