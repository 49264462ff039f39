"""Reranker specs on the command line: ``KIND[:VALUE]``, for example ``cross-encoder:BAAI/bge-reranker-base``.

Kinds: ``none`` (keep the first-stage order), ``cross-encoder:MODEL``, ``embedding:MODEL`` (``embedding:offline``
is the all-MiniLM-L6-v2 copy shipped by the ``offline-model`` extra), ``cohere:MODEL``, ``voyage:MODEL``,
``claude:MODEL`` and ``http:URL`` (a TEI/Infinity style ``/rerank`` server). Without ``:VALUE`` the backend's
default model is used. Backends are imported only when a spec names them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from rerank_kit.scorer import Scorer

#: Spec kind -> name of the scorer class exported by ``rerank_kit``.
BACKENDS = {
    "cross-encoder": "CrossEncoderScorer",
    "embedding": "EmbeddingScorer",
    "cohere": "CohereScorer",
    "voyage": "VoyageScorer",
    "claude": "ClaudeScorer",
    "http": "HTTPRerankScorer",
}
OFFLINE_EMBEDDING = "offline"


@dataclass(frozen=True)
class RerankerSpec:
    """A parsed spec: ``kind`` and its model or URL (``None`` for the backend's default)."""

    kind: str
    value: str | None
    text: str


def parse_spec(text: str) -> RerankerSpec:
    """Parse ``KIND[:VALUE]``; the value may itself contain colons (URLs)."""
    kind, _, value = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind != "none" and kind not in BACKENDS:
        raise ValueError(f"unknown reranker {kind!r} in {text!r}; use one of: none, {', '.join(BACKENDS)}")
    if kind == "none" and value:
        raise ValueError(f"'none' takes no value, got {text!r}")
    if kind == "http" and not value:
        raise ValueError("http needs the server URL: http:http://localhost:8080")
    return RerankerSpec(kind=kind, value=value.strip() or None, text=text.strip())


def build_scorer(spec: RerankerSpec) -> Scorer | None:
    """The scorer a spec names (``None`` for ``none``), built from the class ``rerank_kit`` exports for it."""
    if spec.kind == "none":
        return None
    scorer_class = getattr(importlib.import_module("rerank_kit"), BACKENDS[spec.kind])
    if spec.value is None:
        return scorer_class()
    if spec.kind == "embedding" and spec.value == OFFLINE_EMBEDDING:
        from rerank_kit.scorers.local.embedding import offline_model_path

        return scorer_class(offline_model_path())
    return scorer_class(spec.value)
