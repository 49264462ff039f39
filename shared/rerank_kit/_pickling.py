"""Pickling for objects that guard their state with a lock: the lock is left out and made anew."""

from __future__ import annotations

import threading
from typing import Any


class PicklesWithoutLock:
    """Mixin: pickles ``__dict__`` without ``_lock`` and gives the copy a fresh lock."""

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
