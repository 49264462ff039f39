"""Loads a dataset in the BEIR layout: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BeirDataset:
    """Documents and queries by id, and graded judgements ``qrels[query_id][doc_id] = grade``."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def judged_query_ids(self) -> list[str]:
        """Queries that have judgements, in the order of ``queries.jsonl``: the ones that can be evaluated."""
        return [query_id for query_id in self.queries if query_id in self.qrels]


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Read a BEIR folder; a document's text is its title and text joined by a space (as BEIR does)."""
    folder = Path(folder)
    corpus = {
        str(row["_id"]): " ".join(part for part in (row.get("title") or "", row["text"]) if part)
        for row in _jsonl(folder / "corpus.jsonl", required=("_id", "text"))
    }
    queries = {str(row["_id"]): row["text"] for row in _jsonl(folder / "queries.jsonl", required=("_id", "text"))}
    qrels = _qrels(folder / "qrels" / f"{split}.tsv")
    unknown_queries = sorted(set(qrels) - set(queries))
    if unknown_queries:
        raise ValueError(f"qrels name queries missing from queries.jsonl: {unknown_queries[:5]}")
    unknown_docs = sorted({doc for judged in qrels.values() for doc in judged} - set(corpus))
    if unknown_docs:
        raise ValueError(f"qrels name documents missing from corpus.jsonl: {unknown_docs[:5]}")
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)


def _jsonl(path: Path, *, required: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a BEIR dataset needs corpus.jsonl, queries.jsonl and qrels/")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            missing = [key for key in required if not isinstance(row, dict) or key not in row]
            if missing:
                raise ValueError(f"{path}:{number}: missing field(s) {missing}")
            yield row


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: judgements go in qrels/<split>.tsv (query-id, corpus-id, score)")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as lines:
        for number, row in enumerate(csv.reader(lines, delimiter="\t"), start=1):
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            if len(row) != 3:
                raise ValueError(f"{path}:{number}: expected 3 tab-separated columns, got {len(row)}")
            query_id, doc_id, grade = row
            try:
                qrels.setdefault(query_id, {})[doc_id] = int(grade)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: relevance grade must be an integer, got {grade!r}") from exc
    return qrels
