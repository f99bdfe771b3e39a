"""A whole job, end to end: data, fine-tuned teacher, teacher outputs, one student per strategy and seed, results.

The CLI (`python -m distill run`) and the app's Distill tab both call `run_job`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate.utils import broadcast_object_list, set_seed
from torch import nn

from .config import ConfigError, JobConfig
from .errors import UserError, user_message
from .evaluation import TimingCut, latency_ms, model_inputs
from .lease import Lease, RunBusy, StopEither, holder_line, is_alive, read_lease
from .losses import LossInputs, combined_loss, loss_weights
from .models import (
    build_student,
    copied_layers_match,
    for_training,
    load_classifier,
    saved_architecture,
)
from .plan import JobPlan, plan_job
from .progress import EventHandler, JobPaused, JobStopped, SavedProgress, StopSignal, ignore
from .publish import write_model_cards
from .results import RESUMABLE, Run
from .search import Variant, searched_settings, variants
from .shared import Shared, Validation, prepare, record_model
from .strategies import PRETRAINED_LAYERS, RANDOM_INIT, StrategyContext, resolve_layers
from .summary import summary_row
from .teacher import (
    Teacher,
    TeacherOutputs,
    layer_importance_once,
    prepare_teacher,
    teacher_cache_dir,
    teacher_name,
    teacher_outputs,
)
from .training import SEEDED, ModelDiverged, Runtime, fit, side_by_side, students_at_once

LATENCY_NOT_TIMED = (
    "latency not timed side by side (the job's time ran out or it was stopped first): each model's figure is "
    "its own timing, taken as it was saved"
)


def run_job(
    job: JobConfig | JobPlan,
    on_event: EventHandler = ignore,
    stop: StopSignal | None = None,
    *,
    resume: Run | None = None,
    deadline: float | None = None,
) -> Run:
    """Run a job (its plan, or settings it plans first: `plan.plan_job`) and return its run folder; the folder's
    status says completed, stopped, paused or failed.

    With `resume`, continue that run: its finished models are kept and skipped. With `deadline` (a
    time.monotonic() value), pause cleanly once it passes; a paused run is resumed the same way.
    """
    plan = job if isinstance(job, JobPlan) else plan_job(job)
    cfg = plan.cfg
    runtime = Runtime.create(cfg.precision, on_event, stop, deadline)
    run = open_run_folder(cfg, runtime, resume)
    finished = {r["model"] for r in run.summary()}
    with (
        held_by_this_job(run, runtime, resumed=resume is not None),
        progress_saved(run, runtime),
        model_cards_written(run, runtime),
        outcome_recorded(run, runtime),
    ):
        shared = prepare(plan, run, runtime)
        already_classifier = plan.teacher.already_classifier
        to_fine_tune = teachers_to_fine_tune(shared, runtime, finished, already_classifier)
        runtime.steps.total = planned_steps(shared, runtime, finished, to_fine_tune)
        if finished:
            runtime.emit("stage", "teacher", f"resuming run {run.name}: {len(finished)} finished model(s) kept")
        teachers = {
            seed: ready_teacher(shared, run, runtime, seed, finished, already_classifier, seed in to_fine_tune)
            for seed in cfg.teachers
        }
        importance = layer_importance_once(shared, teachers[cfg.teachers[0]].model, runtime, run)
        context = StrategyContext(shared.n_teacher, shared.n_student, importance)
        students = [
            functools.partial(
                distil_or_record_failure,
                shared,
                run,
                runtime,
                teacher=teachers[cfg.teacher_of(seed)],
                variant=variant,
                layers=layers,
                seed=seed,
            )
            for variant, layers in ((v, resolve_layers(v.strategy, context)) for v in variants(cfg))
            for seed in cfg.seeds
            if student_name(variant, seed) not in finished
        ]
        side_by_side(students, students_at_once(cfg, runtime), runtime)
        if runtime.is_main:
            keep_planned_order(run, cfg)
        timed = time_side_by_side(shared, run, runtime) if runtime.is_main else True
        failed = [r["model"] for r in run.summary() if r.get("failed")]
        notes = [f"{len(failed)} model(s) failed and are left out: {', '.join(failed)}"] if failed else []
        note = "; ".join(notes + ([] if timed else [LATENCY_NOT_TIMED]))
        # Said before the status flips: a watcher of the folder stops at "completed" and must find this line saved.
        runtime.emit("stage", "done", f"run {run.name} completed" + (f"; {note}" if note else ""))
        if runtime.is_main:  # the other processes may finish first: the run is complete once the main one is
            run.set_status("completed", note)
    return run


def keep_planned_order(run: Run, cfg: JobConfig) -> None:
    """The summary's rows in the job's order, teachers first, then each strategy's seeds in turn: students trained
    side by side are recorded as they finish."""
    planned = [student_name(variant, seed) for variant in variants(cfg) for seed in cfg.seeds]
    rows = run.summary()
    ordered = sorted(rows, key=lambda r: planned.index(r["model"]) if r["model"] in planned else -1)
    if ordered != rows:
        run.write_summary(ordered)


def open_run_folder(cfg: JobConfig, runtime: Runtime, resume: Run | None) -> Run:
    """The run being resumed, or a new run folder (made by the main process, found by the others)."""
    if resume is not None:
        return resume
    run = Run.create(cfg) if runtime.is_main else None
    run_path = broadcast_object_list([str(run.path) if run else None])[0]
    return run or Run(Path(run_path))


@contextlib.contextmanager
def held_by_this_job(run: Run, runtime: Runtime, resumed: bool) -> Iterator[None]:
    """The run's lease (`lease.py`), held by the main process while the job writes the run: a run that another
    live process writes is refused (RunBusy) before anything is written. A resumed run is marked running once
    held, unless another process completed it meanwhile. Another process's stop request stops the job."""
    if not runtime.is_main:
        yield
        return
    taken = time.time()
    with Lease(run.path) as lease:
        runtime.stop = StopEither(runtime.stop, lease)
        if resumed:
            if run.status()["state"] == "completed":
                raise ConfigError(f"run {run.name} is completed; only {', '.join(RESUMABLE)} runs can be resumed")
            run.remove_leftover_temporaries(older_than=taken)
            run.set_status("running", "resumed")
        yield


