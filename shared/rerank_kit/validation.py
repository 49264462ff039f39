"""Input checks shared by every entry point, raising early errors that name the problem."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def check_query(query: Any) -> str:
    """Return ``query`` if it is a non-blank string."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("query is empty or whitespace; a reranker needs a query to score against")
    return query


def check_texts(texts: Any) -> list[str]:
    """Return ``texts`` as a list if every item is a string."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__}")
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] must be a str, got {type(text).__name__}")
    return list(texts)


def check_top_n(top_n: Any) -> int | None:
    """Return ``top_n`` if it is ``None`` (keep all) or a positive int."""
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, int):
        raise TypeError(f"top_n must be a positive int or None, got {type(top_n).__name__}")
    if top_n <= 0:
        raise ValueError(f"top_n must be >= 1 (or None for all), got {top_n}")
    return top_n


def check_threshold(score_threshold: Any) -> float | None:
    """Return ``score_threshold`` as a float if it is ``None`` or a finite number."""
    if score_threshold is None:
        return None
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, (int, float)):
        raise TypeError(f"score_threshold must be a number or None, got {type(score_threshold).__name__}")
    if not math.isfinite(score_threshold):
        raise ValueError(f"score_threshold must be finite, got {score_threshold}")
    return float(score_threshold)


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an int >= 1, naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value
