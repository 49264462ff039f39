"""LlamaIndex node postprocessors backed by rerank-kit scorers: one ``<Name>Rerank`` per registered backend."""

from __future__ import annotations

from rerank_kit._optional import ensure_installed
from rerank_kit.adapter_support import adapter_exports

ensure_installed(["llama_index.core"], "llamaindex")

__getattr__, __all__ = adapter_exports(__name__)
