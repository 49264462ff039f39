"""What both framework adapters need from the core to build a scorer from their configuration fields."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def scorer_options(config: Mapping[str, Any], policy_fields: Iterable[str]) -> dict[str, Any]:
    """The scorer's keyword arguments: every field that is not a policy field, secrets unwrapped.

    Adapters declare their backend's parameters as fields named like the scorer's arguments, so the
    scorer is built the same way for every backend in both frameworks. ``SecretStr`` values (anything
    with ``get_secret_value``) are unwrapped only here, at the hand-over to the scorer.
    """
    skip = set(policy_fields)
    return {
        name: value.get_secret_value() if hasattr(value, "get_secret_value") else value
        for name, value in config.items()
        if name not in skip
    }


#: Public names of both adapter packages and the module defining each: the adapters mirror each other.
ADAPTER_EXPORTS = {
    "BaseRerank": ".base",
    "Rerank": ".base",
    "CrossEncoderRerank": ".cross_encoder",
    "CohereRerank": ".api",
    "VoyageRerank": ".api",
    "HTTPRerank": ".api",
    "FallbackRerank": ".api",
    "ClaudeRerank": ".claude",
    "EmbeddingRerank": ".embedding",
    "TwoStageRetriever": ".pipeline",
    "FusionRetriever": ".pipeline",
}
