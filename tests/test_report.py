"""The comparison's tests on the committed reference run (real MNLI, 3 seeds) and its one-seed search run."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from app import CHAR_PX, column_widths, plotted_strategies
from distill.comparison import comparison, pairwise
from distill.results import open_run
from distill.stats import ALPHA, OTHER_TEACHERS, seed_example_test
from distill.tables import display_rows, format_pairwise
from distill.wording import ONE_TEACHER, plan_line, verdict

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_vs_best_is_the_holm_adjusted_pair_of_the_pairwise_table(reference, table):
    for split, prefix in (("validation_matched", ""), ("validation_mismatched", "other_")):
        pairs = {(p["better"], p["worse"]): p for p in pairwise(reference, split)}
        assert len(pairs) == 10
        for r in table:
            if r["role"] == "student" and not r.get("best"):
                pair = pairs[("odd", r["strategy"])]
                assert r[f"{prefix}p_value"] == pytest.approx(pair["p_value"])
                assert r[f"{prefix}diff_vs_best"] == pytest.approx(-pair["difference"])


@pytest.mark.slow
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
    assert "can't tell yet" in ensemble["test"]
    cell = next(d for d in display_rows(table) if d["strategy"] == ensemble["strategy"])["vs best student (95% range)"]
    assert "can't tell yet, run more seeds" in cell and "vs odd×2 seeds" in cell


def test_one_seed_search_shows_no_verdict():
    search = open_run(RESULTS / "search")
    rows = [r for r in comparison(search) if r["role"] == "student"]
    assert len(rows) == 12
    assert all(r["p_value"] is None and r["test"] == "fewer than 3 seeds: untested" for r in rows if not r.get("best"))
    cells = [d["vs best student (95% range)"] for d in display_rows(comparison(search))[1:]]
    assert all(c == "best" or c.endswith("(fewer than 3 seeds: can't tell yet, run 3 or more)") for c in cells)


@pytest.mark.slow
def test_control_runs_join_the_table_but_not_the_tests(reference):
    """Another run's students learned from another fine-tuning of the teacher: one draw of each teacher cannot
    tell its luck from a strategy's effect, so their differences are shown untested, and join no Holm family."""
    controls = [open_run(RESULTS / "control-random"), open_run(RESULTS / "control-hard-labels")]
    table = comparison(reference, controls=controls)
    rows = {r["strategy"]: r for r in table}
    random, hard = rows["control-random:random"], rows["control-hard-labels:odd"]
    assert random["seeds"] == hard["seeds"] == 3 and random["layers"] == []
    assert random["diff_vs_best"] < -0.1 and random["p_value"] is None and random["test"] == OTHER_TEACHERS
    assert hard["p_value"] is None and hard["other_p_value"] is None
    assert 1.5 < random["speedup_b32"] < 2.5  # timed against its own run's teacher, then rescaled
    alone = {r["strategy"]: r for r in comparison(reference)}
    assert rows["even"]["p_value"] == alone["even"]["p_value"]  # the run's own family is unchanged
    pairs = pairwise(reference, controls=controls)
    assert len(pairs) == 21  # seven strategies
    assert sum(p["p_value"] is None for p in pairs) == 11  # 5 x 2 across runs, and the two controls' own pair
    with pytest.raises(Exception, match="other validation rows"):
        comparison(reference, controls=[open_run(RESULTS / "search")])


