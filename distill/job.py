"""A whole job, end to end: data, fine-tuned teacher, teacher outputs, one student per strategy and seed, results.

The CLI (`python -m distill run`) and the app's Distill tab both call `run_job`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import broadcast_object_list, set_seed
from torch import nn
from transformers import PretrainedConfig

from .config import EMBEDDED_TEACHER, ConfigError, JobConfig, about
from .data import Encoded, check_data, encode, load_job_data, make_loader
from .errors import UserError, user_message
from .evaluation import (
    classification_metrics,
    evaluate,
    folder_size_mb,
    forward_all,
    latency_ms,
    model_inputs,
    probabilities,
)
from .losses import LossInputs, combined_loss, loss_weights
from .models import (
    build_student,
    copied_layers_match,
    freeze_word_embeddings,
    is_mnli_classifier,
    load_classifier,
    load_model_config,
    load_tokenizer,
    parameter_count,
    set_dropout,
)
from .progress import EventHandler, JobPaused, JobStopped, StopSignal, ignore
from .publish import write_model_card
from .results import RESUMABLE, Run, read_json, save_pretrained_atomic, write_json
from .search import Variant, setting, variants
from .strategies import RANDOM_INIT, StrategyContext, resolve_layers
from .training import ModelDiverged, Runtime, cross_entropy_step, fit

EVAL_BATCH = 64
HIDDEN_IN_MEMORY_BYTES = 2 * 2**30  # teacher [CLS] states above this size go to a file on disk
IMPORTANCE_PROBE_ROWS = 1000


@dataclass
class TeacherOutputs:
    """The fine-tuned teacher's outputs on every training row: exact to reuse, since it runs in eval mode."""

    logits: torch.Tensor  # (rows, labels), fp16
    hidden: torch.Tensor | None  # (rows, layers + 1, hidden) [CLS] vectors, fp16; None without a hidden loss


@dataclass
class Prepared:
    """What every student of a job shares."""

    cfg: JobConfig
    source: str
    tokenizer: object
    data: dict[str, Encoded]  # "train" (the teacher's), "students" (a subset of it) and the validation splits
    eval_loaders: dict
    n_teacher: int
    n_student: int


def run_job(
    cfg: JobConfig,
    on_event: EventHandler = ignore,
    stop: StopSignal | None = None,
    *,
    resume: Run | None = None,
    deadline: float | None = None,
) -> Run:
    """Run a job and return its run folder; the folder's status says completed, stopped, paused or failed.

    With `resume`, continue that run: its finished models are kept and skipped. With `deadline` (a
    time.monotonic() value), pause cleanly once it passes; a paused run is resumed the same way.
    """
    source, teacher_config, n_student = check_teacher_and_layers(cfg)
    with about("data"):  # what preflight's data check reads, read once here
        examples = load_job_data(cfg)
    runtime = Runtime.create(cfg.precision, on_event, stop, deadline)
    run = open_run_folder(cfg, runtime, resume)
    finished = {r["model"] for r in run.summary()}
    with run.heartbeat() if runtime.is_main else contextlib.nullcontext(), outcome_recorded(run, runtime):
        job = prepare(cfg, source, teacher_config.num_hidden_layers, n_student, examples, run, runtime)
        already_classifier = is_mnli_classifier(teacher_config)
        runtime.total = planned_steps(job, runtime, finished, already_classifier)
        if "teacher" in finished:
            runtime.emit("stage", "teacher", f"resuming run {run.name}: {len(finished)} finished model(s) kept")
            teacher = load_classifier(str(run.model_dir("teacher"))).to(runtime.device).eval()
        else:
            teacher = prepare_teacher(job, run, runtime, already_classifier)
        outputs = teacher_outputs(job, teacher, runtime, run) if cfg.cache_teacher_outputs else None
        importance = layer_importance_once(job, teacher, runtime, run)
        for variant in variants(cfg):
            layers = resolve_layers(variant.strategy, StrategyContext(job.n_teacher, n_student, importance))
            for seed in cfg.seeds:
                if student_name(variant, seed) not in finished:
                    distil_or_record_failure(job, run, runtime, teacher, outputs, variant, layers, seed)
        if runtime.is_main:
            runtime.deadline = None  # every model is saved: the closing timing is not cut into slices
            time_side_by_side(job, run, runtime)
        failed = [r["model"] for r in run.summary() if r.get("failed")]
        note = f"{len(failed)} model(s) failed and are left out: {', '.join(failed)}" if failed else ""
        if runtime.is_main:  # the other processes may finish first: the run is complete once the main one is
            run.set_status("completed", note)
        runtime.emit("stage", "done", f"run {run.name} completed" + (f"; {note}" if note else ""))
    return run


