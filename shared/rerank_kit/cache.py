"""Score caches: an in-memory LRU (default for local models) and a persistent SQLite file."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from rerank_kit._pickling import PicklesWithoutLock

CacheKey = tuple[str, str, str]


def cache_keys(scorer_key: str, query: str, texts: Sequence[str]) -> list[CacheKey]:
    """Keys for (scorer settings, query, text); texts are hashed so keys stay small (lone surrogates allowed)."""
    return [(scorer_key, query, hashlib.blake2b(_utf8(text), digest_size=16).hexdigest()) for text in texts]


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text``, keeping lone surrogates (which plain ``encode()`` rejects)."""
    return text.encode("utf-8", "surrogatepass")


class ScoreCache(Protocol):
    """What :class:`~rerank_kit.Reranker` needs from a cache."""

    hits: int
    misses: int

    def get_many(self, keys: Sequence[CacheKey]) -> list[float | None]: ...

    def put_many(self, items: Sequence[tuple[CacheKey, float]]) -> None: ...


class LRUScoreCache(PicklesWithoutLock):
    """Thread-safe in-memory cache holding at most ``max_entries`` scores, least recently used evicted."""

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[CacheKey, float] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[CacheKey]) -> list[float | None]:
        """Scores for ``keys`` (``None`` where missing), counting hits and misses."""
        found: list[float | None] = []
        with self._lock:
            for key in keys:
                value = self._data.get(key)
                if value is None:
                    self.misses += 1
                else:
                    self._data.move_to_end(key)
                    self.hits += 1
                found.append(value)
        return found

    def put_many(self, items: Sequence[tuple[CacheKey, float]]) -> None:
        """Store scores, evicting the least recently used beyond ``max_entries``."""
        with self._lock:
            for key, value in items:
                self._data[key] = value
                self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0


_TABLE = "scores_v2"


def _row_key(key: CacheKey) -> tuple[bytes, bytes, str]:
    """A cache key as SQLite parameters: scorer and query as surrogate-safe UTF-8 bytes."""
    scorer_key, query, text_hash = key
    return _utf8(scorer_key), _utf8(query), text_hash


class SQLiteScoreCache:
    """Persistent cache in one SQLite file, for offline batch jobs that are re-run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        # scorer and query are stored as UTF-8 BLOBs: sqlite3 rejects str with lone surrogates. The table
        # name changed with that layout; an old file's "scores" table is left alone and unused.
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} (scorer BLOB, query BLOB, text_hash TEXT, score REAL,"
            " PRIMARY KEY (scorer, query, text_hash))"
        )
        self._db.commit()

    def get_many(self, keys: Sequence[CacheKey]) -> list[float | None]:
        """Scores for ``keys`` (``None`` where missing), counting hits and misses."""
        found: list[float | None] = []
        with self._lock:
            for key in keys:
                row = self._db.execute(
                    f"SELECT score FROM {_TABLE} WHERE scorer=? AND query=? AND text_hash=?", _row_key(key)
                ).fetchone()
                if row is None:
                    self.misses += 1
                    found.append(None)
                else:
                    self.hits += 1
                    found.append(float(row[0]))
        return found

    def put_many(self, items: Sequence[tuple[CacheKey, float]]) -> None:
        """Store scores durably."""
        with self._lock:
            self._db.executemany(
                f"INSERT OR REPLACE INTO {_TABLE} VALUES (?, ?, ?, ?)",
                [(*_row_key(key), value) for key, value in items],
            )
            self._db.commit()

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()
