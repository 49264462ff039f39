"""LangChain document compressors backed by rerank-kit scorers."""

from __future__ import annotations

from rerank_kit._lazy import lazy_exports
from rerank_kit.adapter_support import ADAPTER_EXPORTS

__getattr__ = lazy_exports(__name__, ADAPTER_EXPORTS)
__all__ = list(ADAPTER_EXPORTS)
