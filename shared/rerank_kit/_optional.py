"""Lazy imports of optional backends, failing with the extra that provides them."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
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


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def ensure_installed(modules: Iterable[str], extra: str | None) -> None:
    """Raise the ImportError naming ``extra`` unless every module is installed (checked without importing)."""
    missing = [module for module in modules if not installed(module)]
    if missing and extra is not None:
        raise ImportError(
            f"{', '.join(map(repr, missing))} {'is' if len(missing) == 1 else 'are'} required for this backend but "
            f'not installed. Install it with: pip install "rerank-kit[{extra}]"'
        )
