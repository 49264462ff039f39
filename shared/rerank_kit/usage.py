"""Thread-safe counters for what a provider reports it charged (tokens, search units)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping

from rerank_kit._pickling import PicklesWithoutLock


class UsageMeter(PicklesWithoutLock):
    """Keeps the usage of the last call and the running totals of one scorer.

    Providers report different units (Cohere ``search_units``, Voyage ``total_tokens``, Anthropic
    ``input_tokens``/``output_tokens``/``cache_read_input_tokens``); the meter stores whatever numbers
    the backend records, keyed by the provider's own names.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._total: Counter[str] = Counter()
        self._calls = 0

    def record(self, counts: Mapping[str, float | int | None]) -> None:
        """Add one provider call's counts (``None`` values are ignored)."""
        clean = {key: value for key, value in counts.items() if value is not None}
        with self._lock:
            self._last = dict(clean)
            self._total.update(clean)
            self._calls += 1

    @property
    def last(self) -> dict[str, float]:
        """Counts reported by the most recent provider call."""
        with self._lock:
            return dict(self._last)

    @property
    def total(self) -> dict[str, float]:
        """Counts summed over every call since creation or :meth:`reset`."""
        with self._lock:
            return dict(self._total)

    @property
    def calls(self) -> int:
        """How many provider calls reported usage."""
        with self._lock:
            return self._calls

    def reset(self) -> None:
        """Forget all recorded usage."""
        with self._lock:
            self._last = {}
            self._total = Counter()
            self._calls = 0

    def __repr__(self) -> str:
        return f"UsageMeter(calls={self.calls}, total={self.total})"
