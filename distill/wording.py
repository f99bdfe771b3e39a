"""The comparison in plain words: the verdict, the planner's sentence, the notes under the table and the glossary
of its words, for someone who knows what accuracy is."""

from __future__ import annotations

from scipy import stats

from .comparison import Row, holm_family, is_control, teachers_of
from .config import EMBEDDED_TEACHER
from .data import LABELS
from .stats import ALPHA, MIN_SEEDS, UNTESTED
from .strategies import RANDOM_INIT

EMBEDDED_MODEL = "all-MiniLM-L6-v2"  # the packaged teacher's model (`hub.embedded_teacher`)

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


def verdict(table: list[Row]) -> str:
    """The comparison in one sentence or three, in plain words: the best student, by how much, how sure (only
    what the tests say), whether the other check set confirms it, and what the controls and an ensemble reach."""
    students = [r for r in table if r.get("role") == "student" and r.get("accuracy") is not None]
    if not students:
        return ""
    best = next((r for r in students if r.get("best")), None) or max(students, key=lambda r: r["accuracy"])
    name, others = best["strategy"], sorted((r for r in students if r is not best), key=lambda r: -r["accuracy"])
    guessing = _guessing_teacher(table)
    if not others:
        return _sentences(guessing, f"{name} is the only student ({best['accuracy']:.1%}): nothing to compare it with.")
    tied = [r for r in others if r["accuracy"] == best["accuracy"] and not is_control(r)]
    # Every rival is tested against the best row alone, so with a tie that row still leads the sentence.
    level = f" is level with {_names(tied)} at the top" if tied else ""
    highest = f"{name}{level or ' scored highest'} ({best['accuracy']:.1%})"  # said where no test says more
    if all(r.get("p_value") is None for r in others):
        few_seeds = best["seeds"] < MIN_SEEDS or any(r["seeds"] < MIN_SEEDS for r in others)
        why = f"with fewer than {MIN_SEEDS} seeds we can't tell yet: run {MIN_SEEDS} or more"
        why = why if few_seeds else "its lead can't be tested"
        return _sentences(guessing, f"{highest}, but {why}.")
    rivals = [r for r in others if not is_control(r) and r not in tied]
    close = [r for r in rivals if r.get("significant") is False]
    beaten = [r for r in rivals if r.get("significant")]
    untested = [r for r in rivals if r.get("p_value") is None]
    head = f"{name}{level or ' is best'} ({best['accuracy']:.1%})"
    if close:
        first, rest = close[0], close[1:]
        text = (
            f"{head}, but not clearly ahead of {first['strategy']} "
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
            f"{head}, clearly ahead of {every} (nearest: {nearest['strategy']}, "
            f"{_points(nearest['diff_vs_best'])}, {_p_text(nearest)})"
        )
    else:
        text = highest
    text += _confirmation(beaten)
    if untested:
        text += f"; can't tell yet against {_names(untested)} (fewer than {MIN_SEEDS} seeds)"
    sentences = [guessing, _omnibus_sentence(best), text + "."]
    controls = [r for r in others if is_control(r)]
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
    if len({t for r in [best, *tied, *rivals] for t in teachers_of(r)}) == 1:
        sentences.append(ONE_TEACHER)
    return _sentences(*sentences)


def _guessing_teacher(table: list[Row]) -> str:
    """A sentence when the teacher is no surer than a guess among the labels (one-sided binomial test at 5% on
    its validation rows): its students learnt from a teacher that knows nothing, so their ranking means nothing."""
    teacher = next((r for r in table if r.get("role") == "teacher" and r.get("accuracy") is not None), None)
    rows = (teacher or {}).get("eval_rows") or 0
    if not rows:
        return ""
    right = round(teacher["accuracy"] * rows)
    if stats.binomtest(right, rows, 1 / len(LABELS), alternative="greater").pvalue < ALPHA:
        return ""
    return (
        f"The teacher is no better than guessing ({teacher['accuracy']:.1%} on {rows} examples, where a guess gets "
        f"{1 / len(LABELS):.0%}): its students' ranking says nothing about layer choice. Fine-tune it on more "
        "rows or for more epochs."
    )


def _sentences(*sentences: str) -> str:
    """The non-empty sentences, as one text."""
    return " ".join(s for s in sentences if s)


def _omnibus_sentence(best: dict) -> str:
    """Does the choice matter at all: the omnibus test (`stats.omnibus`) over the strategies, controls left out."""
    p = best.get("omnibus_p")
    if p is None:
        return ""
    what = "The setting" if best.get("search") else "Layer choice"
    if p < ALPHA:
        return f"{what} matters here ({_p_text({'p_value': p})}, the strategies are not all equal)."
    return f"No strategy is distinguishable from the others ({_p_text({'p_value': p})})."


def plan_line(table: list[Row]) -> str:
    """The planner in one sentence: what this run's seeds can tell apart, and the seeds 1 and 2 points need."""
    best = next((r for r in table if r.get("plan_detectable") is not None), None)
    if best is None:
        return ""
    units, unit, detectable = best["plan_units"], best["plan_unit"], best["plan_detectable"]
    has = len(teachers_of(best)) if unit == "teachers" else best["seeds"]
    can = "can" if has >= units else "could"
    needs = [
        f"{points} would take {f'{n} {unit}' if n else f'more validation rows, not more {unit}'}"
        for points, n in (("1 point", best["plan_seeds_for_1_point"]), ("2 points", best["plan_seeds_for_2_points"]))
    ]
    return (
        f"With {units} {unit} this run {can} tell apart differences of about {detectable * 100:.1f} points (80% of the "
        f"time, before Holm's adjustment, judging by its own noise); {needs[0]}, {needs[1]}."
    )


def split_name(split: str | None) -> str:
    """A validation split as a reader knows it: 'validation_matched' is 'MNLI validation, matched genres'."""
    return SPLIT_NAMES.get(split, split) if split else "-"


def plain_test(test: str | None) -> str | None:
    """A test's note in plain words: 'fewer than 3 seeds: untested' reads "... can't tell yet, run 3 or more"."""
    return FEW_SEEDS if test == UNTESTED else test


def teacher_name(teacher: str) -> str:
    """The teacher as a reader knows it: the packaged one by its model's name."""
    return f"{EMBEDDED_MODEL} (packaged)" if teacher == EMBEDDED_TEACHER else teacher


def notes(table: list[Row], docs_url: str) -> str:
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


def glossary(table: list[Row], docs_url: str) -> str:
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
