"""The teacher's life cycle in a job: fine-tuned once per settings (and cached by them), evaluated and saved, run
once over the students' training rows, and its layers scored for the data-driven strategies."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import set_seed
from torch import nn

from .config import EMBEDDED_TEACHER, JobConfig
from .data import make_loader
from .evaluation import classification_metrics, forward_all
from .models import build_student, cls_only_last_layer, load_classifier, trained_with
from .results import Run, read_json, save_pretrained_atomic, write_json
from .shared import EVAL_BATCH, Shared, Validation, record_model
from .training import Runtime, cross_entropy_step, fit

HIDDEN_IN_MEMORY_BYTES = 2 * 2**30  # teacher [CLS] states above this size go to a file on disk
IMPORTANCE_PROBE_ROWS = 1000


@dataclass
class TeacherOutputs:
    """The fine-tuned teacher's outputs on every training row: exact to reuse, since it runs in eval mode."""

    logits: torch.Tensor  # (rows, labels), fp16
    hidden: torch.Tensor | None  # (rows, layers + 1, hidden) [CLS] vectors, fp16; None without a hidden loss


@dataclass
class Teacher:
    """A fine-tuned teacher of a job: its model name in the run, the model, and its cached outputs."""

    name: str
    model: nn.Module
    outputs: TeacherOutputs | None


def teacher_name(cfg: JobConfig, seed: int) -> str:
    """A teacher's model name in its run: `teacher` for the first (as in a run with one), `teacher-seedN` after."""
    return "teacher" if seed == cfg.teachers[0] else f"teacher-seed{seed}"


def teacher_cache_dir(cfg: JobConfig, source: str, runtime: Runtime, seed: int) -> Path:
    """Where a fine-tuned teacher is kept, keyed by every setting that changes it (the batch size is per
    process, so the number of processes is one of them) and its seed."""
    key = {
        "teacher": teacher_identity(cfg.teacher, source),
        "data": data_identity(cfg.data),
        "train_size": cfg.train_size,
        "data_seed": cfg.data_seed,
        "max_length": cfg.max_length,
        "epochs": cfg.teacher_epochs,
        "lr": cfg.teacher_learning_rate,
        "batch_size": cfg.batch_size,
        "warmup": cfg.warmup_ratio,
        "weight_decay": cfg.weight_decay,
        "clip": cfg.max_grad_norm,
        "seed": seed,
        "precision": runtime.precision,
        "processes": runtime.accelerator.num_processes,
        "group": cfg.group_by_length,
        "pad": cfg.pad_to_max_length,
        "optimizer_8bit": cfg.optimizer_8bit,
        # Passes change the dropout draws; without dropout only the rounding, so the budget can change freely.
        **({"passes": cfg.max_tokens_per_pass} if cfg.max_tokens_per_pass and cfg.teacher_dropout != 0 else {}),
        **({"frozen_words": True} if cfg.teacher_freeze_word_embeddings else {}),
        **({"dropout": cfg.teacher_dropout} if cfg.teacher_dropout is not None else {}),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cfg.results_dir) / ".teachers" / digest


def teacher_identity(name: str, source: str) -> str:
    if name == EMBEDDED_TEACHER or Path(source).is_dir():
        weights = sorted(Path(source).glob("*.safetensors")) or sorted(Path(source).glob("*.bin"))
        stamp = [(w.name, w.stat().st_size, int(w.stat().st_mtime)) for w in weights]
        return f"{name}:{stamp}"
    return name


def data_identity(data: str) -> str:
    """A data file by its content (a resumed run reads its own copy of the upload), a named source by name."""
    path = Path(data)
    return f"file:{hashlib.sha256(path.read_bytes()).hexdigest()}" if path.is_file() else data


def prepare_teacher(shared: Shared, run: Run, runtime: Runtime, already_classifier: bool, seed: int) -> nn.Module:
    """The fine-tuned teacher of `seed`: loaded as is, from the cache, or fine-tuned now and cached; evaluated
    and saved."""
    cfg = shared.cfg
    name = teacher_name(cfg, seed)
    history: list[dict] = []
    evaluated = None
    folder = None
    if already_classifier:
        runtime.emit("stage", name, f"teacher {cfg.teacher} already classifies MNLI labels: no fine-tuning")
        teacher = load_classifier(shared.source)
    else:
        folder = teacher_cache_dir(cfg, shared.source, runtime, seed)
        if (folder / "done").exists():
            runtime.emit("stage", name, f"reusing the fine-tuned teacher cached for these settings (seed {seed})")
            teacher = load_classifier(str(folder))
            history = read_json(folder / "history.json", [])
        else:
            teacher, history, evaluated = fine_tune(shared, run, runtime, folder, seed)
    teacher.to(runtime.device).eval()
    record_model(
        shared,
        run,
        runtime,
        teacher,
        name=name,
        role="teacher",
        strategy="teacher",
        layers=list(range(shared.n_teacher)),
        seed=seed,
        history=history,
        saved_from=folder,
        evaluated=evaluated,
    )
    return teacher


