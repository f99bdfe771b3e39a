"""Two runs of the same experiment, strategy by strategy: each strategy's mean accuracy over seeds against the
other run's mean and seed spread.

    python -m bench.reference_check results/reference results/reference-fast

A strategy is "within its spread" when the new mean lies inside the old mean ± the larger of the two runs'
seed standard deviations, on both validation splits.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from distill.results import Run
from distill.summary import metric

SPLITS = ("validation_matched", "validation_mismatched")


def by_strategy(run: Run) -> dict[str, dict[str, list[float]]]:
    rows: dict[str, dict[str, list[float]]] = {}
    for row in run.summary():
        if row["role"] == "student" and not row.get("failed"):
            for split in SPLITS:
                rows.setdefault(row["strategy"], {}).setdefault(split, []).append(metric(row, split))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = Run(args.before), Run(args.after)
    old, new = by_strategy(before), by_strategy(after)
    print(f"| strategy | split | {before.name} | {after.name} | difference | within its spread |")
    print("|---|---|---|---|---|---|")
    for strategy in old:
        for split in SPLITS:
            a, b = old[strategy][split], new.get(strategy, {}).get(split, [])
            if len(b) < 2:
                print(f"| {strategy} | {split} | | missing | | no |")
                continue
            spread = max(statistics.stdev(a), statistics.stdev(b))
            diff = statistics.mean(b) - statistics.mean(a)
            print(
                f"| {strategy} | {split} | {statistics.mean(a):.2%} ± {statistics.stdev(a):.2%} |"
                f" {statistics.mean(b):.2%} ± {statistics.stdev(b):.2%} | {100 * diff:+.2f} points |"
                f" {'yes' if abs(diff) <= spread else 'no'} |"
            )


if __name__ == "__main__":
    main()
