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


class DataError(ValueError):
    """Bad input data; the message names the file, the line (for line-based files) and what was wrong."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path, self.line = Path(path), line
        super().__init__(f"{path}:{line}: {message}" if line is not None else f"{path}: {message}")


def load_beir(folder: str | Path, split: str = "test") -> BeirDataset:
    """Read a BEIR folder; a document's text is its title and text joined by a space (as BEIR does)."""
    folder = Path(folder)
    corpus: dict[str, str] = {}
    path = folder / "corpus.jsonl"
    for number, row in _jsonl(path):
        doc_id = _id(row, path, number)
        title = _string(row, "title", path, number, required=False)
        text = _string(row, "text", path, number, nullable=True)  # null: the title alone
        corpus[doc_id] = " ".join(part for part in (title, text) if part)
    path = folder / "queries.jsonl"
    queries = {_id(row, path, number): _string(row, "text", path, number) for number, row in _jsonl(path)}
    qrels = _qrels(folder / "qrels" / f"{split}.tsv", queries, corpus)
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)


def read_lines(path: Path, *, newline: str | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, line)`` of a UTF-8 text file; a line that is not UTF-8 is a DataError."""
    with path.open(encoding="utf-8", errors="surrogateescape", newline=newline) as lines:
        for number, line in enumerate(lines, start=1):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise DataError(path, number, f"not valid UTF-8 (column {exc.start + 1})") from None
            yield number, line


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a BEIR dataset needs corpus.jsonl, queries.jsonl and qrels/")
    empty = True
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise DataError(path, number, f"expected a JSON object, got {_json_type(row)}")
        empty = False
        yield number, row
    if empty:
        raise DataError(path, None, "no rows: the file is empty")


def _id(row: dict[str, Any], path: Path, number: int) -> str:
    """A row's ``_id`` as a string: BEIR ids are strings, integers are accepted and converted."""
    if "_id" not in row:
        raise DataError(path, number, "field '_id' is missing")
    value = row["_id"]
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise DataError(path, number, f"field '_id' must be a string or an integer, got {_json_type(value)}")
    return str(value)


def _string(row: dict[str, Any], key: str, path: Path, number: int, *, required: bool = True,
            nullable: bool = False) -> str:
    """Field ``key`` of a row, which must be a string (``""`` for an absent optional or a null nullable field)."""
    if key not in row:
        if required:
            raise DataError(path, number, f"field '{key}' is missing")
        return ""
    value = row[key]
    if value is None and (nullable or not required):
        return ""
    if not isinstance(value, str):
        raise DataError(path, number, f"field '{key}' must be a string, got {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    """The JSON name of a value's type, with the value itself when it is a short scalar."""
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "array",
             dict: "object"}
    name = names.get(type(value), type(value).__name__)
    return name if isinstance(value, (list, dict, type(None))) else f"{name} {json.dumps(value)[:40]}"


def _qrels(path: Path, queries: dict[str, str], corpus: dict[str, str]) -> dict[str, dict[str, int]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: judgements go in qrels/<split>.tsv (query-id, corpus-id, score)")
    qrels: dict[str, dict[str, int]] = {}
    reader = csv.reader((line for _, line in read_lines(path, newline="")), delimiter="\t")
    try:
        for row in reader:
            number = reader.line_num
            if not row or (number == 1 and row[0] == "query-id"):
                continue
            if len(row) != 3:
                raise DataError(
                    path, number, f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(row)}"
                )
            query_id, doc_id, grade = row
            try:
                score = int(grade)
            except ValueError:
                raise DataError(path, number, f"column 'score' must be an integer, got {grade!r}") from None
            if query_id not in queries:
                raise DataError(path, number, f"column 'query-id' names {query_id!r}, which is not in queries.jsonl")
            if doc_id not in corpus:
                raise DataError(path, number, f"column 'corpus-id' names {doc_id!r}, which is not in corpus.jsonl")
            qrels.setdefault(query_id, {})[doc_id] = score
    except csv.Error as exc:
        raise DataError(path, reader.line_num, f"not valid TSV ({exc})") from None
    if not qrels:
        raise DataError(path, None, "no judgements: nothing to evaluate")
    return qrels
