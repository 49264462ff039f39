"""Process-wide registry: each (model, device, options) is loaded once, lazily, and shared."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

_models: dict[Hashable, Any] = {}
_load_locks: dict[Hashable, threading.Lock] = {}
_registry_lock = threading.Lock()
load_count: dict[Hashable, int] = {}


def shared_model(key: Hashable, load: Callable[[], Any]) -> Any:
    """Return the model stored under ``key``, calling ``load`` the first time only (thread-safe)."""
    model = _models.get(key)
    if model is not None:
        return model
    with _registry_lock:
        lock = _load_locks.setdefault(key, threading.Lock())
    with lock:
        model = _models.get(key)
        if model is None:
            model = load()
            _models[key] = model
            load_count[key] = load_count.get(key, 0) + 1
    return model


def clear() -> None:
    """Forget every loaded model (their memory is freed once no scorer holds them)."""
    with _registry_lock:
        _models.clear()
        _load_locks.clear()
        load_count.clear()