def fine_tune(
    shared: Shared, run: Run, runtime: Runtime, folder: Path, seed: int
) -> tuple[nn.Module, list[dict], tuple | None]:
    """Fine-tune the teacher on the job's training rows with `seed` (batch order, dropout, head) and cache it in
    `folder`; returns the model, its epoch history and its last evaluation."""
    cfg = shared.cfg
    name = teacher_name(cfg, seed)
    runtime.emit("stage", name, f"fine-tuning teacher {cfg.teacher} for {cfg.teacher_epochs} epoch(s), seed {seed}")
    validation = Validation(shared, runtime, cfg.teacher_epochs)
    set_seed(seed)  # the new classification head is drawn per teacher seed
    model = load_classifier(shared.source)
    with trained_with(model, freeze_words=cfg.teacher_freeze_word_embeddings, dropout=cfg.teacher_dropout):
        teacher, history = fit(
            model,
            shared.train_loader(shared.train, seed),
            cross_entropy_step,
            epochs=cfg.teacher_epochs,
            learning_rate=cfg.teacher_learning_rate,
            cfg=cfg,
            runtime=runtime,
            stage=name,
            seed=seed,
            after_epoch=validation,
            checkpoint=run.checkpoint(name) if cfg.checkpoints else None,
        )
    if runtime.is_main:
        save_pretrained_atomic(folder, teacher, shared.tokenizer)
        write_json(folder / "history.json", history)
        (folder / "done").touch()
    runtime.accelerator.wait_for_everyone()
    return teacher, history, validation.last


def teacher_outputs(shared: Shared, teacher: nn.Module, runtime: Runtime, run: Run, name: str) -> TeacherOutputs:
    """Run the teacher `name` once over the students' training rows; its students reuse the result every epoch."""
    cfg = shared.cfg
    need_hidden = cfg.weight_hidden > 0
    rows = shared.students
    runtime.emit("stage", "teacher-outputs", f"computing teacher outputs once for {len(rows)} training rows")
    model = teacher
    if cfg.teacher_8bit:
        model = load_classifier(str(run.model_dir(name)), eight_bit=True)
    loader = runtime.accelerator.prepare(make_loader(rows, shared.tokenizer.pad_token_id, EVAL_BATCH, train=False))
    hidden_file = None
    if need_hidden:
        size = len(rows) * (shared.n_teacher + 1) * teacher.config.hidden_size * 2
        if size > HIDDEN_IN_MEMORY_BYTES:
            hidden_file = run.path / "cache" / "teacher_hidden.npy"
            hidden_file.parent.mkdir(exist_ok=True)
    with cls_only_last_layer(model, cfg.cls_only_last_layer):
        logits, hidden = forward_all(
            model,
            loader,
            len(rows),
            runtime.precision,
            accelerator=runtime.accelerator,
            cls_hidden=need_hidden,
            hidden_file=hidden_file,
        )
    return TeacherOutputs(
        torch.from_numpy(logits).half(), torch.from_numpy(np.asarray(hidden)) if need_hidden else None
    )


def layer_importance_once(shared: Shared, teacher: nn.Module, runtime: Runtime, run: Run) -> Callable[[], list[float]]:
    """A lazy scorer for data-driven strategies: the teacher's accuracy drop when each layer is skipped."""
    scores: list[float] = []

    def score() -> list[float]:
        if scores:
            return scores
        runtime.emit("stage", "importance", "measuring each teacher layer's importance (accuracy drop when skipped)")
        train = shared.train
        probe = train.subset(list(range(min(IMPORTANCE_PROBE_ROWS, len(train)))))
        loader = make_loader(probe, shared.tokenizer.pad_token_id, EVAL_BATCH, train=False)

        def accuracy(model: nn.Module) -> float:
            with cls_only_last_layer(model, shared.cfg.cls_only_last_layer):
                logits, _ = forward_all(model, loader, len(probe), runtime.precision)
            return classification_metrics(logits, probe.labels)["accuracy"]

        full = accuracy(teacher)
        for i in range(shared.n_teacher):
            runtime.check_stop()
            scores.append(full - accuracy(build_student(teacher, [j for j in range(shared.n_teacher) if j != i])))
        if runtime.is_main:
            write_json(
                run.path / "layer_importance.json",
                {"probe_rows": len(probe), "teacher_accuracy": full, "accuracy_drop": scores},
            )
        return scores

    return score