def open_run_folder(cfg: JobConfig, runtime: Runtime, resume: Run | None) -> Run:
    """The run being resumed, marked running again, or a new run folder (made by the main process, found by
    the others)."""
    if resume is not None:
        if runtime.is_main:
            resume.set_status("running", "resumed")
        return resume
    run = Run.create(cfg) if runtime.is_main else None
    run_path = broadcast_object_list([str(run.path) if run else None])[0]
    return run or Run(Path(run_path))


@contextlib.contextmanager
def outcome_recorded(run: Run, runtime: Runtime) -> Iterator[None]:
    """Record how the job in the block ends, when it does not complete: paused after a time slice, stopped by
    the user, or failed with one line for the user (the traceback goes to the run's errors.log)."""
    try:
        yield
    except JobPaused:
        if runtime.is_main:
            run.set_status("paused", f"paused after its time slice; resume with: python -m distill resume {run.name}")
        runtime.emit("stage", "paused", f"run {run.name} paused; finished models are kept")
    except (JobStopped, KeyboardInterrupt) as err:
        if runtime.is_main:
            run.set_status("stopped", "stopped by the user; finished models are kept")
        runtime.emit("stage", "stopped", f"run {run.name} stopped; finished models are kept")
        if isinstance(err, KeyboardInterrupt):
            raise
    except BaseException as err:
        message = user_message(err)
        if isinstance(err, OSError) and err.errno:
            message = f"cannot write results: {err.strerror}"
        run.log_failure(err)
        with contextlib.suppress(OSError):  # a full disk: the status then reads "interrupted" once we exit
            run.set_status("failed", message)
        if isinstance(err, OSError):
            raise UserError(message) from err
        raise


def prepare(
    cfg: JobConfig, source: str, n_teacher: int, n_student: int, examples: dict, run: Run, runtime: Runtime
) -> Prepared:
    """What every model of the job shares: the data tokenised once, the students' rows, the validation loaders."""
    runtime.emit(
        "stage",
        "data",
        f"run {run.name}: tokenising {', '.join(f'{k} {len(v)}' for k, v in examples.items())}",
        run=run.name,
    )
    tokenizer = load_tokenizer(source)
    data = {name: encode(ex, tokenizer, cfg.max_length) for name, ex in examples.items()}
    if runtime.is_main:
        write_json(run.path / "labels.json", {k: v.labels for k, v in data.items() if k != "train"})
    eval_loaders = {
        name: runtime.accelerator.prepare(make_loader(enc, tokenizer.pad_token_id, EVAL_BATCH, train=False))
        for name, enc in data.items()
        if name != "train"
    }
    data["students"] = data["train"].subset(student_rows(len(data["train"]), cfg))
    return Prepared(cfg, source, tokenizer, data, eval_loaders, n_teacher, n_student)


def planned_steps(job: Prepared, runtime: Runtime, finished: set[str], already_classifier: bool) -> int:
    """Training steps left in the job: the students not yet finished, and the teacher's unless it is cached."""
    cfg = job.cfg
    students = sum(student_name(v, seed) not in finished for v in variants(cfg) for seed in cfg.seeds)
    total = students * cfg.epochs * runtime.steps_per_epoch(len(job.data["students"]), cfg.batch_size)
    cached = (
        already_classifier or "teacher" in finished or (teacher_cache_dir(cfg, job.source, runtime) / "done").exists()
    )
    if not cached:
        total += cfg.teacher_epochs * runtime.steps_per_epoch(len(job.data["train"]), cfg.batch_size)
    return total


def resume_job(
    run: Run, on_event: EventHandler = ignore, stop: StopSignal | None = None, deadline: float | None = None
) -> Run:
    """Continue a stopped, paused, interrupted or failed run with its own settings, keeping its finished models."""
    check_resumable(run)
    return run_job(run.job_config(), on_event, stop, resume=run, deadline=deadline)


