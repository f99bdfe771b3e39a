"""The summary row's one definition: per-split metrics, the run's own split order, old runs read the same."""

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from distill.comparison import comparison, strategy_rows
from distill.results import Run, open_run
from distill.summary import METRICS, flat, metric, other_split, summary_row

RESULTS = Path(__file__).resolve().parent.parent / "results"


def scores(accuracy: float) -> dict:
    return {name: accuracy if "accuracy" in name else 0.5 for name in METRICS}


def student(strategy: str, seed: int, splits: dict[str, float]) -> dict:
    return summary_row(
        model=f"{strategy}-seed{seed}",
        role="student",
        strategy=strategy,
        layers=[0],
        seed=seed,
        splits={split: scores(value) for split, value in splits.items()},
        eval_rows=100,
        params=10,
        size_mb=1.0,
        latency_b1_ms=1.0,
        latency_b32_ms=0.1,
    )


@pytest.mark.parametrize("main, other", [("test", "test_hard"), ("validation", "validation_accuracy_probe")])
def test_the_other_split_is_the_runs_not_a_guess_from_key_names(main, other):
    """Split names that begin with the main one's, or hold "_accuracy", fooled the old key-name parsing."""
    rows = [student("a", seed, {main: 0.6 + seed / 100, other: 0.4 + seed / 100}) for seed in range(3)]
    rows += [student("b", seed, {main: 0.5, other: 0.3}) for seed in range(3)]
    table = {r["strategy"]: r for r in strategy_rows(rows)}
    assert other_split(rows[0]) == other
    assert table["a"]["eval_split"] == main and table["a"]["other_split"] == other
    assert table["a"]["accuracy"] == pytest.approx(0.61) and table["a"]["other_accuracy"] == pytest.approx(0.41)
    assert table["b"]["other_accuracy"] == pytest.approx(0.3)
    assert metric(rows[0], main) == 0.6 and metric(rows[0], "absent") is None


def test_the_main_split_is_the_first_and_its_numbers_repeat_at_the_top():
    row = student("a", 0, {"dev": 0.7, "dev_other": 0.2})
    assert row["eval_split"] == "dev" and row["accuracy"] == 0.7 and row["loss"] == 0.5
    assert list(row["splits"]) == ["dev", "dev_other"]
    columns = flat(row)
    assert "splits" not in columns
    assert columns["dev_other_accuracy"] == 0.2 and columns["dev_macro_f1"] == 0.5


@pytest.mark.slow
def test_a_run_written_before_the_schema_reads_as_if_written_with_it(tmp_path):
    """The committed reference run has flat `<split>_<metric>` keys; rewritten in the nested layout, every row
    and the whole comparison stay the same, and the CSV keeps its columns."""
    legacy = open_run(RESULTS / "reference")
    raw = json.loads((legacy.path / "summary.json").read_text())
    assert all("splits" not in r for r in raw)
    rows = legacy.summary()
    splits = list(legacy.labels())
    for before, after in zip(raw, rows, strict=True):
        assert list(after["splits"]) == splits
        assert flat(after) == before  # nothing lost, nothing renamed
    copy = tmp_path / "reference"
    shutil.copytree(legacy.path, copy, ignore=shutil.ignore_patterns("models", "plots"))
    rewritten = Run(copy)
    rewritten.write_summary(rows)
    assert all("splits" in r for r in json.loads((copy / "summary.json").read_text()))
    assert rewritten.summary() == rows
    header = next(csv.reader(io.StringIO((copy / "summary.csv").read_text())))
    assert {"validation_matched_accuracy", "validation_mismatched_macro_f1", "accuracy"} <= set(header)
    assert comparison(rewritten, ["odd", "importance"]) == comparison(legacy, ["odd", "importance"])


def test_a_new_run_writes_per_split_metrics_in_the_order_it_scored_them(good_run):
    raw = json.loads((good_run.path / "summary.json").read_text())
    splits = list(json.loads((good_run.path / "labels.json").read_text()))
    assert splits == ["validation_matched", "validation_mismatched"]
    for row in raw:
        assert list(row["splits"]) == splits and row["eval_split"] == splits[0]
        assert row["accuracy"] == row["splits"][splits[0]]["accuracy"]
        assert set(row["splits"][splits[1]]) == set(METRICS)
        assert not any(key.startswith("validation_") for key in row)
