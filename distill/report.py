"""The comparison of a run: one row per strategy (mean and spread over seeds), tests that count seeds and
examples (`stats`), curves and plots."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .config import EMBEDDED_TEACHER, ConfigError
from .evaluation import classification_metrics
from .results import Run
from .stats import ALPHA, MIN_SEEDS, UNTESTED, Difference, Models, compare, holm, omnibus, run_noise, seed_example_test
from .strategies import CONTROLS, RANDOM_INIT
from .summary import metric, other_split, summary_row

EMBEDDED_MODEL = "all-MiniLM-L6-v2"  # the packaged teacher's model (`hub.embedded_teacher`)
TABLE_COLUMNS = [  # the answer first (accuracy, the difference to the best, how sure), the details after
    ("strategy", "strategy", "{}"),
    ("layers", "teacher layers", "{}"),
    ("seeds", "seeds", "{}"),
    ("accuracy", "accuracy", "{:.2%}"),
    ("accuracy_std", "± spread over seeds", "{:.2%}"),
    ("vs_best", "vs best student (95% range)", "{}"),
    ("p_value", "sure? (p)", "p"),
    ("other_accuracy", "accuracy, other check set", "{:.2%}"),
    ("other_vs_best", "vs best, other check set", "{}"),
    ("accuracy_kept", "accuracy kept vs teacher", "{:.1%}"),
    ("speedup_b32", "speed-up vs teacher", "{:.2f}x"),
    ("params_m", "size (M parameters)", "{:.1f}"),
    ("macro_f1", "balanced score (macro-F1)", "{:.3f}"),
    ("train_loss", "training loss", "{:.4f}"),
    ("loss", "validation loss", "{:.4f}"),
]
SETTING_COLUMNS = [
    ("temperature", "temperature (T)", "{:g}"),
    ("learning_rate", "learning rate (lr)", "{:g}"),
    ("weight_ce", "weight: labels (ce)", "{:.2f}"),
    ("weight_kl", "weight: teacher's answers (kl)", "{:.2f}"),
    ("weight_cos", "weight: teacher's logits (cos)", "{:.2f}"),
]
# Validation splits by the names a reader knows; another split (a held-out or uploaded one) keeps its own name.
SPLIT_NAMES = {
    "validation_matched": "MNLI validation, matched genres",
    "validation_mismatched": "MNLI validation, unseen genres",
    "validation": "held-out validation rows",
}
NOT_CLEAR = "not clear (could be noise)"
FEW_SEEDS = f"fewer than {MIN_SEEDS} seeds: can't tell yet, run {MIN_SEEDS} or more"
RANDOM_START = "none (random start)"  # a student whose encoder layers start from random weights
ONE_TEACHER = (
    "All of this holds for this run's one fine-tuned teacher: another fine-tuning of it may rank the strategies "
    "otherwise."
)
# A search's own table: its settings instead of layers and speed, which are the same for every row.
SEARCH_COLUMNS = [
    ("strategy", "setting", "{}"),
    *SETTING_COLUMNS,
    *(c for c in TABLE_COLUMNS if c[0] not in ("strategy", "layers", "params_m", "speedup_b32")),
]


def comparison(run: Run, ensemble: list[str] | None = None, controls: list[Run] | None = None) -> list[dict[str, Any]]:
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


def strategy_rows(rows: list[dict], search: bool = False) -> list[dict[str, Any]]:
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
                **{key: members[0].get(key) for key, _, _ in SETTING_COLUMNS},
            }
        )
    _relative_to_teacher(table, next((r for r in table if r["role"] == "teacher"), None))
    return table


def model_block(row: dict) -> tuple[str, int]:
    """A model's block: the teacher it learned from and its seed (which sets its batch order and dropout)."""
    return row.get("teacher", "teacher"), row["seed"]


