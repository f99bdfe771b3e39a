"""The simulation figures in docs/statistics.md: false alarms and power of the seed-and-example test.

    python -m bench.stats_simulation

Uses the simulation of tests/test_stats.py (1,000 shared rows, a strategy-by-row effect matched to the reference,
training noise per seed) and prints one line per setting. Not a timing: a statistics check, seconds to minutes.
"""

import sys
from pathlib import Path

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


if __name__ == "__main__":
    main()
