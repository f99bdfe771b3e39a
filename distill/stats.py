"""How sure a difference is: tests that count training noise (seeds, teachers) and validation-sample noise.

Two strategies are compared on the same validation examples, each with one or more trained models. The
difference of their mean accuracies varies for three reasons: another seed trains another model (training
noise), another fine-tuning of the teacher teaches other students (teacher noise), and another draw of validation
examples scores them differently (sampling noise). Which test counts them depends on how the models were made:

- The unit of training noise is the seed, or the teacher where a run has several: a teacher's models are then
  averaged into one unit, so the test counts teacher-to-teacher variation (with one teacher, the verdicts hold
  for that teacher). Students of every strategy are spread over the same teachers.
- `paired_test`, from PAIRED_MIN (4) units: the strategies share their blocks, model for model (the same seed,
  hence the same batch order and dropout draws, and the same teacher), as the strategies of one run do. Each
  unit's difference is one measurement, so what a block does to every strategy alike cancels (seeds as blocks).
  Its training part is estimated from U - 1 degrees of freedom, counted at half (`paired_df`); with 3 units
  that leaves one, so 3 units are tested as independent (4 degrees of freedom): valid, and cautious when
  blocks share.
- `seed_example_test`: each side's units independent, by a two-level bootstrap over examples (paired) and units.
- Models of different teachers are not tested against each other: one draw of each teacher cannot tell
  a teacher's luck from the strategies' difference.

With 3 to 5 units the training part of the error is itself estimated from a handful of numbers, so the interval
and the p-value use Student's t with Welch-Satterthwaite degrees of freedom instead of normal quantiles. The
interval and the p-value come from the same standard error and the same t, so a difference is significant exactly
when its interval excludes zero. Below 3 units on either side there is no test: with one seed training noise is
not measured at all, and with two the test is liberal (8.3% false alarms at a 5% level at 3 points of training
noise, `python -m bench.stats_simulation`). The difference is reported, untested. `docs/statistics.md` explains
the choices and the simulations behind them.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8  # what the planner (`Noise.detectable`) plans for
QUANTILES = 40  # per side, for the spread of the test's own standard error in the planner
RESAMPLES = 1000  # enough for a standard error within a few percent; the t quantiles do the rest
MIN_SEEDS = 3  # a side with fewer seeds is not tested (see above)
UNTESTED = f"fewer than {MIN_SEEDS} seeds: untested"
FEW_TEACHERS = f"fewer than {MIN_SEEDS} teachers: untested"
# Models of one run from some but not all of the same teachers: a run still training, or a model that failed.
SOME_TEACHERS = "not from the same teachers: untested"
OTHER_TEACHERS = "another teacher: untested"
PAIRED_MIN = 4  # units; with 3, the paired test's training part has 2 degrees of freedom and runs liberal
INDEPENDENT = "seeds + examples"
PAIRED = "paired by seed + examples"
BY_TEACHER = "teachers + seeds + examples"
PAIRED_BY_TEACHER = "paired by teacher + seeds + examples"


@dataclass(frozen=True)
class Difference:
    """Mean accuracy of a minus that of b, with its test (None where a side has fewer than MIN_SEEDS seeds)."""

    difference: float
    seeds: tuple[int, int]
    standard_error: float | None = None
    df: float | None = None
    p_value: float | None = None  # two-sided; after `holm`, adjusted for the family of tests
    level: float = 1 - ALPHA  # coverage of [low, high]; a Holm adjustment widens it with the p-value
    design: str = INDEPENDENT  # the levels the test counts (when tested)
    reason: str = UNTESTED  # why there is no test (when not)

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
            "test": self.design if self.tested else self.reason,
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
    replicates = np.concatenate(
        [_replicate(a, b, *chunk) for chunk in _draws(seed, resamples, a.shape[1], len(a), len(b))]
    )
    # Resampling examples and then seeds counts the seed-by-example noise (each model's own luck on each example)
    # three times: in the examples' level, in the seeds' level, and again there, since reweighting the examples
    # spreads the seeds' accuracies by that luck once more. Take two copies out, estimated from the spread across
    # seeds within examples.
    interaction = sum(_interaction_variance(x) / x.size for x in (a, b))
    seed_parts = [np.var(x.mean(axis=1), ddof=1) / len(x) for x in (a, b)]
    variance = max(float(replicates.var(ddof=1)) - 2 * interaction, sum(seed_parts))
    example_part = variance - sum(seed_parts)
    parts = [(v, len(x) - 1) for v, x in zip(seed_parts, (a, b), strict=True)] + [(example_part, a.shape[1] - 1)]
    return _t_test(difference, seeds, parts, INDEPENDENT)


@dataclass(frozen=True)
class Models:
    """A strategy's trained models: correctness on the shared validation rows, and each model's block."""

    correct: np.ndarray  # (models, rows): 1 where that model got the row right
    blocks: Sequence[tuple[str, int]]  # (teacher, seed) of each model, in the same order

    @property
    def teachers(self) -> set[str]:
        return {teacher for teacher, _ in self.blocks}


def compare(a: Models, b: Models) -> Difference:
    """Strategy a against b, by the test their models' making calls for (the module's docstring)."""
    if a.teachers != b.teachers:
        difference = float(np.mean(a.correct, dtype=np.float64) - np.mean(b.correct, dtype=np.float64))
        reason = SOME_TEACHERS if a.teachers & b.teachers else OTHER_TEACHERS
        return Difference(difference, (len(a.correct), len(b.correct)), reason=reason)
    several = len(a.teachers) > 1
    units_a, units_b = (per_teacher(a), per_teacher(b)) if several else (a, b)
    if shares_blocks(units_a, units_b) and len(units_a.blocks) >= PAIRED_MIN:
        names = [teacher if several else seed for teacher, seed in units_a.blocks]
        return paired_test(units_a.correct, _aligned(units_b, units_a), names, by_teacher=several)
    tested = seed_example_test(units_a.correct, units_b.correct)
    if several:  # each side's units are its teachers
        seeds = (len(a.correct), len(b.correct))
        return replace(tested, seeds=seeds, design=BY_TEACHER, reason=FEW_TEACHERS)
    return tested


def shares_blocks(a: Models, b: Models) -> bool:
    """Whether model j of a and model j of b (in some order) share a block, one to one."""
    return len(a.blocks) == len(set(a.blocks)) and sorted(a.blocks) == sorted(b.blocks)


def paired_test(
    correct_a: np.ndarray, correct_b: np.ndarray, units: Sequence[Hashable], by_teacher: bool = False
) -> Difference:
    """Compare a with b where model j of each shares block j; `units` names each block's unit of independence
    (its seed, or its teacher: a unit's blocks are averaged into one).

    The block-by-row differences D are a two-way layout: the variance of their mean is var(unit means) / U
    + var(row means) / N, less the residual's share counted in both, σ²(residual) / (U N).
    """
    a, b = np.atleast_2d(np.asarray(correct_a, np.float64)), np.atleast_2d(np.asarray(correct_b, np.float64))
    if a.shape != b.shape or len(units) != len(a):
        raise ValueError("paired strategies need one model per block, scored on the same validation rows")
    names = list(dict.fromkeys(units))
    delta = np.stack([(a - b)[[u == name for u in units]].mean(axis=0) for name in names])
    difference, seeds = float(delta.mean()), (len(a), len(b))
    count, rows = delta.shape
    if count < MIN_SEEDS:
        return Difference(difference, seeds, reason=FEW_TEACHERS if by_teacher else UNTESTED)
    unit_means, row_means = delta.mean(axis=1), delta.mean(axis=0)
    residual = delta - unit_means[:, None] - row_means[None, :] + difference
    residual_variance = float((residual**2).sum()) / ((count - 1) * (rows - 1))
    unit_part = float(np.var(unit_means, ddof=1)) / count
    row_part = max(float(np.var(row_means, ddof=1)) - residual_variance / count, 0.0) / rows
    design = PAIRED_BY_TEACHER if by_teacher else PAIRED
    return _t_test(difference, seeds, [(unit_part, paired_df(count)), (row_part, rows - 1)], design)


def paired_df(units: int) -> float:
    """The degrees of freedom the paired test counts for its training part: half of U - 1. Welch-Satterthwaite
    estimates them from the same few numbers as the part itself, too many exactly when the part comes out small;
    counted in full the test flagged 4.6-7.6% where 5% is nominal (3-5 seeds, 0-3 points of training noise, 1,800
    simulated runs each), counted at half 3.9-5.3% (`python -m bench.stats_simulation`)."""
    return (units - 1) / 2


def _t_test(difference: float, seeds: tuple[int, int], parts: list[tuple[float, float]], design: str) -> Difference:
    """A t test of `difference` whose variance is the sum of `parts`, each (variance, its degrees of freedom),
    with Welch-Satterthwaite's degrees of freedom."""
    variance = sum(v for v, _ in parts)
    if variance == 0.0:  # the two strategies' models agree on every example
        return Difference(difference, seeds, 0.0, np.inf, 1.0 if difference == 0 else 0.0, design=design)
    df = welch_df(parts)
    se = variance**0.5
    p_value = float(2 * stats.t.sf(abs(difference) / se, df))
    return Difference(difference, seeds, se, df, p_value, design=design)


def welch_df(parts: list[tuple[float | np.ndarray, float]]) -> float | np.ndarray:
    """Welch-Satterthwaite: the degrees of freedom of a sum of variance estimates, each (variance, its df); the
    variances may be arrays of alternatives (the planner's), which give an array."""
    denominator = sum(np.square(v) / df for v, df in parts if df > 0)
    total = sum(v for v, _ in parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(np.asarray(denominator) > 0, np.square(total) / denominator, np.inf)
    return float(df) if df.ndim == 0 else df


def _interaction_variance(correct: np.ndarray) -> float:
    """Variance of one model's answer on one example beyond its seed's overall level (method of moments):
    the within-example spread across seeds holds it plus the seed variance, which the spread of the seeds'
    accuracies estimates."""
    n_examples = correct.shape[1]
    within = float(np.var(correct, axis=0, ddof=1).mean())
    between = float(np.var(correct.mean(axis=1), ddof=1))
    return max(within - between, 0.0) / (1 - 1 / n_examples)


Draws = tuple[np.ndarray, np.ndarray, np.ndarray]


@functools.lru_cache(maxsize=2)  # a comparison's two splits; 1,000 bytes a row each
def _draws(seed: int, resamples: int, rows: int, seeds_a: int, seeds_b: int) -> tuple[Draws, ...]:
    """The bootstrap's random draws, in chunks of 250 replicates: each row's Poisson weight (uint8: a Poisson(1)
    draw is never near 256), then the seeds drawn for a and for b. They depend on the shapes alone, so every pair
    of a comparison with the same shapes shares them: drawing 10 million Poisson weights per pair took most of
    a comparison's seconds, and the Compare tab waited on them."""
    rng, chunks = np.random.default_rng(seed), []
    for start in range(0, resamples, 250):
        count = min(250, resamples - start)
        weights = rng.poisson(1.0, size=(count, rows)).astype(np.uint8)
        drawn = (weights, rng.integers(0, seeds_a, (count, seeds_a)), rng.integers(0, seeds_b, (count, seeds_b)))
        for array in drawn:
            array.setflags(write=False)  # shared by every caller of the cache
        chunks.append(drawn)
    return tuple(chunks)


def _replicate(
    a: np.ndarray, b: np.ndarray, weights: np.ndarray, seeds_a: np.ndarray, seeds_b: np.ndarray
) -> np.ndarray:
    """Bootstrap replicates of mean(a) - mean(b), one per row of `weights`: examples reweighted jointly, seeds
    drawn per strategy (`seeds_a`, `seeds_b`: indices drawn with replacement)."""
    weights = weights.astype(np.float32)
    totals = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    return _seed_mean(weights @ a.T / totals, seeds_a) - _seed_mean(weights @ b.T / totals, seeds_b)


def _seed_mean(accuracy: np.ndarray, drawn_seeds: np.ndarray) -> np.ndarray:
    """Mean over seeds drawn with replacement, per replicate (rows), with the small-sample variance correction."""
    n_seeds = accuracy.shape[1]
    drawn = np.take_along_axis(accuracy, drawn_seeds, axis=1).mean(axis=1)
    centre = accuracy.mean(axis=1)
    return centre + np.sqrt(n_seeds / (n_seeds - 1)) * (drawn - centre)


@dataclass(frozen=True)
class Noise:
    """A run's noise on one split, as variances of accuracy (fractions), and what it lets a run detect.

    A difference of two strategies with S units each (seeds, or teachers), scored on N shared rows, has the
    variance 2·(seed - block)/S + (row + 2·model_row/S)/N: training noise less what a block does to every strategy
    alike, the strategies' own row-by-row difference, and each model's own luck on each row. The test sees the
    block's share too unless it pairs (`compare`), so a run that shares blocks gains power from PAIRED_MIN units.
    """

    seed: float  # one model's accuracy around its strategy's mean: training noise
    row: float  # the strategies' true difference on one row, around its mean over rows
    model_row: float  # one model's answer on one row beyond its seed's level (`_interaction_variance`)
    rows: int
    block: float = 0.0  # the share of `seed` that a block (seed, teacher) gives every strategy alike
    shared: bool = False  # the run's strategies share their blocks, so the test pairs from PAIRED_MIN units
    unit: str = "seeds"  # what S counts: seeds, or teachers

    def standard_error(self, units: int) -> float:
        training = 2 * (self.seed - self.block) / units
        return float(np.sqrt(training + (self.row + 2 * self.model_row / units) / self.rows))

    def detectable(self, units: int) -> float:
        """The smallest difference the run's test finds with POWER (at level ALPHA, before any Holm adjustment).

        The test estimates the training part from S unit means (each side's, or the pairs' differences), so its
        standard error and degrees of freedom vary from run to run: the power averages over that (chi-square
        quantiles of the training part), the rows' part being estimated from thousands of rows.
        """
        se = self.standard_error(units)
        row_part = self.row / self.rows
        scale = stats.chi2.ppf((np.arange(QUANTILES) + 0.5) / QUANTILES, units - 1) / (units - 1)
        if self.shared and units >= PAIRED_MIN:  # one training part, from the blocks' differences
            paired = 2 * (self.seed - self.block + self.model_row / self.rows) / units
            parts = [(paired * scale, paired_df(units)), (row_part, self.rows - 1)]
        else:  # one per side, every pair of quantiles; each side's includes the block's share
            side = (self.seed + self.model_row / self.rows) / units
            parts = [(side * scale[:, None], units - 1), (side * scale[None, :], units - 1), (row_part, self.rows - 1)]
        estimated = sum(v for v, _ in parts)  # each draw of the test's own standard error, squared
        critical = np.ravel(stats.t.ppf(1 - ALPHA / 2, welch_df(parts)) * np.sqrt(estimated))

        def power(difference: float) -> float:  # the share of runs whose |difference| passes their critical value
            return float(
                np.mean(stats.norm.sf((critical - difference) / se) + stats.norm.cdf(-(critical + difference) / se))
            )

        return float(optimize.brentq(lambda d: power(d) - POWER, 0.0, 20 * critical.max()))

    def seeds_for(self, difference: float, most: int = 100) -> int | None:
        """The fewest units (MIN_SEEDS or more) that detect `difference`; None if `most` do not (rows limit it)."""
        if self.detectable(most) > difference:
            return None
        for units in range(MIN_SEEDS, PAIRED_MIN + 1):  # the test changes at PAIRED_MIN: no bisection below it
            if self.detectable(units) <= difference:
                return units
        low, high = PAIRED_MIN + 1, most  # detectable falls as units grow: bisect for the first that is enough
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if self.detectable(middle) <= difference else (middle + 1, high)
        return low


def run_noise(strategies: list[Models]) -> Noise | None:
    """The noise of a run's strategies by the method of moments, in the units its tests use (teachers where it
    has several); None unless two strategies have two or more units (one seed measures no training noise)."""
    several = all(len(x.teachers) > 1 for x in strategies)
    measured = [per_teacher(x) if several else x for x in strategies]
    measured = [x for x in measured if len(x.correct) >= 2]
    if len(measured) < 2:
        return None
    correct = [np.asarray(x.correct, dtype=np.float64) for x in measured]
    rows = correct[0].shape[1]
    model_row = float(np.mean([_interaction_variance(x) for x in correct]))
    seed = float(np.mean([max(np.var(x.mean(axis=1), ddof=1) - model_row / rows, 0.0) for x in correct]))
    pairs = [(a, b) for i, a in enumerate(measured) for b in measured[i + 1 :]]
    shared = all(shares_blocks(a, b) for a, b in pairs)
    block = 0.0
    if shared:  # what a block gives both strategies: the covariance of their unit means
        covariances = [np.cov(a.correct.mean(axis=1), _aligned(b, a).mean(axis=1))[0, 1] for a, b in pairs]
        block = float(np.clip(np.median(covariances), 0.0, seed))
    # A typical pair's (the median): pairs far apart differ on more rows than the close ones a plan is for.
    row = float(
        np.median(
            [
                max(np.var(a.mean(axis=0) - b.mean(axis=0), ddof=1) - model_row * (1 / len(a) + 1 / len(b)), 0.0)
                for i, a in enumerate(correct)
                for b in correct[i + 1 :]
            ]
        )
    )
    if seed + row + model_row == 0:
        return None  # every model of a strategy answers every row alike, and the strategies differ alike: no noise
    return Noise(seed, row, model_row, rows, block, shared, "teachers" if several else "seeds")


def _aligned(models: Models, like: Models) -> np.ndarray:
    """`models`' correctness in the block order of `like`."""
    return np.asarray(models.correct, np.float64)[[list(models.blocks).index(b) for b in like.blocks]]


def per_teacher(models: Models) -> Models:
    """One unit per teacher: its models' correctness averaged."""
    teachers = list(dict.fromkeys(t for t, _ in models.blocks))
    correct = np.asarray(models.correct, np.float64)
    means = [correct[[t == teacher for t, _ in models.blocks]].mean(axis=0) for teacher in teachers]
    return Models(np.stack(means), [(teacher, 0) for teacher in teachers])


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


def omnibus(tests: list[Difference]) -> float | None:
    """Are all the strategies equal? The p-value of that one question from its pairs' raw tests (before Holm):
    the smallest p times the number of tested pairs (Bonferroni on the minimum, a union-intersection test).
    It rejects exactly when some pair is significant after Holm's adjustment over the same pairs, so the
    sentence it starts never disagrees with the table. None when no pair is tested."""
    tested = [t.p_value for t in tests if t.tested]
    return min(1.0, len(tested) * min(tested)) if tested else None
