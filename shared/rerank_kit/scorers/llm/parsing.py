"""Pure functions turning what a model really answers into a complete ranking or score list, and windowing.

Nothing here trusts a model-given number: ids are checked against 1..n before use, duplicates and
out-of-range ids are dropped, and every repair is reported so the caller can warn about it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_ID_TEXT = re.compile(r"\s*\[?\s*(-?\d+)\s*\]?\s*")
_BRACKETED_ID = re.compile(r"\[\s*(-?\d+)\s*\]")
_INTEGER = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class RankingParse:
    """A ranking made complete: ``order`` holds every 0-based position exactly once, best first."""

    order: list[int]
    valid: int
    ignored: list[Any] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Whether the model named at least one valid id (an empty or all-invalid answer ranks nothing)."""
        return self.valid > 0

    def problems(self) -> str:
        """What had to be repaired, or an empty string."""
        return _describe(ignored=self.ignored, duplicates=self.duplicates, missing=self.missing)


@dataclass
class ScoresParse:
    """Grades by 0-based position; ``None`` where the model gave no usable grade."""

    scores: list[float | None]
    ignored: list[Any] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    clamped: list[int] = field(default_factory=list)

    @property
    def missing(self) -> list[int]:
        """1-based ids the model did not grade."""
        return [position + 1 for position, score in enumerate(self.scores) if score is None]

    @property
    def usable(self) -> bool:
        """Whether at least one passage got a grade."""
        return any(score is not None for score in self.scores)

    def problems(self) -> str:
        """What had to be repaired, or an empty string."""
        return _describe(ignored=self.ignored, duplicates=self.duplicates, missing=self.missing, clamped=self.clamped)

    def filled(self, default: float) -> list[float]:
        """The grades with ``default`` for every passage the model left out."""
        return [default if score is None else score for score in self.scores]


def checked_id(value: Any, n: int) -> int | None:
    """The 0-based position for a model-given 1-based id, or ``None`` if it is not an id in 1..n."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        match = _ID_TEXT.fullmatch(value)
        value = int(match.group(1)) if match else None
    if not isinstance(value, int) or not 1 <= value <= n:
        return None
    return value - 1


def complete_ranking(raw_ids: Sequence[Any], n: int) -> RankingParse:
    """Keep valid first mentions in the model's order, then append left-out positions in input order."""
    seen: set[int] = set()
    order: list[int] = []
    ignored: list[Any] = []
    duplicates: list[int] = []
    for raw in raw_ids:
        position = checked_id(raw, n)
        if position is None:
            ignored.append(raw)
        elif position in seen:
            duplicates.append(position + 1)
        else:
            seen.add(position)
            order.append(position)
    valid = len(order)
    missing = [position for position in range(n) if position not in seen]
    order.extend(missing)
    return RankingParse(order, valid, ignored, duplicates, [position + 1 for position in missing])


def ranking_from_tool_input(tool_input: Any, n: int) -> RankingParse:
    """Parse a ``submit_ranking`` tool input (``{"ranking": [...]}``); a string ranking is read as text."""
    raw = tool_input.get("ranking") if isinstance(tool_input, Mapping) else None
    if isinstance(raw, str):
        return complete_ranking(ids_in_text(raw), n)
    if isinstance(raw, Sequence):
        return complete_ranking(list(raw), n)
    return complete_ranking([], n)


def ranking_from_text(text: str, n: int) -> RankingParse:
    """Parse a free-text answer: a JSON object with ``ranking`` if present, else the ids in reading order."""
    embedded = json_object_in(text)
    if embedded is not None and "ranking" in embedded:
        return ranking_from_tool_input(embedded, n)
    return complete_ranking(ids_in_text(text), n)


def ids_in_text(text: str) -> list[int]:
    """Integers in ``text``; only the bracketed ones (``[3] > [1]``) when there are any."""
    bracketed = _BRACKETED_ID.findall(text)
    return [int(token) for token in (bracketed or _INTEGER.findall(text))]


def scores_from_tool_input(tool_input: Any, n: int, low: float, high: float) -> ScoresParse:
    """Parse a ``submit_scores`` tool input: ``{"scores": [{"id": 1, "score": 7}, ...]}`` or an id->score map."""
    raw = tool_input.get("scores") if isinstance(tool_input, Mapping) else None
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, Sequence) and not isinstance(raw, str):
        pairs = [(item.get("id"), item.get("score")) if isinstance(item, Mapping) else (item, None) for item in raw]
    else:
        pairs = []
    return collect_scores(pairs, n, low, high)


def scores_from_text(text: str, n: int, low: float, high: float) -> ScoresParse:
    """Parse a free-text answer: a JSON object with ``scores`` if present, else ``id ... score`` per line."""
    embedded = json_object_in(text)
    if embedded is not None and "scores" in embedded:
        return scores_from_tool_input(embedded, n, low, high)
    pairs = []
    for line in text.splitlines():
        numbers = _NUMBER.findall(line)
        if len(numbers) >= 2:
            pairs.append((numbers[0], numbers[1]))
    return collect_scores(pairs, n, low, high)


