"""How sure a difference is: paired tests between two models on the same validation examples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest


@dataclass
class PairedDifference:
    difference: float  # accuracy of a minus accuracy of b
    low: float  # 95% paired-bootstrap interval of the difference
    high: float
    p_value: float  # McNemar's exact test (on the majority vote over seeds)

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_difference(
    correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 2000, seed: int = 0
) -> PairedDifference:
    """Compare two models example by example.

    `correct_*` hold, per validation example, the share of seeds that got it right (0/1 with one seed).
    The bootstrap resamples examples, keeping each example's pair together, so shared difficulty cancels.
    """
    correct_a, correct_b = np.asarray(correct_a, float), np.asarray(correct_b, float)
    delta = correct_a - correct_b
    rng = np.random.default_rng(seed)
    samples = delta[rng.integers(0, len(delta), size=(resamples, len(delta)))].mean(axis=1)
    low, high = np.percentile(samples, [2.5, 97.5])
    a_only = int(((correct_a > 0.5) & (correct_b <= 0.5)).sum())
    b_only = int(((correct_b > 0.5) & (correct_a <= 0.5)).sum())
    p_value = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return PairedDifference(float(delta.mean()), float(low), float(high), float(p_value))
