"""What each run file must hold: the types, ranges and lengths of its values.

A check takes a file's parsed value and returns None when it is usable, else what is wrong, naming the field
(`row 2 (odd-seed0) field params is not a number`); `results.Run` raises DamagedRun with it where it reads the
file. Python's JSON parser accepts NaN and Infinity, so every number is checked to be finite, and a time later
than now is damage too: a dead job would look alive.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .data import LABELS

Check = Callable[[Any], str | None]
CLASSES = len(LABELS)
CLOCK_SKEW_SECONDS = 10.0  # how far another host's clock may run ahead before its times count as the future


def number(
    low: float = -math.inf, high: float = math.inf, *, above: bool = False, whole: bool = False, null: bool = False
) -> Check:
    """A finite number (an int with `whole`) from `low` (`above` it) to `high`; with `null`, None too."""

    def check(value: Any) -> str | None:
        if value is None and null:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
            return "is not a whole number" if whole else "is not a number"
        if not math.isfinite(value):
            return "is not a finite number"
        if not low <= value <= high or (above and value == low):
            return f"is out of range ({value:g} not in {'(' if above else '['}{low:g}, {high:g}])"
        return None

    return check


def plain(value: Any) -> str | None:
    """Any JSON value whose numbers (in lists and objects too) are finite."""
    if isinstance(value, float) and not math.isfinite(value):
        return "is not a finite number"
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        problem = plain(item)
        if problem:
            return problem
    return None


def moment(value: Any) -> str | None:
    """A time (seconds since the epoch) that has passed."""
    problem = number(0)(value)
    if problem is None and value > time.time() + CLOCK_SKEW_SECONDS:
        return "is in the future"
    return problem


def text(*, null: bool = False, among: tuple[str, ...] = ()) -> Check:
    """A string (one of `among` when given); with `null`, None too."""

    def check(value: Any) -> str | None:
        if value is None and null:
            return None
        if not isinstance(value, str):
            return "is not a string"
        return f"is not one of {', '.join(among)}" if among and value not in among else None

    return check


def items(each: Check, *, empty: bool = True) -> Check:
    """A list whose every item passes `each`."""

    def check(value: Any) -> str | None:
        if not isinstance(value, list) or (not empty and not value):
            return "is not a list" if empty else "is not a non-empty list"
        for i, item in enumerate(value):
            problem = each(item)
            if problem:
                return f"item {i} {problem}"
        return None

    return check


def fields(spec: Mapping[str, Check | None], required: tuple[str, ...] = (), other: Check | None = None) -> Check:
    """An object whose fields pass their checks in `spec` (the `required` ones present), and any other field
    `other` (a check of None, or no `other`: anything)."""

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "does not hold a JSON object"
        for key in required:
            if key not in value:
                return f"has no field {key}"
        for key, item in value.items():
            test = spec.get(key, other)
            problem = test(item) if test else None
            if problem:
                return f"field {key} {problem}"
        return None

    return check


def model_name(value: Any) -> str | None:
    """A model's name, which names its files (models/<name>/, probabilities/<name>.npz): no path in it."""
    if not isinstance(value, str):
        return "is not a string"
    if not value or value.startswith(".") or any(c in value for c in "/\\") or not value.isprintable():
        return f"is not a model name ({value[:40]!r})"
    return None


LAYERS = items(number(0, whole=True))
SEED = number(0, whole=True, null=True)
SHARE = number(0, 1)  # accuracies, F1
LOSS = number(0, null=True)
POSITIVE = number(0, above=True)  # a number that divides
SPLIT_METRICS = fields({"loss": LOSS, "accuracy": SHARE}, ("accuracy",), other=number(0, 1, null=True))
SPLIT_METRICS_FAILED = fields({}, other=number(null=True))
PROCESS = number(1, whole=True)

