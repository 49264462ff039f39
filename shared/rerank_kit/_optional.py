"""Lazy imports of optional backends, failing with the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ImportError that says which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module!r} is required for this backend but is not installed. "
            f'Install it with: pip install "rerank-kit[{extra}]"'
        ) from exc
