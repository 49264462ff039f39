"""Which fast-pass scores sit too close to a top-n cut to trust, so exact ones replace them.

Fast mode's bfloat16 pass moves each logit by a small error (measured on the MiniLM stand-in: ~2% of the
scores' spread), enough to swap near-ties at the ``top_n`` cut. Each text's exact logit lies within a margin of
its fast one; a text is re-scored in float32 only while that interval could put it on the other side of the cut
from some other text (re-scored texts have no interval), a few nearest the cut at a time, since each re-scored
text narrows what remains. This keeps exact mode's top n at the cost of a few pairs per query. The margin is
learned: three times the rms error measured on the texts re-scored so far, and at least the largest error seen
(a model's first refinement re-scores the texts nearest the cut to measure it).
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
from collections.abc import Collection, Sequence

logger = logging.getLogger("rerank_kit.cross_encoder")

#: The margin: this many times the root-mean-square fast-pass error seen on refined texts, and at least the
#: largest single error seen (errors have heavier tails than a normal distribution on some models) ...
ERROR_MULTIPLE = 3.0
#: ... once this many were seen; until then (calibration) this many texts nearest the cut are re-scored.
MIN_OBSERVED = 16
#: Texts re-scored per query in each round, nearest the cut first: each narrows the intervals left to resolve
#: (replayed on 20x100 real bf16 / float32 logits, calibration included, top 10: 4.4 re-scored per query in rounds
#: of 2, 5.9 in one round; re-scoring every text within the margin of the cut at once: 5.3) ...
PER_ROUND = 2
#: ... for this many rounds; then every text still in doubt at once, so a call never takes many rounds.
SMALL_ROUNDS = 4
#: If the calibrated margin exceeds this fraction of a call's logit spread (standard deviation), the bf16 pass
#: does not separate this model's scores: refining would re-score a third or more of the candidates and cost
#: about as much as float32 alone (measured on the MiniLM stand-in: margin 0.18, spread 3.2, ratio 0.06).
MAX_MARGIN_TO_SPREAD = 0.5


class RefinementBand:
    """Picks the texts near a top-n cut and learns the fast pass's error from each refinement."""

    def __init__(self) -> None:
        self._squares = 0.0
        self._largest = 0.0
        self._count = 0
        self._lock = threading.Lock()
        #: set when refinements re-score most candidates: fast mode then runs float32 for this model
        self.unhelpful = False

    @property
    def calibrated(self) -> bool:
        """Whether enough refined texts were seen for the margin to follow the measured error."""
        return self._count >= MIN_OBSERVED

    @property
    def margin(self) -> float:
        """How far a fast logit may lie from the exact one, as learned from the texts re-scored so far."""
        return max(ERROR_MULTIPLE * self.rms_error, self._largest)

    def judge(self, logits: Sequence[Sequence[float]]) -> None:
        """Mark the bf16 pass unhelpful when the calibrated margin is large against these calls' score spread."""
        spreads = [statistics.pstdev(values) for values in logits if len(values) > 1]
        if not self.calibrated or not spreads or self.unhelpful:
            return
        spread = statistics.median(spreads)
        if self.margin > MAX_MARGIN_TO_SPREAD * spread:
            self.unhelpful = True
            logger.warning(
                "mode='fast': the bfloat16 error on this model (margin %.3g) is large against its score spread "
                "(%.3g): refining would cost as much as float32; fast mode (precision='auto') runs float32 for it "
                "from now on",
                self.margin, spread)

    @property
    def observed(self) -> int:
        """How many texts were refined (re-scored in float32) so far."""
        return self._count

    @property
    def rms_error(self) -> float:
        """Root-mean-square difference between fast and exact logits of every text refined so far."""
        return math.sqrt(self._squares / self._count) if self._count else 0.0

    def to_refine(
        self, logits: Sequence[float], top_n: int, exact: Collection[int], round_number: int = 0
    ) -> list[int]:
        """Indices of ``logits`` to re-score next: fast ones that could fall on the other side of the ``top_n`` cut.

        ``exact`` holds the indices already re-scored (their logits are exact). Nearest the cut first,
        :data:`PER_ROUND` of them for the first rounds (calibrating: :data:`MIN_OBSERVED`); empty once the top n
        is settled.
        """
        if top_n >= len(logits):
            return []
        order = sorted(range(len(logits)), key=lambda i: -logits[i])
        inside, outside = order[:top_n], order[top_n:]
        cut = (logits[inside[-1]] + logits[outside[0]]) / 2
        if not self.calibrated:
            return sorted((i for i in order if i not in exact), key=lambda i: abs(logits[i] - cut))[:MIN_OBSERVED]
        margin = self.margin

        def low(i: int) -> float:
            return logits[i] if i in exact else logits[i] - margin

        def high(i: int) -> float:
            return logits[i] if i in exact else logits[i] + margin

        best_outside, worst_inside = max(map(high, outside)), min(map(low, inside))
        doubtful = ([i for i in inside if i not in exact and low(i) <= best_outside]
                    + [i for i in outside if i not in exact and high(i) >= worst_inside])
        doubtful.sort(key=lambda i: abs(logits[i] - cut))
        return doubtful[:PER_ROUND] if round_number < SMALL_ROUNDS else doubtful

    def observe(self, fast: Sequence[float], exact: Sequence[float]) -> None:
        """Record the error of refined texts (fast vs exact logits), widening later margins if it is large."""
        with self._lock:
            self._squares += sum((a - b) ** 2 for a, b in zip(fast, exact))
            self._largest = max([self._largest, *(abs(a - b) for a, b in zip(fast, exact))])
            self._count += len(exact)