@pytest.mark.slow
def test_verdict_on_the_reference_run_says_what_its_tests_say(reference):
    table = comparison(reference)
    rows = {r["strategy"]: r for r in table}
    text = verdict(table)
    # odd is best, but importance and top_k are within its noise; even and bottom_k are behind on both splits
    assert rows["odd"]["best"] and not rows["importance"]["significant"] and not rows["top_k"]["significant"]
    assert text.startswith(  # the omnibus test first: are the strategies all equal?
        "Layer choice matters here (p < 0.001, the strategies are not all equal). "
        "odd is best (64.2%), but not clearly ahead of importance (-0.6 points, 95% range -1.4 to +0.3)"
    )
    assert text.endswith(ONE_TEACHER) and rows["odd"]["omnibus_p"] < 0.001 and rows["odd"]["other_omnibus_p"] < 0.001
    assert "and top_k (-0.9 points)" in text
    assert (
        "it beats even by 3.1 points (p < 0.001) and bottom_k by more, confirmed on the other check set "
        "(MNLI validation, unseen genres)." in text
    )
    assert rows["even"]["other_significant"] and rows["bottom_k"]["other_significant"]
    assert "Controls" not in text and "ensemble" not in text


@pytest.mark.slow
def test_verdict_names_the_controls_and_the_ensemble(reference):
    controls = [open_run(RESULTS / "control-random"), open_run(RESULTS / "control-hard-labels")]
    text = verdict(comparison(reference, ["odd", "importance"], controls=controls))
    assert "odd is best (64.2%), but not clearly ahead of importance" in text
    assert "control-hard-labels" not in text.split("Controls:")[0]  # a control is no rival
    untested = "another teacher: untested"
    assert f"Controls: control-hard-labels:odd reaches 63.5% (-0.7 points, {untested}); " in text
    assert f"control-random:random (random start) reaches 49.2% (-15.0 points, {untested})." in text
    assert (
        "ensemble(odd+importance) reaches 64.7%, +0.2 points vs odd×2 seeds (fewer than 3 groups of seeds to "
        "compare with: can't tell yet, run more seeds)." in text
    )


def _student(strategy: str, accuracy: float, seeds: int = 3, **test) -> dict:
    return {"strategy": strategy, "role": "student", "accuracy": accuracy, "seeds": seeds, **test}


def _tested(difference: float, p: float, other_p: float | None = None, other_difference: float | None = None) -> dict:
    other_p = p if other_p is None else other_p
    return {
        "diff_vs_best": difference,
        "diff_low": difference - 0.01,
        "diff_high": difference + 0.01,
        "p_value": p,
        "significant": p < ALPHA,
        "other_split": "validation_mismatched",
        "other_diff_vs_best": difference if other_difference is None else other_difference,
        "other_p_value": other_p,
        "other_significant": other_p < ALPHA,
    }


def test_verdict_of_one_seed_is_no_verdict():
    untested = {"diff_vs_best": -0.02, "p_value": None, "significant": None, "test": "fewer than 3 seeds: untested"}
    table = [
        {"strategy": "teacher", "role": "teacher", "accuracy": 0.66, "seeds": 1},
        _student("top_k", 0.58, seeds=1, best=True),
        _student("odd", 0.56, seeds=1, **untested),
        {"strategy": "even", "role": "student", "accuracy": None, "seeds": 0, "failed": "diverged"},
    ]
    no_verdict = "top_k scored highest (58.0%), but with fewer than 3 seeds we can't tell yet: run 3 or more."
    assert verdict(table) == no_verdict
    two_seeds = [{**r, "seeds": 2} if r["role"] == "student" and r["accuracy"] else r for r in table]
    assert verdict(two_seeds) == no_verdict
    assert verdict(comparison(open_run(RESULTS / "search"))).endswith(
        "but with fewer than 3 seeds we can't tell yet: run 3 or more."
    )


