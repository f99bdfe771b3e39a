"""What every model of a job shares: the checked teacher and depths, the data tokenised once, validation after
an epoch, and recording a finished model. The teacher (`teacher.py`) and the students (`job.py`) both use it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from .config import JobConfig
from .data import Encoded, encode, make_loader
from .evaluation import evaluate, folder_size_mb, latency_ms, probabilities
from .models import cls_only_last_layer, load_tokenizer, parameter_count, saved_architecture
from .plan import JobPlan
from .results import Run, write_json
from .search import searched_settings
from .summary import summary_row
from .training import ModelDiverged, Runtime

EVAL_BATCH = 64


@dataclass
class Shared:
    """What every model of a job shares: its settings, tokenizer, depths and tokenised rows."""

    cfg: JobConfig
    source: str
    tokenizer: object
    train: Encoded  # the teacher's training rows
    students: Encoded  # the students' (all of `train`, or a subset)
    validation: dict[str, Encoded]  # every validation split, the main one first
    eval_loaders: dict  # one per validation split, in the same order
    n_teacher: int
    n_student: int
    timed: dict[str, dict[str, float]] = field(default_factory=dict)  # latency by architecture

    @property
    def main_split(self) -> str:
        """The split every choice is made on (validation_matched for MNLI)."""
        return next(iter(self.validation))

    def latency(self, model: nn.Module, folder: Path, precision: str) -> dict[str, float]:
        """Latency per example at batch 1 and 32 on the main split of `model`, saved in `folder`, timed once per
        architecture: a model's speed is its shape's, so students of one depth share one figure instead of
        differing by timing noise."""
        key = saved_architecture(folder)
        if key not in self.timed:
            rows = self.validation[self.main_split]
            self.timed[key] = latency_ms(model, rows, self.tokenizer.pad_token_id, precision, self.cfg.latency_examples)
        return self.timed[key]

    def train_loader(self, rows: Encoded, seed: int):
        """Shuffled training batches of `rows`, grouped by length and padded as the job's settings say."""
        cfg = self.cfg
        pad_to = cfg.max_length if cfg.pad_to_max_length else None
        return make_loader(
            rows,
            self.tokenizer.pad_token_id,
            cfg.batch_size,
            seed,
            train=True,
            group=cfg.group_by_length,
            pad_to=pad_to,
        )


def prepare(plan: JobPlan, run: Run, runtime: Runtime) -> Shared:
    """The data tokenised once, the students' rows, the validation loaders; the run records its validation
    splits, in order, with their labels (labels.json)."""
    cfg, examples = plan.cfg, plan.data()
    runtime.emit(
        "stage",
        "data",
        f"run {run.name}: tokenising {', '.join(f'{k} {len(v)}' for k, v in examples.items())}",
        run=run.name,
    )
    tokenizer = load_tokenizer(plan.teacher.source)
    encoded = {name: encode(ex, tokenizer, cfg.max_length) for name, ex in examples.items()}
    train = encoded.pop("train")
    validation = encoded  # the splits after train, in the order the data gave them
    if runtime.is_main:
        write_json(run.path / "labels.json", {name: rows.labels for name, rows in validation.items()})
    eval_loaders = {
        name: runtime.accelerator.prepare(make_loader(rows, tokenizer.pad_token_id, EVAL_BATCH, train=False))
        for name, rows in validation.items()
    }
    students = train.subset(student_rows(len(train), cfg))
    teacher = plan.teacher
    return Shared(
        cfg, teacher.source, tokenizer, train, students, validation, eval_loaders, teacher.n_teacher, teacher.n_student
    )


def student_rows(n_train: int, cfg: JobConfig) -> list[int]:
    """The training rows the students distil on: all, or a fixed random subset (drawn with the data seed)."""
    size = cfg.student_train_size
    if not size or size >= n_train:
        return list(range(n_train))
    return sorted(np.random.default_rng(cfg.data_seed).choice(n_train, size, replace=False).tolist())


class Validation:
    """An after-epoch hook: loss and accuracy on every validation split, prefixed by the split's name.

    It measures before training (epoch 0), after the last epoch and, with `eval_every_epoch`, after every other;
    it keeps the last epoch's evaluation, so the finished model is not evaluated a second time.
    """

    def __init__(self, shared: Shared, runtime: Runtime, epochs: int):
        self.shared, self.runtime, self.epochs = shared, runtime, epochs
        self.last: tuple[dict, dict] | None = None

    def __call__(self, model: nn.Module, epoch: int) -> dict:
        shared, runtime = self.shared, self.runtime
        if 0 < epoch < self.epochs and not shared.cfg.eval_every_epoch:
            return {}
        self.last = evaluate(model, shared.eval_loaders, shared.validation, runtime.precision, runtime.accelerator)
        return {f"{split}_{k}": v for split, m in self.last[0].items() for k, v in m.items()}


def record_model(
    shared: Shared,
    run: Run,
    runtime: Runtime,
    model: nn.Module,
    *,
    name: str,
    role: str,
    strategy: str,
    layers: list[int],
    seed: int,
    history: list[dict],
    teacher: str | None = None,
    saved_from: Path | None = None,
    train_seconds: float | None = None,
    evaluated: tuple[dict, dict] | None = None,
) -> None:
    """Evaluate a finished model (unless its last epoch did), time it, save it, and record its summary row (a
    student's names the `teacher` it learned from)."""
    if evaluated is None:
        with cls_only_last_layer(model, shared.cfg.cls_only_last_layer):
            evaluated = evaluate(model, shared.eval_loaders, shared.validation, runtime.precision, runtime.accelerator)
    metrics, logits = evaluated
    broken = [f"{split} {key}" for split, m in metrics.items() for key, value in m.items() if not math.isfinite(value)]
    if broken:
        raise ModelDiverged(f"{name} diverged: its {broken[0]} is not a finite number; try a lower learning rate")
    if not runtime.is_main:
        return
    folder = run.link_model(name, saved_from) if saved_from else run.save_model(name, model, shared.tokenizer)
    main_split = shared.main_split
    latency = shared.latency(model, folder, runtime.precision)
    identity = {"model": name, "role": role, "strategy": strategy, "layers": layers, "seed": seed}
    row = summary_row(
        **identity,
        splits=metrics,
        eval_rows=len(shared.validation[main_split]),
        **({"teacher": teacher, **searched_settings(shared.cfg)} if role == "student" else {}),
        train_loss=history[-1]["train_loss"] if history else None,
        params=parameter_count(model),
        size_mb=folder_size_mb(folder),
        **latency,
        train_seconds=train_seconds,
    )
    run.add_metrics([{**identity, **row} for row in history])
    run.add_predictions(name, {split: values.argmax(axis=1).tolist() for split, values in logits.items()})
    run.add_probabilities(name, {split: probabilities(values) for split, values in logits.items()})
    run.record_row(row)
    runtime.emit(
        "model",
        name,
        f"{name}: {main_split} accuracy {row['accuracy']:.4f}, {latency['latency_b32_ms']:.2f} ms/example at batch 32",
        **row,
    )
