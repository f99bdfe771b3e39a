"""The simulation figures in docs/statistics.md: false alarms and power of the seed-and-example test.

    python -m bench.stats_simulation

Uses the simulation of tests/test_stats.py (1,000 shared rows, a strategy-by-row effect matched to the reference,
training noise per seed) and prints one line per setting. Not a timing: a statistics check, seconds to minutes.
"""

import sys
from pathlib import Path

import numpy as np

import distill.stats as stats

TESTS = Path(__file__).resolve().parent.parent / "tests"


def main() -> None:
    sys.path.insert(0, str(TESTS))
    from test_stats import flag_rates  # the tests' own simulation, so the page and the tests agree

    for sd in (0.0, 0.01, 0.03):
        new, old = flag_rates(0.0, sd, trials=600)
        print(f"no difference, training noise {sd:.0%}: this test {new:.1%}, rows-only interval {old:.1%}")
    stats.MIN_SEEDS = 2  # what the test would say at 2 seeds, were it allowed to
    for sd in (0.0, 0.01, 0.03):
        new, _ = flag_rates(0.0, sd, trials=600, seeds=2)
        print(f"no difference, training noise {sd:.0%}, 2 seeds: this test {new:.1%}")
    stats.MIN_SEEDS = 3
    for seeds in (3, 8):
        new, old = flag_rates(0.03, 0.01, trials=200, seeds=seeds)
        print(f"3 points, training noise 1%, {seeds} seeds: this test {new:.1%}, rows-only interval {old:.1%}")
    # Seeds as blocks (a seed shifts every strategy alike by 2 points' sd): the paired test, and why from 4 seeds.
    for seeds in (3, 4, 5):
        rates = [flag_rates(0.0, sd, trials=600, seeds=seeds, test="paired", block_sd=0.02)[0] for sd in SDS]
        print(f"no difference, paired, {seeds} seeds, training noise {', '.join(map(str, SDS))}: {_shares(rates)}")
    half = stats.paired_df
    for name, count in (("in full", lambda units: units - 1), ("at half", half)):  # the paired test's df
        stats.paired_df = count
        for seeds in (3, 4, 5):
            rates = [
                np.mean([flag_rates(0.0, sd, trials=600, seeds=seeds, test="paired", stream=s)[0] for s in (1, 2, 3)])
                for sd in (0.0, 0.03)
            ]
            print(f"no difference, paired, df {name}, {seeds} seeds, noise 0 and 3%, 3 x 600 runs: {_shares(rates)}")
    stats.paired_df = half
    for block in (0.0, 0.02):
        paired = flag_rates(0.03, 0.01, trials=200, seeds=5, test="paired", block_sd=block)[0]
        alone = flag_rates(0.03, 0.01, trials=200, seeds=5, block_sd=block)[0]
        print(f"3 points, 5 seeds, shared seed effect {block:.0%}: paired {paired:.1%}, independent {alone:.1%}")
    levels = {"teachers": 4, "teacher_sd": 0.02, "block_sd": 0.01}
    teachers = flag_rates(0.0, 0.01, trials=600, seeds=8, test="teachers", **levels)[0]
    seeds = flag_rates(0.0, 0.01, trials=600, seeds=8, test="paired", **levels)[0]
    print(f"no difference, 4 teachers x 2 seeds, teacher effect 2%: by teacher {teachers:.1%}, by seed {seeds:.1%}")


SDS = (0.0, 0.01, 0.03, 0.05)


def _shares(rates: list[float]) -> str:
    return ", ".join(f"{r:.1%}" for r in rates)


if __name__ == "__main__":
    main()
