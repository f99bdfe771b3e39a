"""The comparison's tests on the committed reference run (real MNLI, 3 seeds) and its one-seed search run."""

import json
from pathlib import Path

import numpy as np
import pytest

from distill.report import comparison, display_rows, format_pairwise, pairwise
from distill.results import open_run
from distill.stats import ALPHA, seed_example_test

RESULTS = Path(__file__).resolve().parent.parent / "results"


@pytest.fixture(scope="module")
def reference():
    return open_run(RESULTS / "reference")


@pytest.fixture(scope="module")
def table(reference):
    return comparison(reference, ["odd", "importance"])


@pytest.mark.parametrize("run", sorted(p.name for p in RESULTS.iterdir() if (p / "predictions.json").exists()))
def test_committed_probabilities_reproduce_the_saved_predictions(run):
    folder = RESULTS / run
    predictions = json.loads((folder / "predictions.json").read_text())
    for model, splits in predictions.items():
        with np.load(folder / "probabilities" / f"{model}.npz") as saved:
            for split, predicted in splits.items():
                assert saved[split].dtype == np.float32
                assert saved[split].argmax(axis=1).tolist() == predicted, (model, split)


def test_best_is_chosen_on_matched_and_tested_on_both_splits(table):
    students = [r for r in table if r["role"] == "student"]
    best = max(students, key=lambda r: r["accuracy"])
    assert best["best"] and best["eval_split"] == "validation_matched"
    for r in students:
        if r is best:
            continue
        assert set(r["vs_best"]) == {"validation_matched", "validation_mismatched"}
        for prefix in ("", "other_"):
            low, high, p = r[f"{prefix}diff_low"], r[f"{prefix}diff_high"], r[f"{prefix}p_value"]
            assert low <= r[f"{prefix}diff_vs_best"] <= high
            assert r[f"{prefix}significant"] == (p < ALPHA) == (high < 0 or low > 0)  # mark, p and interval agree
        assert r["diff_vs_best"] == pytest.approx(r["accuracy"] - best["accuracy"])
        assert r["other_diff_vs_best"] == pytest.approx(r["other_accuracy"] - best["other_accuracy"])


def test_vs_best_is_the_holm_adjusted_pair_of_the_pairwise_table(reference, table):
    for split, prefix in (("validation_matched", ""), ("validation_mismatched", "other_")):
        pairs = {(p["better"], p["worse"]): p for p in pairwise(reference, split)}
        assert len(pairs) == 10
        for r in table:
            if r["role"] == "student" and not r.get("best"):
                pair = pairs[("odd", r["strategy"])]
                assert r[f"{prefix}p_value"] == pytest.approx(pair["p_value"])
                assert r[f"{prefix}diff_vs_best"] == pytest.approx(-pair["difference"])


def test_pairwise_p_values_are_holm_adjusted(reference):
    pairs = pairwise(reference)
    labels = np.asarray(json.loads((reference.path / "labels.json").read_text())["validation_matched"])
    predictions = reference.predictions()

    def correct(strategy):
        models = sorted(m for m in predictions if m.startswith(f"{strategy}-seed"))
        return np.array([np.asarray(predictions[m]["validation_matched"]) == labels for m in models])

    raw = []
    for p in pairs:
        first, second = sorted((p["better"], p["worse"]))  # the order the report draws each pair in
        raw.append(seed_example_test(correct(first), correct(second)).p_value)
    adjusted = [p["p_value"] for p in pairs]
    order = np.argsort(raw)
    expected = np.maximum.accumulate(np.minimum(1, np.asarray(raw)[order] * np.arange(len(raw), 0, -1)))
    assert np.asarray(adjusted)[order] == pytest.approx(expected)
    assert all(a >= r for a, r in zip(adjusted, raw, strict=True))
    text = format_pairwise(pairs)
    assert "p (Holm)" in text and all(p["better"] in text for p in pairs)


def test_ensemble_is_tested_against_its_compute_matched_baseline(reference, table):
    ensemble = next(r for r in table if r["role"] == "ensemble")
    baseline = next(r for r in table if r["role"] == "baseline")
    by_strategy = {r["strategy"]: r for r in table}
    assert baseline["strategy"] == "odd×2 seeds" and ensemble["against"] == baseline["strategy"]
    assert ensemble["params"] == baseline["params"] == 2 * by_strategy["odd"]["params"]
    assert ensemble["latency_b32_ms"] == pytest.approx(
        by_strategy["odd"]["latency_b32_ms"] + by_strategy["importance"]["latency_b32_ms"]
    )
    # the baseline is odd's seeds 0 and 1 averaged: recompute it from the stored probabilities
    labels = np.asarray(json.loads((reference.path / "labels.json").read_text())["validation_matched"])
    mean = np.mean([reference.probabilities(f"odd-seed{s}")["validation_matched"] for s in (0, 1)], axis=0)
    assert baseline["accuracy"] == pytest.approx(float((mean.argmax(1) == labels).mean()))
    # three seeds make one disjoint pair: one baseline replicate, so the ensemble's lead is shown untested
    assert baseline["seeds"] == 1 and ensemble["p_value"] is None
    assert "untested" in ensemble["test"]
    cell = next(d for d in display_rows(table) if d["strategy"] == ensemble["strategy"])["vs best (95% CI)"]
    assert "untested" in cell and "vs odd×2 seeds" in cell


def test_one_seed_search_shows_no_verdict():
    search = open_run(RESULTS / "search")
    rows = [r for r in comparison(search) if r["role"] == "student"]
    assert len(rows) == 12
    assert all(r["p_value"] is None and r["test"] == "1 seed: untested" for r in rows if not r.get("best"))
    cells = [d["vs best (95% CI)"] for d in display_rows(comparison(search))[1:]]
    assert all(c == "best" or c.endswith("(1 seed: untested)") for c in cells)


def test_control_runs_join_the_table_and_the_family(reference):
    controls = [open_run(RESULTS / "control-random"), open_run(RESULTS / "control-hard-labels")]
    table = comparison(reference, controls=controls)
    rows = {r["strategy"]: r for r in table}
    random, hard = rows["control-random:random"], rows["control-hard-labels:odd"]
    assert random["seeds"] == hard["seeds"] == 3 and random["layers"] == []
    assert random["significant"] and random["diff_vs_best"] < -0.1  # copying no teacher layer costs a lot
    assert 1.5 < random["speedup_b32"] < 2.5  # timed against its own run's teacher, then rescaled
    pairs = pairwise(reference, controls=controls)
    assert len(pairs) == 21  # seven strategies
    with pytest.raises(Exception, match="other validation rows"):
        comparison(reference, controls=[open_run(RESULTS / "search")])
