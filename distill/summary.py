"""A summary row: one model's results, in a run's summary.json.

The job writes rows, the report adds ensembles of them, and the CLI, the app, publishing and `bench/` read them;
this is the row's one definition. Metrics are kept per validation split, in the order the run scored the splits
(the run's labels.json), the main split first: choices are made on it and confirmed on the others.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict


class SplitMetrics(TypedDict):
    """`evaluation.classification_metrics` on one validation split."""

    loss: float
    accuracy: float
    macro_f1: float
    accuracy_entailment: float
    accuracy_neutral: float
    accuracy_contradiction: float


METRICS = tuple(SplitMetrics.__annotations__)


class SummaryRow(TypedDict):
    """One model. A search variant's row also holds its searched settings (`search.searched_settings`)."""

    model: str
    role: str  # teacher or student; ensemble or baseline in a report
    strategy: str
    layers: list[int]
    seed: int | None
    eval_split: str | None  # the main validation split
    splits: dict[str, SplitMetrics]  # every split the model was scored on, the main one first
    loss: float | None  # the main split's, for sorting and showing
    accuracy: float | None
    eval_rows: int | None
    train_loss: NotRequired[float | None]
    params: NotRequired[int]
    size_mb: NotRequired[float]
    latency_b1_ms: NotRequired[float]
    latency_b32_ms: NotRequired[float]
    train_seconds: NotRequired[float | None]
    teacher: NotRequired[str]  # the teacher model a student learned from (one of the run's teachers)
    members: NotRequired[list[str]]  # an ensemble's models
    failed: NotRequired[str]  # why the model has no results


def summary_row(
    *,
    model: str,
    role: str,
    strategy: str,
    layers: list[int],
    seed: int | None,
    splits: dict[str, SplitMetrics],
    eval_rows: int | None,
    **fields: Any,
) -> SummaryRow:
    """A model's row; `splits` is ordered, the main split first, and empty for a model that failed (whose
    `failed` field says why)."""
    main = next(iter(splits), None)
    return {
        "model": model,
        "role": role,
        "strategy": strategy,
        "layers": layers,
        "seed": seed,
        "eval_split": main,
        "splits": splits,
        "loss": splits[main]["loss"] if main else None,
        "accuracy": splits[main]["accuracy"] if main else None,
        "eval_rows": eval_rows,
        **fields,
    }  # type: ignore[typeddict-item]


def metric(row: dict, split: str | None, name: str = "accuracy") -> float | None:
    """One metric of a row on one split; None where the row was not scored on it."""
    return row["splits"].get(split, {}).get(name) if split else None


def other_split(row: dict) -> str | None:
    """The first split besides the main one (MNLI's mismatched genres), where choices are confirmed."""
    return next((s for s in row["splits"] if s != row["eval_split"]), None)


def flat(row: dict) -> dict:
    """The row as one level of columns (a spreadsheet's), each split's metrics as `<split>_<metric>`."""
    out = {k: v for k, v in row.items() if k != "splits"}
    for split, metrics in row["splits"].items():
        out.update({f"{split}_{name}": value for name, value in metrics.items()})
    return out


def from_file(row: dict, splits: Sequence[str]) -> dict:
    """A row as read from summary.json. Rows written before this schema kept each split's metrics as top-level
    `<split>_<metric>` keys; `splits` (the run's, from labels.json) says which, so no key name is guessed."""
    if "splits" in row:
        return row
    out = dict(row)
    nested = {}
    for split in splits or [row.get("eval_split")]:
        keys = {name: f"{split}_{name}" for name in METRICS if f"{split}_{name}" in row}
        if keys:
            nested[split] = {name: out.pop(key) for name, key in keys.items()}
    out["splits"] = nested
    out.setdefault("eval_split", next(iter(nested), None))
    out.setdefault("eval_rows", None)
    return out


def finite_student(row: dict) -> bool:
    """A student that finished with a finite accuracy on every split it was scored on: one that failed,
    diverged or reads NaN anywhere is never recommended."""
    accuracies = [m.get("accuracy") for m in row.get("splits", {}).values()] + [row.get("accuracy")]
    return (
        row.get("role") == "student"
        and not row.get("failed")
        and all(isinstance(a, int | float) and not isinstance(a, bool) and math.isfinite(a) for a in accuracies)
    )


def recommended_student(rows: Sequence[dict]) -> dict | None:
    """The student to use, chosen the way the comparison chooses (docs/statistics.md): on the
    main validation split (validation_matched for MNLI), the strategy with the best mean accuracy over its
    seeds, then that strategy's seed with the best accuracy there. The other split (validation_mismatched) plays
    no part in the choice, so the model's accuracy on it is the unbiased confirmation. Only students with finite
    figures count; None when there is none. The published card recommends it and Chat opens on it."""
    strategies: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if finite_student(row):
            strategies[row["strategy"]].append(row)
    if not strategies:
        return None
    best = max(strategies.values(), key=lambda seeds: sum(r["accuracy"] for r in seeds) / len(seeds))
    return max(best, key=lambda r: r["accuracy"])
