"""Small numeric helpers shared by the policy and the scorers."""

from __future__ import annotations

import math


def sigmoid(x: float) -> float:
    """Numerically stable logistic function."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def logit(p: float) -> float:
    """Inverse of :func:`sigmoid`, finite for every float in [0, 1] (clamped to what a float64 sigmoid yields)."""
    p = min(max(p, 5e-324), 1.0 - 2.0**-53)
    return math.log(p) - math.log1p(-p)
