"""Reranker specs on the command line: ``KIND[:VALUE]``, for example ``cross-encoder:BAAI/bge-reranker-base``.

The kinds are ``none`` (keep the first-stage order) and every backend of :data:`rerank_kit.backends.BACKENDS`
that has a name; ``VALUE`` sets the backend's model (``http``: the server URL, optionally ``PROTOCOL@URL``
such as ``http:vllm-score@http://localhost:8000``). Without ``:VALUE`` the
backend's default model is used; ``embedding:offline`` is the all-MiniLM-L6-v2 copy of the ``offline-model``
extra. LLM rerankers may also be written ``llm:openai:MODEL`` / ``llm:claude:MODEL``. Backends are imported only
when a spec names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rerank_kit.backends import backend_named, cli_backends
from rerank_kit.scorer import Scorer


def spec_help() -> str:
    """The spec forms for ``--help``, from the registry."""
    forms = [f"{b.name}:{'URL' if b.spec_option == 'base_url' else 'MODEL'}" for b in cli_backends()]
    return ", ".join(["none", *forms])


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
    if kind == "llm":  # llm:PROVIDER:MODEL names the LLM backend PROVIDER
        kind, _, value = value.partition(":")
        kind = kind.strip().lower()
        providers = [b.name for b in cli_backends() if "prices" in b.options_class.model_fields]
        if kind not in providers:
            raise ValueError(f"unknown LLM provider {kind!r} in {text!r}; use llm:PROVIDER:MODEL with one of: "
                             f"{', '.join(map(str, providers))}")
    names = [backend.name for backend in cli_backends()]
    if kind != "none" and kind not in names:
        raise ValueError(f"unknown reranker {kind!r} in {text!r}; use one of: none, {', '.join(map(str, names))}")
    if kind == "none" and value:
        raise ValueError(f"'none' takes no value, got {text!r}")
    if kind != "none" and backend_named(kind).spec_value_required and not value:
        raise ValueError(f"{kind} needs the server URL: {kind}:http://localhost:8080")
    return RerankerSpec(kind=kind, value=value.strip() or None, text=text.strip())


def build_scorer(spec: RerankerSpec, *, prices: dict[str, float] | None = None) -> Scorer | None:
    """The scorer a spec names (``None`` for ``none``), built from its registry row; ``prices`` go to LLM backends."""
    if spec.kind == "none":
        return None
    backend = backend_named(spec.kind)
    options: dict[str, Any] = {} if spec.value is None else spec_options(backend.spec_option, spec.value)
    if prices is not None and "prices" in backend.options_class.model_fields:
        options["prices"] = prices
    return backend.scorer_class(**options)


def spec_options(option: str, value: str) -> dict[str, str]:
    """The options a spec's ``VALUE`` sets; a URL may be prefixed by its protocol (``http:cohere@http://host``)."""
    if option == "base_url" and "@" in value and not value.startswith(("http://", "https://")):
        protocol, _, url = value.partition("@")
        return {"protocol": protocol.strip(), option: url.strip()}
    return {option: value}