def check_resumable(run: Run) -> None:
    """Refuse a run that is damaged, running or completed, with the reason."""
    run.check()
    state = run.status()["state"]
    if state not in RESUMABLE:
        raise ConfigError(f"run {run.name} is {state}; only {', '.join(RESUMABLE)} runs can be resumed")


def preflight(cfg: JobConfig) -> None:
    """Check what can be known before a job runs: its settings, its teacher (its config is read, no weights),
    its layer choices and its data.

    The app calls it before a job joins the training queue, so a job that cannot work never waits there.
    """
    check_teacher_and_layers(cfg)
    with about("data"):
        check_data(cfg)


def check_teacher_and_layers(cfg: JobConfig) -> tuple[str, PretrainedConfig, int]:
    """The settings, the teacher's config and the layer choices checked; returns the teacher's source and
    config and the student depth."""
    cfg.validated()
    with about("teacher"):
        source, teacher_config = load_model_config(cfg.teacher)
        is_mnli_classifier(teacher_config)  # three labels in another order are refused here
    n_teacher = teacher_config.num_hidden_layers
    n_student = cfg.student_layers or max(1, n_teacher // 2)
    with about("strategies"):
        check_strategies(cfg.strategies, n_teacher, n_student)
    return source, teacher_config, n_student


def student_rows(n_train: int, cfg: JobConfig) -> list[int]:
    """The training rows the students distil on: all, or a fixed random subset (drawn with the data seed)."""
    size = cfg.student_train_size
    if not size or size >= n_train:
        return list(range(n_train))
    return sorted(np.random.default_rng(cfg.data_seed).choice(n_train, size, replace=False).tolist())


def student_name(variant: Variant, seed: int) -> str:
    return f"{variant.label}-seed{seed}"


def check_strategies(specs: list[str], n_teacher: int, n_student: int) -> None:
    """Reject unknown strategies and bad layer lists before any work starts."""

    def placeholder() -> list[float]:
        return [0.0] * n_teacher  # the data-driven scores are not known yet; only the shape is checked here

    for spec in specs:
        resolve_layers(spec, StrategyContext(n_teacher, n_student, placeholder))


def teacher_cache_dir(cfg: JobConfig, source: str, runtime: Runtime) -> Path:
    """Where a fine-tuned teacher is kept, keyed by every setting that changes it (the batch size is per
    process, so the number of processes is one of them)."""
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
        "seed": cfg.seeds[0],
        "precision": runtime.precision,
        "processes": runtime.accelerator.num_processes,
        "group": cfg.group_by_length,
        "pad": cfg.pad_to_max_length,
        "optimizer_8bit": cfg.optimizer_8bit,
        **({"passes": cfg.max_tokens_per_pass} if cfg.max_tokens_per_pass else {}),  # dropout draws differ
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


def prepare_teacher(job: Prepared, run: Run, runtime: Runtime, already_classifier: bool) -> nn.Module:
    """The fine-tuned teacher: loaded as is, from the cache, or fine-tuned now and cached; evaluated and saved."""
    cfg = job.cfg
    history: list[dict] = []
    evaluated = None
    if already_classifier:
        runtime.emit("stage", "teacher", f"teacher {cfg.teacher} already classifies MNLI labels: no fine-tuning")
        folder = None
        teacher = load_classifier(job.source)
    else:
        folder = teacher_cache_dir(cfg, job.source, runtime)
        if (folder / "done").exists():
            runtime.emit("stage", "teacher", "reusing the fine-tuned teacher cached for these settings")
            teacher = load_classifier(str(folder))
            history = read_json(folder / "history.json", [])
        else:
            runtime.emit("stage", "teacher", f"fine-tuning teacher {cfg.teacher} for {cfg.teacher_epochs} epoch(s)")
            teacher = load_classifier(job.source)
            validation = Validation(job, runtime, cfg.teacher_epochs)
            loader = make_loader(
                job.data["train"],
                job.tokenizer.pad_token_id,
                cfg.batch_size,
                cfg.seeds[0],
                train=True,
                group=cfg.group_by_length,
                pad_to=_pad_to(cfg),
            )
            teacher, history = fit(
                teacher,
                loader,
                cross_entropy_step,
                epochs=cfg.teacher_epochs,
                learning_rate=cfg.teacher_learning_rate,
                cfg=cfg,
                runtime=runtime,
                stage="teacher",
                seed=cfg.seeds[0],
                after_epoch=validation,
                checkpoint=run.checkpoint("teacher") if cfg.checkpoints else None,
            )
            evaluated = validation.last
            if runtime.is_main:
                save_pretrained_atomic(folder, teacher, job.tokenizer)
                write_json(folder / "history.json", history)
                (folder / "done").touch()
            runtime.accelerator.wait_for_everyone()
    teacher.to(runtime.device).eval()
    record_model(
        job,
        run,
        runtime,
        teacher,
        name="teacher",
        role="teacher",
        strategy="teacher",
        layers=list(range(job.n_teacher)),
        seed=cfg.seeds[0],
        history=history,
        saved_from=folder,
        evaluated=evaluated,
    )
    return teacher


def _pad_to(cfg: JobConfig) -> int | None:
    return cfg.max_length if cfg.pad_to_max_length else None


class Validation:
    """An after-epoch hook: loss and accuracy on every validation split, prefixed by the split's name.

    It measures before training (epoch 0), after the last epoch and, with `eval_every_epoch`, after every other;
    it keeps the last epoch's evaluation, so the finished model is not evaluated a second time.
    """

    def __init__(self, job: Prepared, runtime: Runtime, epochs: int):
        self.job, self.runtime, self.epochs = job, runtime, epochs
        self.last: tuple[dict, dict] | None = None

    def __call__(self, model: nn.Module, epoch: int) -> dict:
        job, runtime = self.job, self.runtime
        if 0 < epoch < self.epochs and not job.cfg.eval_every_epoch:
            return {}
        self.last = evaluate(model, job.eval_loaders, job.data, runtime.precision, runtime.accelerator)
        return {f"{split}_{k}": v for split, m in self.last[0].items() for k, v in m.items()}


def teacher_outputs(job: Prepared, teacher: nn.Module, runtime: Runtime, run: Run) -> TeacherOutputs:
    """Run the teacher once over the students' training rows; every student, epoch and seed reuses the result."""
    cfg = job.cfg
    need_hidden = cfg.weight_hidden > 0
    rows = job.data["students"]
    runtime.emit("stage", "teacher-outputs", f"computing teacher outputs once for {len(rows)} training rows")
    model = teacher
    if cfg.teacher_8bit:
        folder = run.model_dir("teacher")
        model = load_classifier(str(folder), eight_bit=True)
    loader = runtime.accelerator.prepare(make_loader(rows, job.tokenizer.pad_token_id, EVAL_BATCH, train=False))
    hidden_file = None
    if need_hidden:
        size = len(rows) * (job.n_teacher + 1) * teacher.config.hidden_size * 2
        if size > HIDDEN_IN_MEMORY_BYTES:
            hidden_file = run.path / "cache" / "teacher_hidden.npy"
            hidden_file.parent.mkdir(exist_ok=True)
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


def layer_importance_once(job: Prepared, teacher: nn.Module, runtime: Runtime, run: Run):
    """A lazy scorer for data-driven strategies: the teacher's accuracy drop when each layer is skipped."""
    scores: list[float] = []

    def score() -> list[float]:
        if scores:
            return scores
        runtime.emit("stage", "importance", "measuring each teacher layer's importance (accuracy drop when skipped)")
        train = job.data["train"]
        probe = train.subset(list(range(min(IMPORTANCE_PROBE_ROWS, len(train)))))
        loader = make_loader(probe, job.tokenizer.pad_token_id, EVAL_BATCH, train=False)

        def accuracy(model: nn.Module) -> float:
            logits, _ = forward_all(model, loader, len(probe), runtime.precision)
            return classification_metrics(logits, probe.labels)["accuracy"]

        full = accuracy(teacher)
        for i in range(job.n_teacher):
            runtime.check_stop()
            scores.append(full - accuracy(build_student(teacher, [j for j in range(job.n_teacher) if j != i])))
        if runtime.is_main:
            write_json(
                run.path / "layer_importance.json",
                {"probe_rows": len(probe), "teacher_accuracy": full, "accuracy_drop": scores},
            )
        return scores

    return score


def distillation_step(job: Prepared, teacher: nn.Module, outputs: TeacherOutputs | None, layers: list[int]):
    """The per-batch loss of a student: the job's weighted CE, KL, cosine and optional hidden-state terms."""
    cfg = job.cfg
    weights = loss_weights(cfg)
    need_hidden = cfg.weight_hidden > 0
    source_states = [i + 1 for i in layers]  # hidden_states[0] is the embeddings; layer i's output is [i + 1]

    def step(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(**model_inputs(batch), output_hidden_states=need_hidden)
        if outputs is not None:
            rows = batch["rows"].cpu()
            teacher_logits = outputs.logits[rows].to(out.logits.device)
            teacher_hidden = outputs.hidden[rows][:, source_states].to(out.logits.device) if need_hidden else None
        else:  # the original's way: a teacher forward pass on every step
            with torch.no_grad():
                t = teacher(**model_inputs(batch), output_hidden_states=need_hidden)
            teacher_logits = t.logits
            teacher_hidden = torch.stack([t.hidden_states[i][:, 0] for i in source_states], 1) if need_hidden else None
        student_hidden = torch.stack([h[:, 0] for h in out.hidden_states[1:]], 1) if need_hidden else None
        inputs = LossInputs(
            out.logits, batch["labels"], teacher_logits, cfg.temperature, student_hidden, teacher_hidden
        )
        return combined_loss(inputs, weights)

    return step


def distil_student(
    job: Prepared,
    run: Run,
    runtime: Runtime,
    teacher: nn.Module,
    outputs: TeacherOutputs | None,
    variant: Variant,
    layers: list[int],
    seed: int,
) -> None:
    job = dataclasses.replace(job, cfg=variant.cfg)  # a search variant trains with its own settings
    cfg = job.cfg
    name = student_name(variant, seed)
    random_init = variant.strategy in RANDOM_INIT
    set_seed(seed)  # the random control's layers are drawn per seed
    student = build_student(teacher, layers, random_init=random_init)
    if not random_init and not copied_layers_match(student, teacher, layers):
        raise RuntimeError(f"student {name} does not start from teacher layers {layers}")
    if cfg.freeze_word_embeddings:
        freeze_word_embeddings(student)
    if cfg.dropout is not None:
        set_dropout(student, cfg.dropout)
    origin = f"{len(layers)} randomly initialised layers" if random_init else f"teacher layers {layers}"
    runtime.emit("stage", name, f"distilling {name}: {len(layers)} layers from {origin}")
    loader = make_loader(
        job.data["students"],
        job.tokenizer.pad_token_id,
        cfg.batch_size,
        seed,
        train=True,
        group=cfg.group_by_length,
        pad_to=_pad_to(cfg),
    )
    started = time.perf_counter()
    validation = Validation(job, runtime, cfg.epochs)
    student, history = fit(
        student,
        loader,
        distillation_step(job, teacher, outputs, layers),
        epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        cfg=cfg,
        runtime=runtime,
        stage=name,
        seed=seed,
        after_epoch=validation,
        checkpoint=run.checkpoint(name) if cfg.checkpoints else None,
        # Epoch 0: what the layer choice alone gives, before any training. A copy of teacher layers is the same
        # model for every seed, so it is measured once; a random control differs per seed.
        measure_start=random_init or seed == job.cfg.seeds[0],
    )
    record_model(
        job,
        run,
        runtime,
        student,
        name=name,
        role="student",
        strategy=variant.label,
        layers=[] if random_init else layers,
        seed=seed,
        history=history,
        train_seconds=time.perf_counter() - started,
        evaluated=validation.last,
    )


def distil_or_record_failure(
    job: Prepared,
    run: Run,
    runtime: Runtime,
    teacher: nn.Module,
    outputs: TeacherOutputs | None,
    variant: Variant,
    layers: list[int],
    seed: int,
) -> None:
    """Distil one student; one that diverges is recorded as failed, with the reason, and the job goes on."""
    steps = variant.cfg.epochs * runtime.steps_per_epoch(len(job.data["students"]), variant.cfg.batch_size)
    start = runtime.done
    try:
        distil_student(job, run, runtime, teacher, outputs, variant, layers, seed)
    except ModelDiverged as err:
        run.log_failure(err)
        runtime.done = start + steps  # the progress bar still ends at its total
        name = student_name(variant, seed)
        row = {"model": name, "role": "student", "strategy": variant.label, "layers": layers, "seed": seed}
        row.update(setting(variant.cfg), failed=str(err))
        if runtime.is_main:
            run.write_summary([r for r in run.summary() if r["model"] != name] + [row])
            run.checkpoint(name).unlink(missing_ok=True)
        runtime.emit("model", name, f"{name} failed: {err}", **row)


def record_model(
    job: Prepared,
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
    saved_from: Path | None = None,
    train_seconds: float | None = None,
    evaluated: tuple[dict, dict] | None = None,
) -> None:
    """Evaluate a finished model (unless its last epoch did), time it, save it, and record its results."""
    metrics, logits = evaluated or evaluate(model, job.eval_loaders, job.data, runtime.precision, runtime.accelerator)
    broken = [f"{split} {key}" for split, m in metrics.items() for key, value in m.items() if not math.isfinite(value)]
    if broken:
        raise ModelDiverged(f"{name} diverged: its {broken[0]} is not a finite number; try a lower learning rate")
    if not runtime.is_main:
        return
    folder = run.link_model(name, saved_from) if saved_from else run.save_model(name, model, job.tokenizer)
    first_split = next(iter(job.eval_loaders))
    latency = latency_ms(
        model, job.data[first_split], job.tokenizer.pad_token_id, runtime.precision, job.cfg.latency_examples
    )
    identity = {"model": name, "role": role, "strategy": strategy, "layers": layers, "seed": seed}
    run.add_metrics([{**identity, **row} for row in history])
    run.add_predictions(name, {split: values.argmax(axis=1).tolist() for split, values in logits.items()})
    run.add_probabilities(name, {split: probabilities(values) for split, values in logits.items()})
    row = {
        **identity,
        **(setting(job.cfg) if role == "student" else {}),
        "train_loss": history[-1]["train_loss"] if history else None,
        "loss": metrics[first_split]["loss"],
        "accuracy": metrics[first_split]["accuracy"],
        **{f"{split}_{k}": v for split, m in metrics.items() for k, v in m.items()},
        "params": parameter_count(model),
        "size_mb": folder_size_mb(folder),
        **latency,
        "train_seconds": train_seconds,
        "eval_split": first_split,
        "eval_rows": len(job.data[first_split]),
    }
    run.write_summary([r for r in run.summary() if r["model"] != name] + [row])
    write_model_card(run, row)
    run.checkpoint(name).unlink(missing_ok=True)  # the model is saved: its training checkpoint is not needed
    runtime.emit(
        "model",
        name,
        f"{name}: {first_split} accuracy {row['accuracy']:.4f}, {latency['latency_b32_ms']:.2f} ms/example at batch 32",
        **row,
    )


def time_side_by_side(job: Prepared, run: Run, runtime: Runtime, rounds: int = 3) -> None:
    """Re-time every saved model in interleaved rounds and keep each one's fastest round.

    Timing models one after another, minutes apart, lets a busy moment of the machine land on one model only;
    interleaving and taking the minimum makes the speed-up column a fair side-by-side ratio.
    """
    runtime.emit("stage", "latency", "timing all models side by side")
    rows = run.summary()
    split = next(iter(job.eval_loaders))
    best: dict[str, dict[str, float]] = {}
    names = [r["model"] for r in rows if not r.get("failed")]
    for _ in range(rounds):
        for name in names:  # one model in memory at a time: twelve students at once would double the job's peak
            runtime.check_stop()
            model = load_classifier(str(run.model_dir(name))).to(runtime.device)
            timed = latency_ms(
                model, job.data[split], job.tokenizer.pad_token_id, runtime.precision, job.cfg.latency_examples
            )
            best[name] = {k: min(v, best.get(name, timed)[k]) for k, v in timed.items()}
    run.write_summary([{**r, **best.get(r["model"], {})} for r in rows])
