"""Score caches: an in-memory LRU (default for local models) and a persistent SQLite file."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

CacheKey = tuple[str, str, str]


def cache_keys(scorer_key: str, query: str, texts: Sequence[str]) -> list[CacheKey]:
    """Keys for (scorer settings, query, text); texts are hashed so keys stay small."""
    return [(scorer_key, query, hashlib.blake2b(text.encode(), digest_size=16).hexdigest()) for text in texts]


class ScoreCache(Protocol):
    """What :class:`~rerank_kit.Reranker` needs from a cache."""

    hits: int
    misses: int

    def get_many(self, keys: Sequence[CacheKey]) -> list[float | None]: ...

    def put_many(self, items: Sequence[tuple[CacheKey, float]]) -> None: ...


class LRUScoreCache:
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


class SQLiteScoreCache:
    """Persistent cache in one SQLite file, for offline batch jobs that are re-run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS scores (scorer TEXT, query TEXT, text_hash TEXT, score REAL,"
            " PRIMARY KEY (scorer, query, text_hash))"
        )
        self._db.commit()

    def get_many(self, keys: Sequence[CacheKey]) -> list[float | None]:
        """Scores for ``keys`` (``None`` where missing), counting hits and misses."""
        found: list[float | None] = []
        with self._lock:
            for key in keys:
                row = self._db.execute(
                    "SELECT score FROM scores WHERE scorer=? AND query=? AND text_hash=?", key
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
                "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", [(*key, value) for key, value in items]
            )
            self._db.commit()

    def close(self) -> None:
        """Close the database file."""
        with self._lock:
            self._db.close()
