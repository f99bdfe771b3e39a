"""The seed-and-example test, checked by simulation: its false-alarm rate, its power, and what it replaces."""

import numpy as np
import pytest
from scipy.stats import t as t_dist

from distill.stats import ALPHA, UNTESTED, Difference, holm, seed_example_test

EXAMPLES = 1000


def simulate(rng, true_gap: float, training_sd: float, seeds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Two strategies scored on the same examples. Each example has its own difficulty (shared: paired);
    each trained model (seed) shifts its accuracy by a draw of training noise."""
    difficulty = rng.beta(2.0, 1.2, size=EXAMPLES)  # chance of a correct answer, about 60% on average

    def strategy(shift: float) -> np.ndarray:
        offsets = shift + rng.normal(0.0, training_sd, size=(seeds, 1))
        return (rng.random((seeds, EXAMPLES)) < np.clip(difficulty + offsets, 0, 1)).astype(np.float32)

    return strategy(true_gap), strategy(0.0)


def example_only_flags(a: np.ndarray, b: np.ndarray, rng) -> bool:
    """The replaced method: a paired bootstrap over examples of the seed-averaged correctness, seeds ignored."""
    delta = a.mean(axis=0) - b.mean(axis=0)
    means = delta[rng.integers(0, len(delta), size=(1000, len(delta)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return bool(low > 0 or high < 0)


def flag_rates(true_gap: float, training_sd: float, trials: int = 300, seeds: int = 3) -> tuple[float, float]:
    rng = np.random.default_rng(12345)
    new = old = 0
    for trial in range(trials):
        a, b = simulate(rng, true_gap, training_sd, seeds)
        new += bool(seed_example_test(a, b, resamples=600, seed=trial).significant)
        old += example_only_flags(a, b, rng)
    return new / trials, old / trials


@pytest.mark.parametrize("training_sd", [0.0, 0.01, 0.03])
def test_no_true_difference_is_flagged_at_most_about_five_percent(training_sd):
    new, _ = flag_rates(0.0, training_sd)
    assert new <= ALPHA + 0.03  # 300 trials: the binomial standard error at 5% is 1.3 points


def test_where_training_noise_dominates_it_flags_far_less_than_the_example_only_interval():
    new, old = flag_rates(0.0, 0.03)
    assert old >= 0.3, old  # the replaced interval calls seed luck a difference
    assert new <= ALPHA + 0.03 and new < old / 4


def test_a_real_difference_well_above_the_training_noise_is_found():
    new, _ = flag_rates(0.06, 0.01, trials=60)
    assert new >= 0.9


def test_more_seeds_find_what_three_cannot():
    three, _ = flag_rates(0.03, 0.01, trials=60, seeds=3)
    eight, _ = flag_rates(0.03, 0.01, trials=60, seeds=8)
    assert eight > three + 0.2


def test_one_seed_shows_the_difference_but_no_verdict():
    rng = np.random.default_rng(0)
    a, b = simulate(rng, 0.2, 0.0, seeds=1)
    test = seed_example_test(a, b)
    assert test.difference == pytest.approx(float(a.mean() - b.mean()))
    assert not test.tested and test.significant is None and test.interval == (None, None)
    assert test.record()["test"] == UNTESTED and test.record()["p_value"] is None
    assert not seed_example_test(np.vstack([a, a]), b).tested  # one side with one seed is enough to say nothing


def test_interval_and_p_value_never_disagree():
    rng = np.random.default_rng(1)
    for trial in range(40):
        a, b = simulate(rng, rng.uniform(-0.04, 0.04), 0.01)
        test = seed_example_test(a, b, resamples=400, seed=trial)
        low, high = test.interval
        assert low <= test.difference <= high
        assert test.significant == (low > 0 or high < 0)


def test_identical_models_are_not_different():
    a = (np.random.default_rng(2).random((3, 200)) < 0.6).astype(float)
    test = seed_example_test(a, a.copy())
    assert test.difference == 0 and test.p_value == 1.0 and not test.significant


def test_holm_adjusts_like_the_textbook_and_keeps_marks_and_intervals_in_step():
    differences = [0.034, 0.025, 0.028, 0.040]
    tests = [Difference(d, (3, 3), 0.01, 6.0, float(2 * t_dist.sf(d / 0.01, 6))) for d in differences]
    raw = np.array([t.p_value for t in tests])
    order = np.argsort(raw)
    expected = np.maximum.accumulate(np.minimum(1, raw[order] * np.arange(len(raw), 0, -1)))
    adjusted = holm(tests)
    assert [adjusted[i].p_value for i in order] == pytest.approx(expected.tolist())
    assert any(t.significant for t in tests if not adjusted[tests.index(t)].significant)  # Holm changed a verdict
    for t in adjusted:
        low, high = t.interval
        assert t.significant == (low > 0 or high < 0)
    untested = Difference(0.02, (1, 3))
    assert holm([untested, *tests])[0] is untested  # a one-seed difference joins no family
