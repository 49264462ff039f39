"""Rows done / total for a Ray run: actors add the rows they finish to a tally actor; the driver prints it."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from rerank_kit._optional import require


class RowTally:
    """Ray actor state: the number of input rows finished so far."""

    def __init__(self) -> None:
        self.rows = 0

    def add(self, rows: int) -> None:
        self.rows += rows

    def count(self) -> int:
        return self.rows


def row_tally() -> Any:
    """A new tally actor (no CPU reserved: it only counts)."""
    ray = require("ray", "ray")
    return ray.remote(num_cpus=0)(RowTally).remote()


class ProgressLine:
    """While open, prints ``reranked DONE / TOTAL rows`` to ``stream`` every ``every`` seconds when it changed."""

    def __init__(self, tally: Any, total: int, stream: TextIO = sys.stderr, every: float = 2.0) -> None:
        self.tally = tally
        self.total = total
        self.stream = stream
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rerank-kit-progress", daemon=True)
        self._shown = -1

    def __enter__(self) -> ProgressLine:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._show()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._show()

    def _show(self) -> None:
        ray = require("ray", "ray")
        try:
            done = int(ray.get(self.tally.count.remote(), timeout=10))
        except Exception:  # the tally is best effort: a lost count never stops the run
            return
        if done != self._shown:
            self._shown = done
            share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
            print(f"rerank-kit: reranked {done:,} / {self.total:,} rows{share}", file=self.stream, flush=True)