def test_verdict_when_every_rival_is_behind():
    table = [
        _student("odd", 0.642, best=True),
        _student("even", 0.621, **_tested(-0.021, 0.003)),
        _student("bottom_k", 0.509, **_tested(-0.133, 1e-9)),
    ]
    other = "the other check set (MNLI validation, unseen genres)"
    assert verdict(table) == (
        "odd is best (64.2%), clearly ahead of every other strategy (nearest: even, -2.1 points, p = 0.003), "
        f"confirmed on {other}."
    )
    table[1].update(_tested(-0.021, 0.003, other_p=0.2))
    assert verdict(table).endswith(f"confirmed on {other} against bottom_k but not against even.")
    table[2].update(_tested(-0.133, 1e-9, other_p=1e-9, other_difference=0.01))  # the other split points the other way
    assert verdict(table).endswith(f", not confirmed on {other}.")
    untested = {"diff_vs_best": -0.042, "p_value": None, "test": "fewer than 3 seeds: untested"}
    table.append(_student("importance", 0.60, seeds=1, **untested))
    text = verdict(table)
    assert "ahead of every tested strategy" in text
    assert text.endswith("; can't tell yet against importance (fewer than 3 seeds).")
    assert verdict([_student("odd", 0.642)]) == "odd is the only student (64.2%): nothing to compare it with."
    assert verdict([]) == ""


def test_a_tie_for_the_top_is_said_and_not_given_to_one():
    untested = {"diff_vs_best": 0.0, "p_value": None, "significant": None, "test": "fewer than 3 seeds: untested"}
    table = [_student("top_k", 0.3438, seeds=1, best=True), _student("odd", 0.3438, seeds=1, **untested)]
    assert verdict(table).startswith("top_k is level with odd at the top (34.4%), but with fewer than 3 seeds")
    table.append(_student("even", 0.3438, seeds=1, **untested))
    assert verdict(table).startswith("top_k is level with odd and even at the top (34.4%)")
    table[1]["accuracy"] = table[2]["accuracy"] = 0.3437  # a hair behind is behind, not a tie
    assert verdict(table).startswith("top_k scored highest (34.4%)")


def test_a_tested_tie_for_the_top_names_both_leaders_and_tests_them_against_the_rest_only():
    """Every rival is tested against the best row alone: the sentence says the tie, and then only what those
    tests say, about the rows that are not level with it."""
    other = "the other check set (MNLI validation, unseen genres)"
    table = [
        _student("top_k", 0.55, best=True),
        _student("odd", 0.55, **_tested(0.0, 1.0)),
        _student("even", 0.54, **_tested(-0.01, 0.4)),
        _student("bottom_k", 0.45, **_tested(-0.10, 1e-6)),
    ]
    text = verdict(table)
    assert text.startswith(
        "top_k is level with odd at the top (55.0%), but not clearly ahead of even (-1.0 points, 95% range -2.0 "
        "to +0.0); it beats bottom_k by 10.0 points (p < 0.001)"
    ), text
    assert "ahead of odd" not in text and "tied with" not in text
    table[2].update(_tested(-0.01, 0.001))  # even now clearly behind too: only the tie is left at the top
    assert verdict(table).startswith(
        "top_k is level with odd at the top (55.0%), clearly ahead of every other strategy (nearest: even, "
        f"-1.0 points, p = 0.001), confirmed on {other}."
    )
    level = [_student("top_k", 0.55, best=True), _student("odd", 0.55, **_tested(0.0, 1.0))]
    assert verdict(level).startswith("top_k is level with odd at the top (55.0%).")
    untested = {"diff_vs_best": 0.0, "p_value": None, "test": "fewer than 3 seeds: untested"}
    level[1] = _student("odd", 0.55, seeds=1, **untested)  # a tied row that could not be tested is still a tie
    level.append(_student("even", 0.50, **_tested(-0.05, 0.001)))
    text = verdict(level)
    assert text.startswith("top_k is level with odd at the top (55.0%), clearly ahead of every other strategy")
    assert "can't tell yet against odd" not in text, text


