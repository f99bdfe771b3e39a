"""The comparison of a run: one row per strategy (mean and spread over seeds, speed and accuracy relative to the
teacher), with the tests that count seeds and examples (`stats`) attached. Its words are `wording.py`'s, its text
tables `tables.py`'s, its plots `plots.py`'s."""

from __future__ import annotations

from collections import defaultdict
from typing import TypedDict

import numpy as np

from .config import ConfigError
from .evaluation import classification_metrics
from .results import Run
from .search import SEARCHED_SETTINGS
from .stats import MIN_SEEDS, Difference, Models, compare, holm, omnibus, run_noise, seed_example_test
from .strategies import CONTROLS
from .summary import metric, other_split, summary_row


class Test(TypedDict):
    """One test of a row against the best student (or an ensemble against its baseline): `Difference.record()`."""

    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    significant: bool | None
    test: str
    against: str


class Row(TypedDict, total=False):
    """One row of the comparison: a strategy (or the teacher, an ensemble, its baseline, a failed strategy)."""

    strategy: str
    role: str  # teacher, student, ensemble, baseline
    layers: list[int]
    seeds: int
    models: list[str]
    blocks: list[tuple[str, int]]  # each model's (teacher, seed): the unit a test pairs models by
    accuracy: float | None  # mean over seeds, on the main validation split
    accuracy_std: float
    other_split: str | None
    other_accuracy: float | None
    macro_f1: float | None
    train_loss: float | None
    loss: float | None
    params: int
    params_m: float
    size_mb: float
    latency_b1_ms: float
    latency_b32_ms: float
    speedup_b1: float | None
    speedup_b32: float | None
    accuracy_kept: float | None
    eval_split: str
    eval_rows: int | None
    search: bool
    temperature: float | None
    learning_rate: float | None
    weight_ce: float | None
    weight_kl: float | None
    weight_cos: float | None
    failed: str
    failed_seeds: int
    # The tests (`add_tests`): each split's under `vs_best`, and the main and other split's flattened for the API.
    best: bool
    against: str
    vs_best: dict[str, Test]
    diff_vs_best: float | None
    diff_low: float | None
    diff_high: float | None
    p_value: float | None
    significant: bool | None
    test: str
    other_diff_vs_best: float | None
    other_diff_low: float | None
    other_diff_high: float | None
    other_p_value: float | None
    other_significant: bool | None
    other_test: str
    omnibus_p: float | None
    other_omnibus_p: float | None
    # What the run can detect (`_put_plan`), on the best student's row.
    plan_units: int
    plan_unit: str
    plan_detectable: float
    plan_seeds_for_1_point: int | None
    plan_seeds_for_2_points: int | None


def comparison(run: Run, ensemble: list[str] | None = None, controls: list[Run] | None = None) -> list[Row]:
    """Teacher first, then every strategy: averaged over seeds, with spread, and tested against the best.

    The best student is chosen on the run's main validation split (validation_matched for MNLI) and tested
    there and, as the confirmation, on the other split. Each test counts seeds and examples
    (`stats.seed_example_test`) and is Holm-adjusted over every pair of strategies on that split, so picking
    the best first does not make its lead look surer. With `ensemble` (two or more strategies), two more rows:
    their ensemble (class probabilities averaged, seed by seed) and its compute-matched baseline, the best
    strategy's seeds averaged in groups of as many models; the ensemble is tested against that baseline.
    With `controls` (other runs scored on the same validation rows), their students join as rows named
    RUN:STRATEGY, tested like the others.
    """
    run.check()  # a damaged run is reported as such, naming the file, before anything is computed from it
    summary = run.summary()
    rows = finished(summary)
    if not summary:
        return []
    predictions = run.predictions()
    rows = rows + _control_rows(run, controls or [], predictions)
    singles = strategy_rows(rows, search=bool(run.config().get("search")))
    extra: list[dict] = []
    if ensemble:
        extra, ensemble_predictions = ensemble_rows(run, rows, singles, ensemble)
        predictions.update(ensemble_predictions)
    table = singles
    if extra:
        table = singles + strategy_rows(extra)
        _relative_to_teacher(table, next((r for r in singles if r["role"] == "teacher"), None))
    add_tests(run, table, predictions)
    return table + _failed_rows(summary, table)