@contextlib.contextmanager
def progress_saved(run: Run, runtime: Runtime) -> Iterator[None]:
    """The job's progress (steps, log, loss curve, finished models) in the run's progress.json as it goes, so any
    process that can read the run folder (the app after a restart, a Space reading a Jobs run's bucket) can
    watch it; saved once more as the job ends."""
    if not runtime.is_main:
        yield
        return
    saved = SavedProgress(runtime.on_event, run.save_progress, run.name)
    runtime.on_event = saved
    try:
        yield
    finally:
        runtime.on_event = saved.forward
        with contextlib.suppress(OSError):  # a full disk must not hide how the job ended
            saved.flush()


@contextlib.contextmanager
def model_cards_written(run: Run, runtime: Runtime) -> Iterator[None]:
    """Each saved model's card (`publish.write_model_cards`), written as the job ends, however it ends: the run's
    settings and data are read back for them once, after training rather than between two models."""
    try:
        yield
    finally:
        if runtime.is_main:
            write_model_cards(run)


@contextlib.contextmanager
def outcome_recorded(run: Run, runtime: Runtime) -> Iterator[None]:
    """Record how the job in the block ends, when it does not complete: paused after a time slice, stopped by
    the user, or failed with one line for the user (the traceback goes to the run's errors.log)."""
    try:
        yield
    except JobPaused as err:
        if runtime.is_main:
            run.set_status("paused", f"{err}; resume with: python -m distill resume {run.name}")
        runtime.emit("stage", "paused", f"run {run.name} paused; finished models are kept")
    except (JobStopped, KeyboardInterrupt) as err:
        if runtime.is_main:
            reason = str(err) if isinstance(err, JobStopped) and str(err) else "stopped by the user"
            run.set_status("stopped", f"{reason}; finished models are kept")
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


def ready_teacher(
    shared: Shared,
    run: Run,
    runtime: Runtime,
    seed: int,
    finished: set[str],
    already_classifier: bool,
    planned: bool,
) -> Teacher:
    """The teacher of `seed`, ready to teach: kept from the run being resumed or prepared now (`prepare_teacher`),
    with its outputs on the students' rows computed once. `planned`: its fine-tuning is counted in the job's steps."""
    name = teacher_name(shared.cfg, seed)
    if name in finished:
        model = load_classifier(str(run.model_dir(name))).to(runtime.device).eval()
    else:  # another job may have cached this teacher since it was planned: its planned steps count as done
        with runtime.steps.stage(teacher_steps(shared, runtime) if planned else 0):
            model = prepare_teacher(shared, run, runtime, already_classifier, seed)
    outputs = teacher_outputs(shared, model, runtime, run, name) if shared.cfg.cache_teacher_outputs else None
    return Teacher(name, model, outputs)


