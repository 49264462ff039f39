"""Which fast-pass scores sit too close to a top-n cut to trust, so exact ones replace them.

Fast mode's bfloat16 pass moves each logit by a small error (measured on the MiniLM stand-in: ~2% of the
scores' spread), enough to swap near-ties at the ``top_n`` cut. Re-scoring only the texts whose fast logits
lie within a margin of the cut, in float32, keeps exact mode's top n at the cost of a few pairs per query.
The margin is learned: three times the rms error measured on the texts re-scored so far, and at least the
largest error seen (the first call re-scores the texts nearest the cut to measure it), so a model whose bf16
error is larger gets a wider one.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
from collections.abc import Sequence

logger = logging.getLogger("rerank_kit.cross_encoder")

#: The margin: this many times the root-mean-square fast-pass error seen on refined texts, and at least the
#: largest single error seen (errors have heavier tails than a normal distribution on some models) ...
ERROR_MULTIPLE = 3.0
#: ... once this many were seen; until then (calibration) the this many texts nearest the cut are re-scored.
MIN_OBSERVED = 16
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
        """How far from the cut a fast logit must lie to be trusted (once calibrated)."""
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

    def near_cut(self, logits: Sequence[float], top_n: int) -> list[int]:
        """Indices of ``logits`` within the margin of the cut between the ``top_n``-th and the next score."""
        if top_n >= len(logits):
            return []
        ranked = sorted(logits, reverse=True)
        inside, outside = ranked[top_n - 1], ranked[top_n]
        if not self.calibrated:  # calibrating: the texts nearest the cut teach the error
            middle = (inside + outside) / 2
            nearest = sorted(range(len(logits)), key=lambda i: abs(logits[i] - middle))[:MIN_OBSERVED]
            return sorted(nearest)
        margin = self.margin
        return [i for i, value in enumerate(logits) if outside - margin <= value <= inside + margin]

    def observe(self, fast: Sequence[float], exact: Sequence[float]) -> None:
        """Record the error of refined texts (fast vs exact logits), widening later margins if it is large."""
        with self._lock:
            self._squares += sum((a - b) ** 2 for a, b in zip(fast, exact))
            self._largest = max([self._largest, *(abs(a - b) for a, b in zip(fast, exact))])
            self._count += len(exact)