@pytest.mark.parametrize(
    ("accuracy", "rows", "guessing"),
    [(0.3281, 128, True), (0.40, 128, True), (0.45, 128, False), (0.35, 9815, False), (0.34, 9815, True)],
)
def test_a_teacher_no_better_than_a_guess_is_said_before_the_ranking(accuracy, rows, guessing):
    """A teacher whose accuracy a guess among 3 labels would reach (one-sided binomial test at 5%: 40% of 128
    rows is p = 0.06, 45% is p = 0.004) taught its students nothing, whatever their ranking says."""
    teacher = {"strategy": "teacher", "role": "teacher", "accuracy": accuracy, "seeds": 1, "eval_rows": rows}
    table = [teacher, _student("odd", 0.642, best=True), _student("even", 0.621, **_tested(-0.021, 0.003))]
    said = verdict(table).startswith(f"The teacher is no better than guessing ({accuracy:.1%} on {rows} examples")
    assert said == guessing
    assert "odd is best (64.2%)" in verdict(table)
    alone = verdict(table[:2])
    assert alone.endswith("odd is the only student (64.2%): nothing to compare it with.")
    assert alone.startswith("The teacher is no better") == guessing


def test_column_widths_fit_the_table_and_follow_its_content(table):
    rows = display_rows(table)
    widths = column_widths(rows)
    assert len(widths) == len(rows[0]) and "vs best, other check set" in rows[0]
    by_title = dict(zip(rows[0], (float(w.removesuffix("px")) for w in widths), strict=True))
    for title, width in by_title.items():  # every word of a title fits its column: none is cut
        assert width >= (max(len(word) for word in re.split(r"(?<=-)|\s+", title)) + 2) * CHAR_PX, title
    assert by_title["vs best student (95% range)"] > by_title["seeds"] and by_title["strategy"] > by_title["sure? (p)"]


def test_plots_name_the_teacher_and_the_best_students_that_fit_one_legend_row(table):
    assert plotted_strategies(table) == [
        "teacher",
        *(r["strategy"] for r in sorted(table, key=lambda r: -r["accuracy"]) if r["role"] == "student"),
        "ensemble(odd+importance)",
        "odd×2 seeds",
    ]
    search = [r for r in comparison(open_run(RESULTS / "search")) if r.get("accuracy") is not None]
    shown = plotted_strategies(search)
    students = sorted((r for r in search if r["role"] == "student"), key=lambda r: -r["accuracy"])
    assert 3 < len(shown) < len(search) and shown == ["teacher", *(r["strategy"] for r in students[: len(shown) - 1])]
    assert sum(26 + 5 * len(name) for name in shown) <= 1000
    assert len(plotted_strategies([{**search[1], "strategy": f"s{i}"} for i in range(12)])) == 10  # one colour each


@pytest.mark.slow
def test_the_planner_says_what_the_reference_can_detect():
    table = comparison(open_run(RESULTS / "reference"))
    best = next(r for r in table if r.get("best"))
    assert best["plan_units"] == 3 and best["plan_unit"] == "seeds"
    assert 0.005 < best["plan_detectable"] < 0.03  # about a point on 9,815 rows
    assert best["plan_seeds_for_2_points"] == 3 and best["plan_seeds_for_1_point"] > 3
    line = plan_line(table)
    points = f"{best['plan_detectable'] * 100:.1f} points"
    assert line.startswith(f"With 3 seeds this run can tell apart differences of about {points}")
    assert f"1 point would take {best['plan_seeds_for_1_point']} seeds" in line
    assert plan_line(comparison(open_run(RESULTS / "search"))) == ""  # one seed: no training noise to plan from


def test_the_planner_line_for_two_seeds_and_for_what_seeds_cannot_reach():
    best = _student("odd", 0.64, seeds=2, best=True)
    best.update(plan_units=3, plan_unit="seeds", plan_detectable=0.034)
    best.update(plan_seeds_for_1_point=None, plan_seeds_for_2_points=9, blocks=[("teacher", 0), ("teacher", 1)])
    line = plan_line([best, _student("even", 0.62, seeds=2)])
    assert line.startswith("With 3 seeds this run could tell apart differences of about 3.4 points")
    assert line.endswith("1 point would take more validation rows, not more seeds, 2 points would take 9 seeds.")