def _teachers(row: dict) -> set[str]:
    """The teachers a strategy's models learned from."""
    return {teacher for teacher, _ in row.get("blocks", [])}


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
    best = _best_student(table)["strategy"]
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
    best = _best_student(table)
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
    noise = run_noise([models(r) for r in students if not _is_control(r)])
    if noise is None:
        return
    counts = [len(_teachers(r)) if noise.unit == "teachers" else r["seeds"] for r in students]
    units = max(MIN_SEEDS, min(c for c in counts if c >= 2))
    best.update(
        plan_units=units,
        plan_unit=noise.unit,
        plan_detectable=noise.detectable(units),
        plan_seeds_for_1_point=noise.seeds_for(0.01),
        plan_seeds_for_2_points=noise.seeds_for(0.02),
    )


def plan_line(table: list[dict]) -> str:
    """The planner in one sentence: what this run's seeds can tell apart, and the seeds 1 and 2 points need."""
    best = next((r for r in table if r.get("plan_detectable") is not None), None)
    if best is None:
        return ""
    units, unit, detectable = best["plan_units"], best["plan_unit"], best["plan_detectable"]
    has = len(_teachers(best)) if unit == "teachers" else best["seeds"]
    can = "can" if has >= units else "could"
    needs = [
        f"{points} would take {f'{n} {unit}' if n else f'more validation rows, not more {unit}'}"
        for points, n in (("1 point", best["plan_seeds_for_1_point"]), ("2 points", best["plan_seeds_for_2_points"]))
    ]
    return (
        f"With {units} {unit} this run {can} tell apart differences of about {detectable * 100:.1f} points (80% of the "
        f"time, before Holm's adjustment, judging by its own noise); {needs[0]}, {needs[1]}."
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
    layer_choices = [t for (a, b), t in zip(pairs, raw, strict=True) if not (_is_control(a) or _is_control(b))]
    return out, omnibus(layer_choices)


def _best_student(table: list[dict]) -> dict:
    """The student row with the highest mean accuracy on the main split (every choice is made there), a control
    only where there is nothing else: the answer is about layer choices, and the controls are measured against it."""
    students = [r for r in table if r["role"] == "student"]
    return max([r for r in students if not _is_control(r)] or students, key=lambda r: r["accuracy"])


def _put_test(row: dict, split: str, main: str, record: dict, against: str) -> None:
    """Store a test's record (`Difference.record()`) under `vs_best[split]`, flattened with an other_ prefix
    for any split but the main one."""
    record = {**record, "against": against}
    row.setdefault("vs_best", {})[split] = record
    row["against"] = against
    prefix = "" if split == main else "other_"
    row.update(
        {
            f"{prefix}diff_vs_best": record["difference"],
            f"{prefix}diff_low": record["low"],
            f"{prefix}diff_high": record["high"],
            f"{prefix}p_value": record["p_value"],
            f"{prefix}significant": record["significant"],
            f"{prefix}test": record["test"],
        }
    )


def _correctness(predictions: dict, labels: np.ndarray, split: str):
    def models(row: dict) -> Models:  # each model's correctness (1 where it is right) and its block
        kept = [(m, block) for m, block in zip(row["models"], row["blocks"], strict=True) if m in predictions]
        correct = np.array([np.asarray(predictions[m][split]) == labels for m, _ in kept])
        return Models(correct, [block for _, block in kept])

    return models


def pairwise(run: Run, split: str | None = None, controls: list[Run] | None = None) -> list[dict[str, Any]]:
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


def format_pairwise(rows: list[dict]) -> str:
    width = max([32, *(len(r["better"]) + len(r["worse"]) + 3 for r in rows)])
    lines = [f"{'pair':<{width}} {'difference':>10}  {'95% CI (Holm)':<18} {'p (Holm)':>8}"]
    for r in rows:
        pair = f"{r['better']} - {r['worse']}"
        if r["p_value"] is None:
            lines.append(f"{pair:<{width}} {r['difference']:>+10.1%}  {r['test']}")
            continue
        ci = f"[{r['low']:+.1%}, {r['high']:+.1%}]"
        mark = "" if r["significant"] else "  (n.s.)"
        lines.append(f"{pair:<{width}} {r['difference']:>+10.1%}  {ci:<18} {_p(r['p_value']):>8}{mark}")
    return "\n".join(lines)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def verdict(table: list[dict]) -> str:
    """The comparison in one sentence or three, in plain words: the best student, by how much, how sure (only
    what the tests say), whether the other check set confirms it, and what the controls and an ensemble reach."""
    students = [r for r in table if r.get("role") == "student" and r.get("accuracy") is not None]
    if not students:
        return ""
    best = next((r for r in students if r.get("best")), None) or max(students, key=lambda r: r["accuracy"])
    name, others = best["strategy"], sorted((r for r in students if r is not best), key=lambda r: -r["accuracy"])
    if not others:
        return f"{name} is the only student ({best['accuracy']:.1%}): nothing to compare it with."
    if all(r.get("p_value") is None for r in others):
        few_seeds = best["seeds"] < MIN_SEEDS or any(r["seeds"] < MIN_SEEDS for r in others)
        why = f"with fewer than {MIN_SEEDS} seeds we can't tell yet: run {MIN_SEEDS} or more"
        why = why if few_seeds else "its lead can't be tested"
        return f"{name} scored highest ({best['accuracy']:.1%}), but {why}."
    rivals = [r for r in others if not _is_control(r)]
    close = [r for r in rivals if r.get("significant") is False]
    beaten = [r for r in rivals if r.get("significant")]
    untested = [r for r in rivals if r.get("p_value") is None]
    if close:
        first, rest = close[0], close[1:]
        text = (
            f"{name} is best ({best['accuracy']:.1%}), but not clearly ahead of {first['strategy']} "
            f"({_points(first['diff_vs_best'])}, 95% range {_number(first['diff_low'])} to "
            f"{_number(first['diff_high'])})"
            + "".join(f", {r['strategy']} ({_points(r['diff_vs_best'])})" for r in rest[:-1])
            + (f" and {rest[-1]['strategy']} ({_points(rest[-1]['diff_vs_best'])})" if rest else "")
        )
        if beaten:
            nearest, lead = beaten[0], -beaten[0]["diff_vs_best"]
            text += f"; it beats {nearest['strategy']} by {lead * 100:.1f} points ({_p_text(nearest)})"
            text += f" and {_names(beaten[1:])} by more" if beaten[1:] else ""
    elif beaten:
        nearest = beaten[0]
        every = "every other strategy" if not untested else "every tested strategy"
        text = (
            f"{name} is best ({best['accuracy']:.1%}), clearly ahead of {every} (nearest: {nearest['strategy']}, "
            f"{_points(nearest['diff_vs_best'])}, {_p_text(nearest)})"
        )
    else:
        text = f"{name} scored highest ({best['accuracy']:.1%})"
    text += _confirmation(beaten)
    if untested:
        text += f"; can't tell yet against {_names(untested)} (fewer than {MIN_SEEDS} seeds)"
    sentences = [s for s in (_omnibus_sentence(best), text + ".") if s]
    controls = [r for r in others if _is_control(r)]
    if controls:
        reached = [
            f"{r['strategy']}{' (random start)' if r['strategy'].split(':')[-1] in RANDOM_INIT else ''} reaches "
            f"{r['accuracy']:.1%} ({_against(r)})"
            for r in controls
        ]
        sentences.append("Controls: " + "; ".join(reached) + ".")
    for r in table:
        if r.get("role") == "ensemble" and r.get("accuracy") is not None:
            versus = "" if r.get("diff_vs_best") is None else f", {_points(r['diff_vs_best'])} vs {r['against']}"
            sentences.append(f"{r['strategy']} reaches {r['accuracy']:.1%}{versus} ({_test_word(r)}).")
    if len({t for r in [best, *rivals] for t in _teachers(r)}) == 1:
        sentences.append(ONE_TEACHER)
    return " ".join(sentences)


def _omnibus_sentence(best: dict) -> str:
    """Does the choice matter at all: the omnibus test (`stats.omnibus`) over the strategies, controls left out."""
    p = best.get("omnibus_p")
    if p is None:
        return ""
    what = "The setting" if best.get("search") else "Layer choice"
    if p < ALPHA:
        return f"{what} matters here ({_p_text({'p_value': p})}, the strategies are not all equal)."
    return f"No strategy is distinguishable from the others ({_p_text({'p_value': p})})."


def split_name(split: str | None) -> str:
    """A validation split as a reader knows it: 'validation_matched' is 'MNLI validation, matched genres'."""
    return SPLIT_NAMES.get(split, split) if split else "-"


def plain_test(test: str | None) -> str | None:
    """A test's note in plain words: 'fewer than 3 seeds: untested' reads "... can't tell yet, run 3 or more"."""
    return FEW_SEEDS if test == UNTESTED else test


def teacher_name(teacher: str) -> str:
    """The teacher as a reader knows it: the packaged one by its model's name."""
    return f"{EMBEDDED_MODEL} (packaged)" if teacher == EMBEDDED_TEACHER else teacher


def holm_family(table: list[dict]) -> tuple[int, int]:
    """(pairs, students): the family each student's p is Holm-adjusted over on a split, as `add_tests` forms it:
    every pair of the students that have MIN_SEEDS or more seeds and learned from the run's own teacher(s) (a pair
    with fewer seeds, or across teachers, is shown untested, outside it)."""
    ours = _teachers(next((r for r in table if r.get("best")), {}))
    tested = [
        r
        for r in table
        if r.get("role") == "student"
        and r.get("accuracy") is not None
        and r["seeds"] >= MIN_SEEDS
        and (not ours or _teachers(r) == ours)
    ]
    return len(tested) * (len(tested) - 1) // 2, len(tested)


def notes(table: list[dict], docs_url: str) -> str:
    """What the table shows and how sure it is, in plain words: the check sets, the family each p is adjusted
    over (its size: this table's pairs, not another table's), and the link to how the tests work."""
    split = table[0].get("eval_split") if table else None
    rows = table[0].get("eval_rows") if table else 0
    other = next((r.get("other_split") for r in table if r.get("other_split")), None)
    text = (
        f"Accuracy on {split_name(split)} ({rows or 0} examples): the share of examples a model gets right, "
        "averaged over its seeds. Each student is compared with the best one, chosen on these examples"
    )
    text += f"; the last column repeats the test on {split_name(other)}. " if other else ". "
    pairs, students = holm_family(table)
    if pairs:
        comparisons = "the one comparison" if pairs == 1 else f"the {pairs} comparisons"
        text += (
            f"Each p is adjusted (Holm) for {comparisons} between the {students} students in this table with "
            f"{MIN_SEEDS} or more seeds (every pair, one p per pair, on each check set), so that picking the best of "
            "many does not make its lead look surer than it is. "
        )
    finished_students = [r for r in table if r.get("role") == "student" and r.get("accuracy") is not None]
    if len(finished_students) > 1 and any(r["seeds"] < MIN_SEEDS for r in finished_students):
        text += f"A student with {FEW_SEEDS.replace(':', ' gets no p:', 1)}. "
    if any(r.get("role") == "ensemble" for r in table):
        text += "The ensemble's own test, against its fair baseline, stands alone (not adjusted). "
    return text + f"[How sure, and why: docs/statistics.md]({docs_url})"


def glossary(table: list[dict], docs_url: str) -> str:
    """The technical words of the table, each with a short explanation, for someone who knows what accuracy is."""
    terms = [
        ("strategy", "which teacher layers a student starts from (its name says how they are picked)"),
        ("teacher layers", f"the teacher's layers copied into the student, counted from 0; {RANDOM_START}: no layer"),
        ("seeds", "how many times it was trained, each time from another random start: more seeds, surer results"),
        ("± spread over seeds", "how much the accuracy varies from seed to seed (standard deviation)"),
        ("training / validation loss", "the error that training lowers, on training and on validation examples"),
        (
            "balanced score (macro-F1)",
            "like accuracy, but each answer (entailment, neutral, contradiction) counts "
            "equally, however often it occurs",
        ),
        ("size (M parameters)", "millions of learned numbers in the model"),
        ("speed-up vs teacher", "how many times faster than the teacher, in batches of 32 examples"),
        ("accuracy kept vs teacher", "the student's accuracy as a share of the teacher's"),
        (
            "vs best student (95% range)",
            "the difference in accuracy to the best student, and the range the true "
            "difference lies in 95 times out of 100 (a confidence interval); it counts the luck of training (seeds) "
            "and of which examples were scored",
        ),
        (
            "sure? (p)",
            "the chance of a difference this large if the two were really equal: below 0.05 reads as "
            f"clear, otherwise {NOT_CLEAR}; Holm-adjusted, see above",
        ),
        (
            "other check set",
            "MNLI validation has matched genres (kinds of text training saw) and unseen genres "
            "(mismatched): the best is chosen on the first and confirmed on the second",
        ),
    ]
    if any(r.get("role") == "ensemble" for r in table):
        terms.append(
            (
                "ensemble",
                "students answering together, their class probabilities averaged; its fair "
                "baseline (×N seeds) averages as many seeds of the best strategy: the same compute",
            )
        )
    if any(r.get("search") for r in table):
        terms.append(("temperature (T)", "how much the teacher's answers are softened before the student copies them"))
        terms.append(("learning rate (lr)", "how big each training step is"))
        terms.append(
            (
                "weights (ce, kl, cos)",
                "how much the student learns from the labels (cross-entropy), the "
                "teacher's answers (KL divergence) and the teacher's logits, their direction (cosine)",
            )
        )
    lines = "\n".join(f"- **{term}**: {meaning}" for term, meaning in terms)
    return f"**What the words mean**\n\n{lines}\n\nHow sure is sure: [docs/statistics.md]({docs_url})"


def _is_control(row: dict) -> bool:
    """A control student: another run's (RUN:STRATEGY), or a control strategy of this run (`CONTROLS`)."""
    return ":" in row["strategy"] or row["strategy"] in CONTROLS


def _number(difference: float) -> str:
    return f"{difference * 100:+.1f}"


def _points(difference: float) -> str:
    return f"{_number(difference)} points"


def _p_text(row: dict) -> str:
    p = row["p_value"]
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _names(rows: list[dict]) -> str:
    names = [r["strategy"] for r in rows]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _confirmation(beaten: list[dict]) -> str:
    """Whether each lead that is clear on the main split is clear the same way on the other check set."""
    split = next((r.get("other_split") for r in beaten if r.get("other_p_value") is not None), None)
    if not split:
        return ""
    where = f"the other check set ({split_name(split)})"
    held = [r for r in beaten if r.get("other_significant") and r["other_diff_vs_best"] < 0]
    if len(held) == len(beaten):
        return f", confirmed on {where}"
    if not held:
        return f", not confirmed on {where}"
    lost = [r for r in beaten if r not in held]
    return f", confirmed on {where} against {_names(held)} but not against {_names(lost)}"


def _test_word(row: dict) -> str:
    """What a row's test says: its p, marked when not clear, or why it can't tell yet."""
    if row.get("p_value") is None:
        return plain_test(row.get("test")) or FEW_SEEDS
    return _p_text(row) + ("" if row["significant"] else f", {NOT_CLEAR}")


def _against(row: dict) -> str:
    """A control's difference to the best student, with its test."""
    return f"{_points(row['diff_vs_best'])}, {_test_word(row)}"


CHAR_PX = 8.4  # one character of the app's 14 px monospace table font


def column_widths(rows: list[dict[str, str]]) -> list[str]:
    """Widths for `display_rows` in the app's table, in pixels: each column as wide as the longest word of its
    title or its longest cell, long cells (intervals, names) capped so that they wrap. A table wider than its
    frame (on a phone, or with many columns) scrolls sideways in it; no word is ever cut."""
    if not rows:
        return []
    widths = []
    for title in rows[0]:
        word = max(len(w) for w in re.split(r"(?<=-)|\s+", title))  # a title breaks at spaces and after hyphens
        # a cell with spaces wraps at them (13: an interval in two lines), any other anywhere
        cell = max(min(len(r[title]), 13 if " " in r[title] else 10) for r in rows)
        widths.append(f"{round((max(word, cell, 3) + 2.3) * CHAR_PX)}px")  # + 2.3: the cell's padding (16 px)
    return widths


def plotted_strategies(table: list[dict], width_px: int = 1000, most: int = 10) -> list[str]:
    """The rows a plot can name in its legend: the teacher, then the students by accuracy, then any ensemble,
    as many as fit in one legend row of `width_px` and at most `most` (one colour each)."""
    # Gradio's plots draw their legend as one row below the plot (Vega-Lite, 10 px labels): past its width the
    # names are cut off, and past ten the colours repeat.
    finished_rows = [r for r in table if r.get("accuracy") is not None]
    order = {"teacher": 0, "student": 1}
    ranked = sorted(finished_rows, key=lambda r: (order.get(r["role"], 2), -r["accuracy"]))
    out, used = [], 0
    for r in ranked:
        used += 26 + 5 * len(r["strategy"])  # symbol and padding, then about 5 px a character
        if len(out) == most or (out and used > width_px):
            break
        out.append(r["strategy"])
    return out


def display_rows(table: list[dict]) -> list[dict[str, str]]:
    """The comparison as strings, for the terminal and the app's table (a search gets its own columns)."""
    columns = SEARCH_COLUMNS if any(r.get("search") for r in table) else TABLE_COLUMNS
    out = []
    for r in table:
        r = dict(r)
        r["layers"] = ",".join(str(i) for i in r["layers"]) or (RANDOM_START if r["role"] == "student" else "-")
        if r.get("seeds") == 1:
            r["accuracy_std"] = None  # one seed has no spread to show
        if r.get("failed_seeds"):
            r["seeds"] = f"{r['seeds']} (+{r['failed_seeds']} failed)"
        r["vs_best"] = "best" if r.get("best") else _verdict(r, "")
        r["other_vs_best"] = _verdict(r, "other_")
        out.append({title: _fmt(fmt, r.get(key)) for key, title, fmt in columns})
    return out


def _verdict(r: dict, prefix: str) -> str | None:
    """A difference with its test as one cell, in plain words: '-1.2% (-2.0% to -0.4%), clearly behind',
    '... not clear (could be noise)' or "-1.2% (fewer than 3 seeds: can't tell yet, run 3 or more)"."""
    difference = r.get(f"{prefix}diff_vs_best")
    if difference is None:
        return plain_test(r.get(f"{prefix}test"))
    against = f" vs {r['against']}" if r["role"] == "ensemble" else ""
    if r.get(f"{prefix}p_value") is None:
        return f"{difference:+.1%}{against} ({plain_test(r[f'{prefix}test'])})"
    mark = f", {NOT_CLEAR}"
    if r[f"{prefix}significant"]:
        mark = ", clearly ahead" if difference > 0 else ", clearly behind"
    if prefix:
        return f"{difference:+.1%}{against}, p {_p(r[f'{prefix}p_value'])}{mark}"
    return f"{difference:+.1%}{against} ({r[f'{prefix}diff_low']:+.1%} to {r[f'{prefix}diff_high']:+.1%}){mark}"


def _fmt(fmt: str, value: Any) -> str:
    if value is None:
        return "-"
    return _p(value) if fmt == "p" else fmt.format(value)


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def format_table(table: list[dict]) -> str:
    rows = display_rows(table)
    if not rows:
        return "(no finished models yet)"
    titles = list(rows[0])
    widths = {t: max(len(t), *(len(r[t]) for r in rows)) for t in titles}
    lines = ["  ".join(t.ljust(widths[t]) for t in titles), "  ".join("-" * widths[t] for t in titles)]
    lines += ["  ".join(r[t].ljust(widths[t]) for t in titles) for r in rows]
    return "\n".join(lines)


def curves(run: Run) -> list[dict[str, Any]]:
    """Per-epoch curves in long form (model, strategy, seed, epoch, curve, value): one line per model."""
    split = next(iter(run.labels()), None)  # the main validation split
    out = []
    for row in run.metrics:
        for key, value in row.items():
            if key.startswith("train_") or (split and key in (f"{split}_loss", f"{split}_accuracy")):
                curve = key.replace(f"{split}_", "val_") if split else key
                out.append(
                    {
                        "model": row["model"],
                        "strategy": row["strategy"],
                        "seed": row["seed"],
                        "epoch": row["epoch"],
                        "curve": curve,
                        "value": value,
                    }
                )
    return out


def write_plots(run: Run) -> list[Path]:
    """The original's plots: loss curves per strategy, validation accuracy per epoch, and accuracy vs latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder = run.path / "plots"
    folder.mkdir(exist_ok=True)
    points = curves(run)
    strategies = list(dict.fromkeys(p["strategy"] for p in points))
    paths = []
    if strategies:
        fig, axes = plt.subplots(1, len(strategies), figsize=(4.2 * len(strategies), 3.6), squeeze=False, sharey=True)
        for ax, strategy in zip(axes[0], strategies, strict=True):
            for curve in ("train_loss", "train_ce", "train_kl", "train_cos", "val_loss"):
                epochs, values = _series(points, strategy, curve)
                if epochs:
                    ax.plot(epochs, values, marker="o", label=curve.replace("train_", ""))
            ax.set_title(strategy)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs: no tick at 1.25
        axes[0][0].set_ylabel("loss (mean over seeds)")
        axes[0][-1].legend()
        paths.append(_save(fig, folder / "loss_curves.png"))

        fig, ax = plt.subplots(figsize=(6, 4))
        for strategy in strategies:
            epochs, values = _series(points, strategy, "val_accuracy")
            ax.plot(epochs, values, marker="o", label=strategy)
        ax.set(xlabel="epoch", ylabel="validation accuracy (mean over seeds)", title="Validation accuracy per epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        paths.append(_save(fig, folder / "val_accuracy.png"))

    table = strategy_rows(finished(run.summary()))
    if table:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in table:  # a legend, not labels: students of one depth share one latency, so one vertical line
            yerr = r["accuracy_std"] or None
            ax.errorbar(r["latency_b32_ms"], r["accuracy"], yerr=yerr, fmt="o", capsize=3, label=r["strategy"])
        ax.set(xlabel="latency per example at batch 32 (ms)", ylabel="validation accuracy", title="Accuracy vs latency")
        ax.legend(fontsize="small")
        paths.append(_save(fig, folder / "accuracy_latency.png"))
    return paths


def step_loss_figure(points: list[dict]):
    """The live training-loss curve of a job: one line per stage (teacher, then each student)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(9, 3))
    stages: dict[str, list[dict]] = defaultdict(list)
    for p in points:
        stages[p["stage"]].append(p)
    for stage, rows in stages.items():
        marker = "o" if len(rows) == 1 else None  # a line needs two points: one is drawn as a marker
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=stage, linewidth=1, marker=marker)
    ax.set(xlabel="training step of the job", ylabel="loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if stages:
        ax.legend(fontsize="small", ncol=min(len(stages), 6))
    fig.tight_layout()
    plt.close(fig)
    return fig


def _series(points: list[dict], strategy: str, curve: str) -> tuple[list[int], list[float]]:
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for p in points:
        if p["strategy"] == strategy and p["curve"] == curve:
            by_epoch[p["epoch"]].append(p["value"])
    epochs = sorted(by_epoch)
    return epochs, [float(np.mean(by_epoch[e])) for e in epochs]


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    tmp.replace(path)
    return path