STATUS = {
    "message": text(),
    "time": moment,
    "started": moment,
    "busy_seconds": number(0),
    "pid": PROCESS,
    "host": text(),
}
HEARTBEAT = fields({"time": moment, "since": moment, "pid": PROCESS, "host": text()}, ("time",))
CONFIG = fields({}, other=plain)  # and then as a JobConfig
OWNER = fields({"owner": text()}, ("owner",))
PROGRESS = fields(
    {
        "run": text(null=True),
        "state": text(),
        "stage": text(null=True),
        "done": number(0, whole=True),
        "total": number(0, whole=True),
        "log": items(text()),
        "curve": items(
            fields({"step": number(0, whole=True), "stage": text(null=True), "loss": number(null=True)}, ("step",))
        ),
        "models": items(fields({})),
    }
)
_METRICS_ROW = fields(
    {
        "model": model_name,
        "role": text(),
        "strategy": text(),
        "layers": LAYERS,
        "seed": SEED,
        "epoch": number(0, whole=True),
    },
    ("model", "strategy", "seed", "epoch"),
)
# Every row's fields; a finished model's (one with a finite accuracy and no `failed`) must have FINISHED too.
SUMMARY_ROW = {
    "model": model_name,
    "role": text(among=("teacher", "student")),
    "strategy": text(),
    "layers": LAYERS,
    "seed": SEED,
    "eval_split": text(null=True),
    "loss": LOSS,
    "eval_rows": number(0, whole=True, null=True),
    "train_loss": LOSS,
    "train_seconds": number(0, null=True),
    "params": number(0, whole=True),
    "size_mb": number(0),
    "latency_b1_ms": POSITIVE,
    "latency_b32_ms": POSITIVE,
    "members": items(text()),
    "failed": text(),
    "teacher": model_name,  # the teacher a student learned from
    # a search's settings of the model (or else the job's, in config.json)
    "temperature": POSITIVE,
    "learning_rate": POSITIVE,
    **{f"weight_{k}": number(0) for k in ("ce", "kl", "cos", "hidden")},
}
FINISHED = ("layers", "seed", "eval_split", "eval_rows", "splits", "loss", "params", "size_mb")
FINISHED += ("latency_b1_ms", "latency_b32_ms")


def status_problem(states: tuple[str, ...]) -> Check:
    """status.json: a known state and its time, both required; the other fields typed when present."""
    check = fields(STATUS, ("time",))

    def problem(value: Any) -> str | None:
        if not isinstance(value, dict) or value.get("state") not in states:
            return "does not hold a known state"
        return check(value)

    return problem


def metrics_row(value: Any) -> str | None:
    """A metrics.jsonl row: the model, its strategy, seed and epoch, then metrics: shares (accuracies, F1) from
    0 to 1 and losses of 0 or more, each null where it was not a finite number."""
    problem = _METRICS_ROW(value)
    if problem:
        return problem
    for key, item in value.items():
        if key not in ("model", "role", "strategy", "layers", "seed", "epoch"):
            share = "_accuracy" in key or key.endswith("macro_f1")
            problem = (number(0, 1, null=True) if share else LOSS)(item)
            if problem:
                return f"field {key} {problem}"
    return None


def summary_file(value: Any) -> str | None:
    """summary.json as stored: a list of JSON objects, each naming its model."""
    if not isinstance(value, list):
        return "does not hold a list of models"
    for index, row in enumerate(value, start=1):
        if not isinstance(row, dict) or model_name(row.get("model")):
            return f"row {index} names no model"
    return None


def summary_rows(rows: list[dict]) -> str | None:
    """summary.json's rows, each in the nested form of `summary.from_file`."""
    seen: set[str] = set()
    for index, row in enumerate(rows, start=1):
        where = f"row {index} ({row['model']})"
        if row["model"] in seen:
            return f"{where} repeats model {row['model']}"
        seen.add(row["model"])
        if row.get("role") not in ("teacher", "student"):
            return f"{where} has no role (teacher or student)"
        problem = _summary_row(row)
        if problem:
            return f"{where} {problem}"
    return None


