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
its interval excludes zero. Below 3 seeds on either side there is no test: with one seed training noise is not
measured at all, and with two the test is liberal (8.3% false alarms at a 5% level at 3 points of training noise,
`python -m bench.stats_simulation`). The difference is reported, untested. `docs/statistics.md` explains the choices
and the simulations behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8  # what the planner (`Noise.detectable`) plans for
QUANTILES = 40  # per side, for the spread of the test's own standard error in the planner
RESAMPLES = 1000  # enough for a standard error within a few percent; the t quantiles do the rest
MIN_SEEDS = 3  # a side with fewer seeds is not tested (see above)
UNTESTED = f"fewer than {MIN_SEEDS} seeds: untested"


@dataclass(frozen=True)
class Difference:
    """Mean accuracy of a minus that of b, with its test (None where a side has fewer than MIN_SEEDS seeds)."""

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
    if min(seeds) < MIN_SEEDS:
        return Difference(difference, seeds)
    rng = np.random.default_rng(seed)
    replicates = np.concatenate(
        [_replicate(a, b, rng, min(250, resamples - start)) for start in range(0, resamples, 250)]
    )
    # Resampling examples and then seeds counts the seed-by-example noise (each model's own luck on each example)
    # three times: in the examples' level, in the seeds' level, and again there, since reweighting the examples
    # spreads the seeds' accuracies by that luck once more. Take two copies out, estimated from the spread across
    # seeds within examples.
    interaction = sum(_interaction_variance(x) / x.size for x in (a, b))
    seed_parts = [np.var(x.mean(axis=1), ddof=1) / len(x) for x in (a, b)]
    variance = max(float(replicates.var(ddof=1)) - 2 * interaction, sum(seed_parts))
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


@dataclass(frozen=True)
class Noise:
    """A run's noise on one split, as variances of accuracy (fractions), and what it lets a run detect.

    A difference of two strategies with S seeds each, scored on N shared rows, then has the variance
    2·seed/S + (row + 2·model_row/S)/N: training noise, the strategies' own row-by-row difference, and each
    model's own luck on each row.
    """

    seed: float  # one model's accuracy around its strategy's mean: training noise
    row: float  # the strategies' true difference on one row, around its mean over rows
    model_row: float  # one model's answer on one row beyond its seed's level (`_interaction_variance`)
    rows: int

    def standard_error(self, seeds: int) -> float:
        return float(np.sqrt(2 * self.seed / seeds + (self.row + 2 * self.model_row / seeds) / self.rows))

    def detectable(self, seeds: int) -> float:
        """The smallest difference this test finds with POWER (at level ALPHA, before any Holm adjustment).

        The test estimates each side's seed part from S seed means, so its standard error and degrees of freedom
        vary from run to run: the power averages over that (the seed parts' chi-square quantiles), the rows' part
        being estimated from thousands of rows.
        """
        se = self.standard_error(seeds)
        seed_part = (self.seed + self.model_row / self.rows) / seeds  # each side's seed means, as the test sees them
        row_part = se**2 - 2 * seed_part
        scale = stats.chi2.ppf((np.arange(QUANTILES) + 0.5) / QUANTILES, seeds - 1) / (seeds - 1)
        parts = seed_part * scale[:, None], seed_part * scale[None, :]  # the two sides, every pair of quantiles
        estimated = parts[0] + parts[1] + row_part
        df = estimated**2 / ((parts[0] ** 2 + parts[1] ** 2) / (seeds - 1) + row_part**2 / (self.rows - 1))
        critical = (stats.t.ppf(1 - ALPHA / 2, df) * np.sqrt(estimated)).ravel()

        def power(difference: float) -> float:  # the share of runs whose |difference| passes their critical value
            return float(
                np.mean(stats.norm.sf((critical - difference) / se) + stats.norm.cdf(-(critical + difference) / se))
            )

        return float(optimize.brentq(lambda d: power(d) - POWER, 0.0, 20 * critical.max()))

    def seeds_for(self, difference: float, most: int = 100) -> int | None:
        """The fewest seeds (MIN_SEEDS or more) that detect `difference`; None if `most` do not (rows limit it)."""
        if self.detectable(most) > difference:
            return None
        low, high = MIN_SEEDS, most  # detectable falls as seeds grow: bisect for the first that is enough
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if self.detectable(middle) <= difference else (middle + 1, high)
        return low


def run_noise(correct: list[np.ndarray]) -> Noise | None:
    """The noise of a run's strategies, each a (seeds, rows) correctness array, by the method of moments; None
    unless two strategies have two or more seeds (one seed measures no training noise)."""
    measured = [np.asarray(x, dtype=np.float64) for x in correct if len(x) >= 2]
    if len(measured) < 2:
        return None
    rows = measured[0].shape[1]
    model_row = float(np.mean([_interaction_variance(x) for x in measured]))
    seed = float(np.mean([max(np.var(x.mean(axis=1), ddof=1) - model_row / rows, 0.0) for x in measured]))
    pairs = [(a, b) for i, a in enumerate(measured) for b in measured[i + 1 :]]
    # A typical pair's (the median): pairs far apart differ on more rows than the close ones a plan is for.
    row = float(
        np.median(
            [
                max(np.var(a.mean(axis=0) - b.mean(axis=0), ddof=1) - model_row * (1 / len(a) + 1 / len(b)), 0.0)
                for a, b in pairs
            ]
        )
    )
    if seed + row + model_row == 0:
        return None  # every model of a strategy answers every row alike, and the strategies differ alike: no noise
    return Noise(seed, row, model_row, rows)


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