def finished(rows: list[dict]) -> list[dict]:
    """The summary rows of models that finished: a failed model (diverged) is no result."""
    return [r for r in rows if not r.get("failed")]


def _failed_rows(summary: list[dict], table: list[dict]) -> list[dict]:
    """Failed models: counted on their strategy's row, or a row of their own when every seed failed. Such a
    row has no accuracy, so it is never the best and never tested."""
    failed: dict[str, list[dict]] = defaultdict(list)
    for row in summary:
        if row.get("failed"):
            failed[row["strategy"]].append(row)
    by_strategy = {r["strategy"]: r for r in table}
    out = []
    for strategy, members in failed.items():
        if strategy in by_strategy:
            by_strategy[strategy]["failed_seeds"] = len(members)
            continue
        reason = members[0]["failed"]
        out.append(
            {
                "strategy": strategy,
                "role": members[0]["role"],
                "layers": members[0].get("layers", []),
                "seeds": 0,
                "models": [],
                "failed": reason,
                "failed_seeds": len(members),
                "accuracy": None,
                "test": f"failed: {reason}",
            }
        )
    return out


def _control_rows(run: Run, controls: list[Run], predictions: dict) -> list[dict]:
    """The students of other runs, renamed RUN:STRATEGY; their predictions are added to `predictions`.

    Their latencies are rescaled by the ratio of the two runs' teachers, since each run timed its own models
    side by side and the two timings were taken at different moments.
    """
    labels = run.labels()
    ours = next((r for r in run.summary() if r["role"] == "teacher"), None)
    out = []
    for control in controls:
        control.check()  # a damaged control is reported as such, like the run
        if control.labels() != labels:
            raise ConfigError(f"run {control.name} was scored on other validation rows than run {run.name}")
        theirs = control.predictions()
        rows = finished(control.summary())
        teacher = next((r for r in rows if r["role"] == "teacher"), None)
        for row in rows:
            if row["role"] == "student":
                model = f"{control.name}:{row['model']}"
                renamed = {**row, "model": model, "strategy": f"{control.name}:{row['strategy']}"}
                renamed["teacher"] = f"{control.name}:{model_block(row)[0]}"
                if ours and teacher:
                    for key in ("latency_b1_ms", "latency_b32_ms"):
                        renamed[key] = row[key] * ours[key] / teacher[key]
                out.append(renamed)
                predictions[model] = theirs[row["model"]]
    return out


def strategy_rows(rows: list[dict], search: bool = False) -> list[Row]:
    """One row per strategy (teacher and ensembles included): means and spread over its seeds, and its speed
    and accuracy relative to the teacher."""
    if not rows:
        return []
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["strategy"]].append(row)
    split, other = rows[0]["eval_split"], other_split(rows[0])
    table = []
    for strategy, members in groups.items():
        accs = [m["accuracy"] for m in members]
        table.append(
            {
                "strategy": strategy,
                "role": members[0]["role"],
                "layers": members[0]["layers"],
                "seeds": len(members),
                "models": [m["model"] for m in members],
                "blocks": [model_block(m) for m in members],
                "train_loss": _mean(m.get("train_loss") for m in members),
                "loss": _mean(m["loss"] for m in members),
                "accuracy": float(np.mean(accs)),
                "accuracy_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                "other_split": other,
                "other_accuracy": _mean(metric(m, other) for m in members) if other else None,
                "macro_f1": _mean(metric(m, split, "macro_f1") for m in members),
                "params": members[0]["params"],
                "params_m": members[0]["params"] / 1e6,
                "size_mb": members[0]["size_mb"],
                "latency_b1_ms": _mean(m["latency_b1_ms"] for m in members),
                "latency_b32_ms": _mean(m["latency_b32_ms"] for m in members),
                "eval_split": split,
                "eval_rows": members[0].get("eval_rows"),
                "search": search,
                **{key: members[0].get(key) for key in SEARCHED_SETTINGS},
            }
        )
    _relative_to_teacher(table, next((r for r in table if r["role"] == "teacher"), None))
    return table


