"""Small statistics for choosing between models on a finite evaluation set."""

from __future__ import annotations

import math


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n images: sqrt(p (1 - p) / n).

    p is kept at least 1/n away from 0 and 1, so a perfect score on a small set
    still carries the uncertainty of one image.
    """
    if n < 1:
        return float("inf")
    p = min(max(accuracy, 1.0 / n), 1.0 - 1.0 / n) if n > 1 else 0.5
    return math.sqrt(p * (1.0 - p) / n)


def clearly_better(a: float, b: float, n: int, z: float = 1.0) -> bool:
    """True when accuracy a beats b on the same n images by more than z standard errors."""
    return a - b > z * binomial_se(max(a, b), n)