def teachers_to_fine_tune(shared: Shared, runtime: Runtime, finished: set[str], already_classifier: bool) -> set[int]:
    """The teacher seeds this job will fine-tune, as things stand: not kept from the resumed run, not cached."""
    if already_classifier:
        return set()
    return {
        seed
        for seed in shared.cfg.teachers
        if teacher_name(shared.cfg, seed) not in finished
        and not (teacher_cache_dir(shared.cfg, shared.source, runtime, seed) / "done").exists()
    }


def teacher_steps(shared: Shared, runtime: Runtime) -> int:
    return shared.cfg.teacher_epochs * runtime.steps_per_epoch(len(shared.train), shared.cfg.batch_size)


def planned_steps(shared: Shared, runtime: Runtime, finished: set[str], to_fine_tune: set[int]) -> int:
    """Training steps left in the job: the students not yet finished, and the teachers to fine-tune."""
    cfg = shared.cfg
    students = sum(student_name(v, seed) not in finished for v in variants(cfg) for seed in cfg.seeds)
    total = students * cfg.epochs * runtime.steps_per_epoch(len(shared.students), cfg.batch_size)
    return total + len(to_fine_tune) * teacher_steps(shared, runtime)


def resume_job(
    run: Run,
    on_event: EventHandler = ignore,
    stop: StopSignal | None = None,
    deadline: float | None = None,
    plan: JobPlan | None = None,
) -> Run:
    """Continue a stopped, paused, interrupted or failed run with its own settings (`plan`: them, planned
    already), keeping its finished models."""
    check_resumable(run)
    return run_job(plan or run.job_config(), on_event, stop, resume=run, deadline=deadline)


def check_resumable(run: Run) -> None:
    """Refuse a run that is damaged, running or completed, with the reason."""
    run.check()
    state = run.status()["state"]
    if state == "running":
        lease = read_lease(run.path)
        by = f" by {holder_line(lease)}" if is_alive(lease) else ""
        raise RunBusy(f"run {run.name} is being trained{by}; watch it instead, or stop it first")
    if state not in RESUMABLE:
        raise ConfigError(f"run {run.name} is {state}; only {', '.join(RESUMABLE)} runs can be resumed")


def student_name(variant: Variant, seed: int) -> str:
    return f"{variant.label}-seed{seed}"


def distillation_step(cfg: JobConfig, teacher: nn.Module | None, outputs: TeacherOutputs | None, layers: list[int]):
    """The per-batch loss of a student: the job's weighted CE, KL, cosine and optional hidden-state terms, against
    the teacher's cached `outputs` or, without them, a teacher forward pass on every step."""
    weights = loss_weights(cfg)
    need_hidden = cfg.weight_hidden > 0
    source_states = [i + 1 for i in layers]  # hidden_states[0] is the embeddings; layer i's output is [i + 1]

    def step(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(**model_inputs(batch), output_hidden_states=need_hidden)
        if outputs is not None:
            rows = batch["rows"].cpu()
            teacher_logits = outputs.logits[rows].to(out.logits.device)
            teacher_hidden = outputs.hidden[rows][:, source_states].to(out.logits.device) if need_hidden else None
        else:  # as the experiment this project grew from did: a teacher forward pass on every step
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
    shared: Shared, run: Run, runtime: Runtime, *, teacher: Teacher, variant: Variant, layers: list[int], seed: int
) -> None:
    """Build one student from its teacher layers (or, for a control, random or pre-trained ones), distil it and
    record it."""
    shared = dataclasses.replace(shared, cfg=variant.cfg)  # a search variant or a control trains with its own settings
    cfg = shared.cfg
    name = student_name(variant, seed)
    random_init = variant.strategy in RANDOM_INIT
    with SEEDED:  # the random control's layers are drawn per seed, whatever a student beside it does
        source = load_classifier(shared.source) if variant.strategy in PRETRAINED_LAYERS else None  # before the seed
        set_seed(seed)
        student = build_student(teacher.model, layers, random_init=random_init, layer_source=source)
    if not random_init and not copied_layers_match(student, source or teacher.model, layers):
        raise RuntimeError(f"student {name} does not start from layers {layers}")
    for_training(student, freeze_words=cfg.freeze_word_embeddings, dropout=cfg.dropout)
    if random_init:
        origin = "randomly initialised layers"
    elif source is not None:
        origin = f"pre-trained encoder layers {layers}"
    else:
        origin = f"teacher layers {layers}"
    runtime.emit("stage", name, f"distilling {name}: {len(layers)} layers from {origin}, taught by {teacher.name}")
    loader = shared.train_loader(shared.students, seed)
    started = time.perf_counter()
    validation = Validation(shared, runtime, cfg.epochs)
    student, history = fit(
        student,
        loader,
        distillation_step(cfg, teacher.model, teacher.outputs, layers),
        epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        cfg=cfg,
        runtime=runtime,
        stage=name,
        seed=seed,
        max_tokens=cfg.pass_tokens(shared.n_teacher, len(layers)),
        after_epoch=validation,
        checkpoint=run.checkpoint(name) if cfg.checkpoints else None,
        # Epoch 0: what the layer choice alone gives, before any training. A copy of layers is the same model for
        # every seed of one teacher, so it is measured once per teacher; a random control differs per seed.
        measure_start=random_init or cfg.seeds.index(seed) < len(cfg.teachers),
    )
    record_model(
        shared,
        run,
        runtime,
        student,
        name=name,
        role="student",
        strategy=variant.label,
        layers=[] if random_init else layers,
        seed=seed,
        teacher=teacher.name,
        history=history,
        train_seconds=time.perf_counter() - started,
        evaluated=validation.last,
    )