def model_block(row: dict) -> tuple[str, int]:
    """A model's block: the teacher it learned from and its seed (which sets its batch order and dropout)."""
    return row.get("teacher", "teacher"), row["seed"]


def teachers_of(row: dict) -> set[str]:
    """The teachers a strategy's models learned from."""
    return {teacher for teacher, _ in row.get("blocks", [])}


def is_control(row: dict) -> bool:
    """A control student: another run's (RUN:STRATEGY), or a control strategy of this run (`CONTROLS`)."""
    return ":" in row["strategy"] or row["strategy"] in CONTROLS


def _relative_to_teacher(table: list[dict], teacher: dict | None) -> None:
    for r in table:
        r["speedup_b32"] = teacher["latency_b32_ms"] / r["latency_b32_ms"] if teacher else None
        r["speedup_b1"] = teacher["latency_b1_ms"] / r["latency_b1_ms"] if teacher else None
        r["accuracy_kept"] = r["accuracy"] / teacher["accuracy"] if teacher and teacher["accuracy"] else None


def ensemble_rows(run: Run, rows: list[dict], table: list[dict], strategies: list[str]) -> tuple[list[dict], dict]:
    """Summary-like rows, one per replicate, for the ensemble of `strategies` (their class probabilities averaged,
    seed by seed) and for its compute-matched baseline (the best strategy's seeds averaged in disjoint groups of
    as many models), with the predicted labels of each replicate per split."""
    known = {r["strategy"] for r in rows if r["role"] == "student" and ":" not in r["strategy"]}  # not controls
    unknown = [s for s in strategies if s not in known]
    if len(set(strategies)) < 2 or unknown:
        raise ConfigError(
            f"an ensemble needs two or more of this run's strategies ({', '.join(sorted(known))})"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    best = best_student(table)["strategy"]
    size = len(set(strategies))
    name = "ensemble(" + "+".join(strategies) + ")"
    baseline = f"{best}×{size} seeds"
    groups: list[tuple[str, str, str, list[dict]]] = []
    for seed in sorted({r["seed"] for r in rows if r["strategy"] in strategies}):
        parts = [r for r in rows if r["strategy"] in strategies and r["seed"] == seed]
        if len(parts) == size:  # a seed that misses a member is left out
            groups.append((name, "ensemble", f"{name}-seed{seed}", parts))
    best_rows = sorted((r for r in rows if r["strategy"] == best), key=lambda r: r["seed"])
    for start in range(0, len(best_rows) - size + 1, size):
        parts = best_rows[start : start + size]
        seeds = "+".join(str(r["seed"]) for r in parts)
        groups.append((baseline, "baseline", f"{best}-seeds{seeds}", parts))
    labels = run.labels()
    out, predictions = [], {}
    for strategy, role, model, parts in groups:
        probabilities = [run.probabilities(r["model"]) for r in parts]
        if not all(probabilities):
            continue  # a run made before probabilities were kept
        splits, predictions[model] = {}, {}
        for split, split_labels in labels.items():
            mean = np.mean([p[split] for p in probabilities], axis=0)
            splits[split] = classification_metrics(np.log(np.clip(mean, 1e-12, 1.0)), np.asarray(split_labels))
            predictions[model][split] = mean.argmax(axis=1).tolist()
        out.append(
            summary_row(
                model=model,
                role=role,
                strategy=strategy,
                layers=[],
                seed=parts[0]["seed"],
                splits=splits,
                eval_rows=parts[0]["eval_rows"],
                members=[r["model"] for r in parts],
                **{key: sum(r[key] for r in parts) for key in ("params", "size_mb", "latency_b1_ms", "latency_b32_ms")},
            )
        )
    if not any(r["role"] == "ensemble" for r in out):
        raise ConfigError(f"run {run.name} kept no class probabilities for {', '.join(strategies)}")
    return out, predictions


def add_tests(run: Run, table: list[dict], predictions: dict) -> None:
    """Each student against the best one (chosen on the main split), on every validation split; an ensemble
    against its compute-matched baseline. Fields: `vs_best` per split, and the main and other split's test
    flattened (diff_vs_best, diff_low, diff_high, p_value, significant, test; other_* likewise)."""
    labels = run.labels()
    students = [r for r in table if r["role"] == "student"]
    if not students or not labels:
        return
    main = table[0]["eval_split"]
    best = best_student(table)
    best["best"] = True
    ensemble = next((r for r in table if r["role"] == "ensemble"), None)
    baseline = next((r for r in table if r["role"] == "baseline"), None)
    for split, split_labels in labels.items():
        models = _correctness(predictions, np.asarray(split_labels), split)
        if split == main:
            _put_plan(best, students, models)
        family, any_differ = _pair_tests(students, models)
        best["omnibus_p" if split == main else "other_omnibus_p"] = any_differ
        for r in students:
            if r is not best:
                record = family[(r["strategy"], best["strategy"])].record()
                _put_test(r, split, main, record, best["strategy"])
        if ensemble and not baseline:
            note = f"can't tell yet: {best['strategy']} has too few seeds for a fair comparison, run more seeds"
            record = {"difference": None, "low": None, "high": None, "p_value": None, "significant": None}
            _put_test(ensemble, split, main, {**record, "test": note}, best["strategy"])
        elif ensemble:
            record = seed_example_test(models(ensemble).correct, models(baseline).correct).record()
            if record["p_value"] is None and baseline["seeds"] < MIN_SEEDS:
                few = f"fewer than {MIN_SEEDS} groups of seeds"
                record["test"] = f"{few} to compare with: can't tell yet, run more seeds"
            _put_test(ensemble, split, main, record, baseline["strategy"])


def _put_plan(best: dict, students: list[dict], models) -> None:
    """What the run's seeds (or teachers) can detect, from its own noise (`stats.run_noise`), on the best
    student's row: `plan_units` and `plan_unit` (how many of what), `plan_detectable` (the smallest difference
    found 80% of the time) and `plan_seeds_for_1_point` and `_2_points` (None: no number of them, the rows limit
    it). Nothing with one seed: no noise to plan from."""
    noise = run_noise([models(r) for r in students if not is_control(r)])
    if noise is None:
        return
    counts = [len(teachers_of(r)) if noise.unit == "teachers" else r["seeds"] for r in students]
    units = max(MIN_SEEDS, min(c for c in counts if c >= 2))
    best.update(
        plan_units=units,
        plan_unit=noise.unit,
        plan_detectable=noise.detectable(units),
        plan_seeds_for_1_point=noise.seeds_for(0.01),
        plan_seeds_for_2_points=noise.seeds_for(0.02),
    )


def _pair_tests(rows: list[dict], models) -> tuple[dict[tuple[str, str], Difference], float | None]:
    """Every pair (a, b) in the order of `rows`, tested as a - b (`stats.compare`) and Holm-adjusted as one family;
    and the omnibus p (`stats.omnibus`) that the strategies, controls left out, are all equal."""
    # Each pair is drawn in one fixed order (by name), so its test is the same whichever table asks.
    pairs = [tuple(sorted((a, b), key=lambda r: r["strategy"])) for i, a in enumerate(rows) for b in rows[i + 1 :]]
    raw = [compare(models(a), models(b)) for a, b in pairs]
    out = {}
    for (a, b), test in zip(pairs, holm(raw), strict=True):
        out[(a["strategy"], b["strategy"])] = test
        out[(b["strategy"], a["strategy"])] = test.negated()
    layer_choices = [t for (a, b), t in zip(pairs, raw, strict=True) if not (is_control(a) or is_control(b))]
    return out, omnibus(layer_choices)


def best_student(table: list[dict]) -> dict:
    """The student row with the highest mean accuracy on the main split (every choice is made there), a control
    only where there is nothing else: the answer is about layer choices, and the controls are measured against it."""
    students = [r for r in table if r["role"] == "student"]
    return max([r for r in students if not is_control(r)] or students, key=lambda r: r["accuracy"])


# A test's fields as the row's own, for the API: the main split's as they are, the other split's as other_*.
FLAT_TEST = {"diff_vs_best": "difference", "diff_low": "low", "diff_high": "high"}
FLAT_TEST |= {"p_value": "p_value", "significant": "significant", "test": "test"}


def _put_test(row: Row, split: str, main: str, record: dict, against: str) -> None:
    """Store a test's record (`Difference.record()`) under `vs_best[split]`, where the tables read it; the main
    and the other split's are also the row's own fields (FLAT_TEST), as the API gives them."""
    test = Test(**record, against=against)
    row.setdefault("vs_best", {})[split] = test
    row["against"] = against
    prefix = "" if split == main else "other_"
    row.update({prefix + field: test[key] for field, key in FLAT_TEST.items()})  # type: ignore[misc]


def _correctness(predictions: dict, labels: np.ndarray, split: str):
    def models(row: dict) -> Models:  # each model's correctness (1 where it is right) and its block
        kept = [(m, block) for m, block in zip(row["models"], row["blocks"], strict=True) if m in predictions]
        correct = np.array([np.asarray(predictions[m][split]) == labels for m, _ in kept])
        return Models(correct, [block for _, block in kept])

    return models


def pairwise(run: Run, split: str | None = None, controls: list[Run] | None = None) -> list[Row]:
    """Every pair of strategies on `split` (default: the main validation split), the better one on the main
    split first: the difference, its interval and p, Holm-adjusted over all the pairs, counting seeds and
    examples. A one-seed strategy's pairs are shown untested."""
    predictions = run.predictions()
    rows = finished(run.summary()) + _control_rows(run, controls or [], predictions)
    table = [r for r in strategy_rows(rows) if r["role"] == "student"]
    if not table:
        return []
    split = split or table[0]["eval_split"]
    labels = run.labels().get(split)
    if labels is None:
        raise ConfigError(f"run {run.name} has no validation split {split!r}")
    ranked = sorted(table, key=lambda r: -r["accuracy"])  # chosen on the main split, whatever split is tested
    family, _ = _pair_tests(ranked, _correctness(predictions, np.asarray(labels), split))
    out = []
    for i, a in enumerate(ranked):
        for b in ranked[i + 1 :]:
            out.append(
                {
                    "better": a["strategy"],
                    "worse": b["strategy"],
                    "split": split,
                    **family[(a["strategy"], b["strategy"])].record(),
                }
            )
    return out


def holm_family(table: list[dict]) -> tuple[int, int]:
    """(pairs, students): the family each student's p is Holm-adjusted over on a split, as `add_tests` forms it:
    every pair of the students that have MIN_SEEDS or more seeds and learned from the run's own teacher(s) (a pair
    with fewer seeds, or across teachers, is shown untested, outside it)."""
    ours = teachers_of(next((r for r in table if r.get("best")), {}))
    tested = [
        r
        for r in table
        if r.get("role") == "student"
        and r.get("accuracy") is not None
        and r["seeds"] >= MIN_SEEDS
        and (not ours or teachers_of(r) == ours)
    ]
    return len(tested) * (len(tested) - 1) // 2, len(tested)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None