def collect_scores(pairs: Sequence[tuple[Any, Any]], n: int, low: float, high: float) -> ScoresParse:
    """Keep the first finite grade per valid id, clamped to [low, high]."""
    scores: list[float | None] = [None] * n
    ignored: list[Any] = []
    duplicates: list[int] = []
    clamped: list[int] = []
    for raw_id, raw_score in pairs:
        position = checked_id(raw_id, n)
        value = _finite(raw_score)
        if position is None or value is None:
            ignored.append({"id": raw_id, "score": raw_score})
        elif scores[position] is not None:
            duplicates.append(position + 1)
        else:
            if not low <= value <= high:
                clamped.append(position + 1)
                value = min(max(value, low), high)
            scores[position] = value
    return ScoresParse(scores, ignored, duplicates, clamped)


def json_object_in(text: str) -> dict[str, Any] | None:
    """The outermost ``{...}`` in ``text`` if it parses as a JSON object."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value = json.loads(text[start : end + 1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def sliding_windows(n: int, window_size: int, step: int) -> list[tuple[int, int]]:
    """RankGPT's windows over positions ``[start, end)``, from the bottom of the list up to the top.

    Each window overlaps the previous by ``window_size - step`` so strong passages can climb; the last
    window always starts at 0, so the top of the list is judged last.
    """
    check_window(window_size, step)
    if n <= 0:
        return []
    windows = []
    end = n
    while True:
        start = max(end - window_size, 0)
        windows.append((start, end))
        if start == 0:
            return windows
        end -= step


def window_waves(n: int, window_size: int, step: int) -> list[list[tuple[int, int]]]:
    """:func:`sliding_windows` grouped into waves that can run at once, giving the sequential result.

    A window waits for every earlier window it overlaps (those decide which passages it sees); windows
    that overlap no unfinished earlier one share a wave. With ``step >= window_size`` all windows are
    disjoint and form one wave; with overlap (RankGPT's default) each wave holds one window.
    """
    waves: list[list[tuple[int, int]]] = []
    wave_of: list[int] = []
    windows = sliding_windows(n, window_size, step)
    for index, (start, end) in enumerate(windows):
        before = [wave_of[j] for j, (s, e) in enumerate(windows[:index]) if s < end and start < e]
        wave = max(before, default=-1) + 1
        wave_of.append(wave)
        if wave == len(waves):
            waves.append([])
        waves[wave].append((start, end))
    return waves


_YES, _NO = frozenset({"yes", "y", "true"}), frozenset({"no", "n", "false"})


def yes_probability(top_logprobs: Mapping[str, float]) -> float | None:
    """P(yes) from one token's alternatives, normalised over yes and no; ``None`` if neither is among them.

    Case, spaces and punctuation do not matter (``" Yes"``, ``"YES."``); a side missing from the alternatives
    counts at the smallest probability listed, an upper bound of what it had.
    """
    yes = no = 0.0
    floor = math.inf
    for token, logprob in top_logprobs.items():
        value = _finite(logprob)
        if value is None or not isinstance(token, str):
            continue
        probability = math.exp(min(value, 0.0))
        floor = min(floor, probability)
        word = token.strip().strip(".,:;!\"'").lower()
        if word in _YES:
            yes += probability
        elif word in _NO:
            no += probability
    if yes == 0.0 and no == 0.0:
        return None
    yes, no = yes or floor, no or floor
    return yes / (yes + no)


def check_window(window_size: int, step: int) -> None:
    """Raise unless ``window_size >= 2`` and ``1 <= step <= window_size`` (both ints)."""
    valid = all(isinstance(v, int) and not isinstance(v, bool) for v in (window_size, step))
    if not valid or window_size < 2 or not 1 <= step <= window_size:
        raise ValueError(f"need window_size >= 2 and 1 <= step <= window_size, got {window_size!r} and {step!r}")


def reorder_window(order: Sequence[int], start: int, end: int, permutation: Sequence[int]) -> list[int]:
    """``order`` with its slice ``[start, end)`` rearranged by ``permutation`` (0-based, within the window)."""
    window = list(order[start:end])
    if sorted(permutation) != list(range(len(window))):
        raise ValueError(f"permutation {list(permutation)} does not cover a window of {len(window)}")
    return [*order[:start], *(window[i] for i in permutation), *order[end:]]


def rank_scores(order: Sequence[int]) -> list[float]:
    """Scores by final rank: the passage at 0-based rank ``r`` of ``n`` gets ``(n - r) / n``.

    The best gets 1.0, the last 1/n; scores are distinct and strictly decreasing with rank, so a
    stable descending sort reproduces the model's order exactly.
    """
    n = len(order)
    scores = [0.0] * n
    for rank, position in enumerate(order):
        scores[position] = (n - rank) / n
    return scores


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _describe(**problems: list[Any]) -> str:
    return "; ".join(f"{name} {values}" for name, values in problems.items() if values)