def finished(row: dict) -> bool:
    """Whether a summary row is a result: not failed, with a finite accuracy (a non-finite one reads as failed)."""
    accuracy = row.get("accuracy")
    return not row.get("failed") and isinstance(accuracy, int | float) and math.isfinite(accuracy)


def _summary_row(row: dict) -> str | None:
    accuracy = row.get("accuracy")
    if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, int | float)):
        return "field accuracy is not a number"
    done = finished(row)
    required = ("strategy", *FINISHED) if done else ("strategy",)
    splits = SPLIT_METRICS if done else SPLIT_METRICS_FAILED
    # an accuracy that is no finite number (an old file's bare NaN) reads as failed (`results._mark_failed`)
    spec = {**SUMMARY_ROW, "accuracy": SHARE if done else None, "splits": _splits(splits, done)}
    problem = fields(spec, required, other=plain)(row)
    if problem or not done:
        return problem
    if row["eval_split"] not in row["splits"]:
        return f"field eval_split names a split it has no metrics for ({row['eval_split']!r})"
    if row["accuracy"] != row["splits"][row["eval_split"]]["accuracy"]:
        return f"field accuracy is not its main split's ({row['eval_split']})"
    return None


def _splits(metrics: Check, non_empty: bool) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, dict) or (non_empty and not value):
            return "has no metrics per split"
        for split, values in value.items():
            problem = metrics(values)
            if problem:
                return f"split {split} {problem}"
        return None

    return check


def labels_problem(value: Any) -> str | None:
    """labels.json: per validation split, its rows' class indices."""
    return _per_split(value, None)


def predictions_problem(value: Any, split_labels: dict[str, list[int]]) -> str | None:
    """predictions.json: per model, per validation split of labels.json, one class index per row."""
    if not isinstance(value, dict):
        return "does not hold one entry per model"
    for model, splits in value.items():
        problem = _per_split(splits, split_labels)
        if problem:
            return f"model {model} {problem}"
    return None


def probabilities_problem(arrays: Mapping[str, np.ndarray], split_labels: dict[str, list[int]]) -> str | None:
    """A model's probabilities/<model>.npz: per validation split of labels.json, rows by classes of floats,
    finite, each row a distribution."""
    for split, rows in split_labels.items():
        if split not in arrays:
            return f"has no split {split}"
        array = arrays[split]
        if array.dtype.kind != "f":
            return f"split {split} holds {array.dtype} values, not numbers"
        if array.shape != (len(rows), CLASSES):
            return f"split {split} has shape {array.shape}, not ({len(rows)}, {CLASSES})"
        if not np.isfinite(array).all():
            return f"split {split} holds a value that is not a finite number"
        if array.size and (array.min() < 0 or not np.allclose(array.sum(axis=1), 1.0, atol=1e-3)):
            return f"split {split} holds rows that are not probabilities"
    return None


def _per_split(value: Any, split_labels: dict[str, list[int]] | None) -> str | None:
    """Class indices per split; with `split_labels`, every split of it with as many rows."""
    if not isinstance(value, dict):
        return "does not hold one entry per split"
    for split in split_labels or {}:
        if split not in value:
            return f"has no split {split}"
    for split, rows in value.items():
        problem = _classes(rows, empty=split_labels is not None)
        if problem:
            return f"split {split} {problem}"
        if split_labels is not None and split in split_labels and len(rows) != len(split_labels[split]):
            return f"split {split} has {len(rows)} rows, labels.json {len(split_labels[split])}"
    return None


def _classes(rows: Any, *, empty: bool) -> str | None:
    """A list of class indices (fast: a reference run holds hundreds of thousands)."""
    if not isinstance(rows, list) or (not empty and not rows):
        return "is not a list" if empty else "is not a non-empty list"
    wrong = next((i for i, v in enumerate(rows) if type(v) is not int), None)  # type, not isinstance: no bools
    if wrong is not None:
        return f"item {wrong} is not a whole number"
    if rows and (min(rows) < 0 or max(rows) >= CLASSES):
        return f"holds a class index out of range (0 to {CLASSES - 1})"
    return None