def distil_or_record_failure(
    shared: Shared, run: Run, runtime: Runtime, *, teacher: Teacher, variant: Variant, layers: list[int], seed: int
) -> None:
    """Distil one student; one that diverges is recorded as failed, with the reason, and the job goes on."""
    steps = variant.cfg.epochs * runtime.steps_per_epoch(len(shared.students), variant.cfg.batch_size)
    with runtime.steps.stage(steps):  # a student that diverged still brings the job's progress to its total
        try:
            distil_student(shared, run, runtime, teacher=teacher, variant=variant, layers=layers, seed=seed)
        except ModelDiverged as err:
            run.log_failure(err)
            name = student_name(variant, seed)
            row = summary_row(
                model=name,
                role="student",
                strategy=variant.label,
                layers=layers,
                seed=seed,
                splits={},
                eval_rows=None,
                teacher=teacher.name,
                **searched_settings(variant.cfg),
                failed=str(err),
            )
            if runtime.is_main:
                run.record_row(row)
            runtime.emit("model", name, f"{name} failed: {err}", **row)


def time_side_by_side(shared: Shared, run: Run, runtime: Runtime, rounds: int = 3) -> bool:
    """Re-time one saved model of each architecture in interleaved rounds and keep each one's fastest round.

    Timing models one after another, minutes apart, lets a busy moment of the machine land on one model only;
    interleaving and taking the minimum makes the speed-up column a fair side-by-side ratio. Models of one
    architecture run the same operations, so they share its figure (students of one depth share one).

    Every model is saved by now, so the job's deadline or a stop ends the timing, not the job: the complete
    rounds so far count; with none, each model keeps the figure timed as it was saved (a round cut short is
    no figure). Returns whether latency was timed side by side.
    """
    runtime.emit("stage", "latency", "timing every model architecture side by side")
    rows = run.summary()
    split = shared.main_split
    names = [r["model"] for r in rows if not r.get("failed")]
    shape_of = {name: saved_architecture(run.model_dir(name)) for name in names}
    members: dict[str, str] = {}  # architecture: the model timed for it
    for name in names:
        members.setdefault(shape_of[name], name)
    best: dict[str, dict[str, float]] = {}
    kept: dict[str, dict[str, float]] = {}  # the best of the complete rounds
    try:
        for _ in range(rounds):
            for shape, name in members.items():  # one model in memory at a time
                if time_is_up(runtime):
                    raise TimingCut
                model = load_classifier(str(run.model_dir(name))).to(runtime.device)
                timed = latency_ms(
                    model,
                    shared.validation[split],
                    shared.tokenizer.pad_token_id,
                    runtime.precision,
                    shared.cfg.latency_examples,
                    lambda: time_is_up(runtime),
                )
                best[shape] = {k: min(v, best.get(shape, timed)[k]) for k, v in timed.items()}
            kept = dict(best)
    except TimingCut:
        runtime.emit("log", "latency", "latency timed in fewer rounds: time ran out" if kept else LATENCY_NOT_TIMED)
    if kept:
        run.write_summary([{**r, **kept[shape_of[r["model"]]]} if r["model"] in shape_of else r for r in rows])
    return bool(kept) or not members


def time_is_up(runtime: Runtime) -> bool:
    """Whether the job's deadline has passed or a stop (or pause) was asked for."""
    try:
        runtime.check_stop()
    except JobStopped:
        return True
    return False
