"""How sure a difference is: one test that counts both training noise (seeds) and validation-sample noise.

Two strategies are compared on the same validation examples, each with one or more trained models (seeds).
The difference of their mean accuracies varies for two reasons: another seed trains another model (training
noise), and another draw of validation examples scores it differently (sampling noise). The test estimates
the standard error of the difference with a two-level bootstrap that resamples both:

- validation examples, with the same draw for both strategies (paired: shared difficulty cancels), by Poisson
  weights;
- seeds, independently within each strategy, with each replicate's seed deviation scaled by sqrt(S / (S - 1)),
  since resampling S seeds with replacement shrinks their variance by (S - 1) / S.

With 3 to 5 seeds the seed part of that error is itself estimated from a handful of numbers, so the interval and
the p-value use Student's t with Welch-Satterthwaite degrees of freedom instead of normal quantiles. The interval
and the p-value come from the same standard error and the same t, so a difference is significant exactly when
its interval excludes zero. With one seed on either side training noise is not measured at all: the difference is
reported, untested. `docs/statistics.md` explains the choices and the simulations behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

ALPHA = 0.05
RESAMPLES = 1000  # enough for a standard error within a few percent; the t quantiles do the rest
UNTESTED = "1 seed: untested"


@dataclass(frozen=True)
class Difference:
    """Mean accuracy of a minus that of b, with its test (None where a side has a single seed)."""

    difference: float
    seeds: tuple[int, int]
    standard_error: float | None = None
    df: float | None = None
    p_value: float | None = None  # two-sided; after `holm`, adjusted for the family of tests
    level: float = 1 - ALPHA  # coverage of [low, high]; a Holm adjustment widens it with the p-value

    @property
    def tested(self) -> bool:
        return self.p_value is not None

    @property
    def significant(self) -> bool | None:
        return None if self.p_value is None else self.p_value < ALPHA

    @property
    def interval(self) -> tuple[float | None, float | None]:
        if self.standard_error is None or self.df is None:
            return None, None
        half = stats.t.ppf(0.5 + self.level / 2, self.df) * self.standard_error
        return self.difference - half, self.difference + half

    def negated(self) -> Difference:
        """The same test read as b - a."""
        return replace(self, difference=-self.difference, seeds=self.seeds[::-1])

    def record(self) -> dict:
        """Plain values for tables and the API."""
        low, high = self.interval
        return {
            "difference": self.difference,
            "low": low,
            "high": high,
            "p_value": self.p_value,
            "significant": self.significant,
            "seeds": list(self.seeds),
            "test": "seeds + examples" if self.tested else UNTESTED,
        }


def seed_example_test(
    correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> Difference:
    """Compare strategy a with b. `correct_*` are (seeds, examples) arrays: 1 where that model got the example right.

    Both hold the same validation examples in the same order; the seeds of a and b are independent.
    """
    a = np.atleast_2d(np.asarray(correct_a, dtype=np.float32))
    b = np.atleast_2d(np.asarray(correct_b, dtype=np.float32))
    if a.shape[1] != b.shape[1]:
        raise ValueError("both strategies must be scored on the same validation examples")
    difference = float(a.mean(dtype=np.float64) - b.mean(dtype=np.float64))
    seeds = (len(a), len(b))
    if min(seeds) < 2:
        return Difference(difference, seeds)
    rng = np.random.default_rng(seed)
    replicates = np.concatenate(
        [_replicate(a, b, rng, min(250, resamples - start)) for start in range(0, resamples, 250)]
    )
    # Resampling examples and then seeds counts the seed-by-example noise twice (each model's own luck on each
    # example): once in each level. Take one copy out, estimated from the spread across seeds within examples.
    interaction = sum(_interaction_variance(x) / x.size for x in (a, b))
    seed_parts = [np.var(x.mean(axis=1), ddof=1) / len(x) for x in (a, b)]
    variance = max(float(replicates.var(ddof=1)) - interaction, sum(seed_parts))
    if variance == 0.0:  # the two strategies' models agree on every example
        return Difference(difference, seeds, 0.0, np.inf, 1.0 if difference == 0 else 0.0)
    se = variance**0.5
    example_part = variance - sum(seed_parts)
    denominator = sum(v**2 / (len(x) - 1) for v, x in zip(seed_parts, (a, b), strict=True))
    denominator += example_part**2 / (a.shape[1] - 1)
    df = variance**2 / denominator if denominator > 0 else np.inf
    p_value = float(2 * stats.t.sf(abs(difference) / se, df))
    return Difference(difference, seeds, se, float(df), p_value)


def _interaction_variance(correct: np.ndarray) -> float:
    """Variance of one model's answer on one example beyond its seed's overall level (method of moments):
    the within-example spread across seeds holds it plus the seed variance, which the spread of the seeds'
    accuracies estimates."""
    n_examples = correct.shape[1]
    within = float(np.var(correct, axis=0, ddof=1).mean())
    between = float(np.var(correct.mean(axis=1), ddof=1))
    return max(within - between, 0.0) / (1 - 1 / n_examples)


def _replicate(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` bootstrap replicates of mean(a) - mean(b): examples reweighted jointly, seeds drawn per strategy."""
    weights = rng.poisson(1.0, size=(count, a.shape[1])).astype(np.float32)
    totals = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    return _seed_mean(weights @ a.T / totals, rng) - _seed_mean(weights @ b.T / totals, rng)


def _seed_mean(accuracy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mean over seeds drawn with replacement, per replicate (rows), with the small-sample variance correction."""
    count, n_seeds = accuracy.shape
    drawn = np.take_along_axis(accuracy, rng.integers(0, n_seeds, size=(count, n_seeds)), axis=1).mean(axis=1)
    centre = accuracy.mean(axis=1)
    return centre + np.sqrt(n_seeds / (n_seeds - 1)) * (drawn - centre)


def holm(tests: list[Difference]) -> list[Difference]:
    """Holm-adjusted p-values over the tested members of a family; each interval is widened at the same rate
    (level 1 - ALPHA * p / adjusted p), so it excludes zero exactly when the adjusted p is below ALPHA."""
    tested = sorted((i for i, t in enumerate(tests) if t.tested), key=lambda i: tests[i].p_value)
    out = list(tests)
    running = 0.0
    for rank, i in enumerate(tested):
        raw = tests[i].p_value
        running = max(running, min(1.0, (len(tested) - rank) * raw))
        level = 1 - ALPHA * raw / running if running > 0 else tests[i].level
        out[i] = replace(tests[i], p_value=running, level=level)
    return out
