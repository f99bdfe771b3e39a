"""Does one student leave part of this CPU idle? Two students trained at once, against one after the other.

    python -m bench.concurrency        # prints the table, writes bench/concurrency.json
    python -m bench.concurrency --out bench/amx/concurrency.json   # another CPU's figures, beside these

One thread instead of two is far less than 2x slower (the roofline's row), so one student leaves part of the
second core idle. Three arms on the default job's real batches, each student trained as a job trains one (its
settings, bf16 autocast, the plain attention kernel, clipping, fused AdamW), the arms in turn over rounds, the
first a warm-up, so this machine's drift falls on each alike:

- one after the other: two students, each on torch's threads in turn (what a job does);
- at once: the same two students' steps in two Python threads, one intra-op thread each, as a job with
  `--students-at-once 2` trains them (`training.side_by_side`);
- one larger batch: one student on batches 4x as large, on torch's threads: the same kind of rows in fewer,
  larger matmuls, with a quarter of the optimizer steps (a change of recipe, not only of speed);
- stacked: the same two students as one (`StackedStudents`): their weights stacked, one forward pass for both
  under `torch.func.vmap`, each with its own loss and gradient clipping, one optimizer step for both. Every
  operation then does both students' work, so the cost of an operation that is not the arithmetic is paid once.

Rates are training tokens per second, counted at each batch's longest row (the larger batches hold other rows, of
other lengths, so that arm compares rates, not the same work). Students trained at once do the job's arithmetic:
each ends where it ends trained alone on one thread; stacked ones end where each ends alone, up to bf16
rounding (`tests/test_bench.py`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from bench.machine import machine
from bench.roofline import CPU, Arm, collate, exact_width, train_step
from distill.config import JobConfig
from distill.data import encode, load_job_data, make_loader
from distill.evaluation import autocast, model_inputs
from distill.job import distillation_step
from distill.models import build_student, cls_only_last_layer, for_training, load_classifier, load_tokenizer
from distill.plan import check_teacher_and_layers
from distill.results import write_json
from distill.teacher import TeacherOutputs
from distill.training import Runtime, make_optimizer, side_by_side, training_attention

OUT = Path(__file__).resolve().parent / "concurrency.json"
RUNTIME, SCALER = Runtime.create("auto"), torch.amp.GradScaler("cpu", enabled=False)
LARGER = 4  # the larger batch, in default batches
SEQUENTIAL, AT_ONCE, LARGER_BATCH, STACKED = (
    "two students, one after the other, 2 threads (a job today)",
    "two students at once, one thread each",
    f"one student, batches {LARGER}x as large, 2 threads",
    "two students stacked, one step for both (torch.func.vmap over their weights), 2 threads",
)


@dataclass
class Student:
    model: nn.Module
    optimizer: torch.optim.Optimizer


def new_student(teacher: nn.Module, layers: list[int], cfg: JobConfig) -> Student:
    """A student as `job.distil_student` builds it from teacher layers, with its optimizer, in training mode."""
    model = for_training(build_student(teacher, layers), freeze_words=cfg.freeze_word_embeddings, dropout=cfg.dropout)
    model.train()
    return Student(model, make_optimizer(model, cfg.learning_rate, cfg.weight_decay, eight_bit=False))


def train(student: Student, batches: list[dict], step_loss: Callable, cfg: JobConfig) -> None:
    """`student` trained on `batches` with the roofline's step (`training.fit`'s), on the calling thread's torch
    threads. The attention kernel is the caller's to choose: its switch is process-wide, not per thread."""
    arm = Arm(student.model, batches, step_loss, layers=0, plain_attention=False)
    for batch in batches:
        train_step(student.model, student.optimizer, arm, batch, cfg, RUNTIME, SCALER)


@dataclass
class StackedStudents:
    """Students of one architecture trained as one: `model` (the first student) runs with each one's weights,
    stacked along a new first dimension; the weights no student trains (frozen word embeddings) are held once."""

    model: nn.Module
    weights: dict[str, torch.Tensor]
    fixed: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    optimizer: torch.optim.Optimizer


def stack_students(students: list[Student], cfg: JobConfig) -> StackedStudents:
    """`students` as one, with one optimizer over the stacked weights: the first student's, its groups and settings
    as `make_optimizer` made them, each weight replaced by its stack."""
    models = [s.model for s in students]
    stacked, buffers = stack_module_state(models)
    trained = {name for name, p in models[0].named_parameters() if p.requires_grad}
    weights = {name: w.detach().requires_grad_() for name, w in stacked.items() if name in trained}
    fixed = {name: p for name, p in models[0].named_parameters() if name not in trained}
    name_of = {p: name for name, p in models[0].named_parameters()}
    groups = [
        {**group, "params": [weights[name_of[p]] for p in group["params"]]}
        for group in students[0].optimizer.param_groups
    ]
    return StackedStudents(models[0], weights, fixed, buffers, type(students[0].optimizer)(groups))


def train_stacked(stacked: StackedStudents, batches: list[dict], step_loss: Callable, cfg: JobConfig) -> None:
    """Every batch through all of `stacked` at once: one forward pass under vmap, each student's own loss (the
    job's `step_loss` on its logits), one backward pass, each gradient clipped to its own student's norm as
    `clip_grad_norm_` clips it, one optimizer step."""

    def logits(weights: dict, buffers: dict, inputs: dict) -> torch.Tensor:
        return functional_call(stacked.model, ({**weights, **stacked.fixed}, buffers), kwargs=inputs).logits

    for batch in batches:
        with autocast(CPU, "bf16"):
            every = vmap(logits, in_dims=(0, 0, None))(stacked.weights, stacked.buffers, model_inputs(batch))
            loss = sum(step_loss(lambda own=own, **_: SimpleNamespace(logits=own), batch)[0] for own in every)
        loss.backward()
        grads = [w.grad for w in stacked.weights.values()]
        norms = torch.stack([g.flatten(1).float().norm(dim=1) for g in grads]).norm(dim=0)
        scale = (cfg.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.ndim - 1)).to(g.dtype))
        stacked.optimizer.step()
        stacked.optimizer.zero_grad(set_to_none=True)


def measure(arms: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Each arm's seconds per round, the arms in turn round by round; round 0 warms up and is not kept."""
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for round_ in range(rounds + 1):
        for name, arm in arms.items():
            start = time.perf_counter()
            arm()
            if round_:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def tokens(batches: list[dict]) -> int:
    return sum(exact_width(b)["input_ids"].numel() for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="default batches each student trains on per round")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds, after one warm-up round")
    parser.add_argument("--out", type=Path, default=OUT, help="the file to write (another CPU's: bench/<cpu>/)")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = JobConfig()
    plan = check_teacher_and_layers(cfg)
    tokenizer = load_tokenizer(plan.source)
    train_data = encode(load_job_data(cfg)["train"], tokenizer, cfg.max_length)
    pad = tokenizer.pad_token_id
    batches, _ = collate(make_loader(train_data, pad, cfg.batch_size, 0, train=True), args.steps)
    larger, _ = collate(make_loader(train_data, pad, LARGER * cfg.batch_size, 0, train=True), args.steps // LARGER)
    teacher = load_classifier(plan.source)
    layers = [0, 2, 4] if plan.n_student == 3 else list(range(plan.n_student))
    step = distillation_step(cfg, None, TeacherOutputs(torch.randn(len(train_data), 3), None), layers)
    students = [new_student(teacher, layers, cfg) for _ in range(7)]
    stacked = stack_students(students[5:], cfg)
    run = partial(train, step_loss=step, cfg=cfg)
    arms = {
        SEQUENTIAL: lambda: [run(s, batches) for s in students[:2]],
        AT_ONCE: lambda: side_by_side([partial(run, s, batches) for s in students[2:4]], 2, RUNTIME),  # as a job
        LARGER_BATCH: lambda: run(students[4], larger),
        STACKED: lambda: train_stacked(stacked, batches, step, cfg),
    }
    work = {SEQUENTIAL: 2 * tokens(batches), AT_ONCE: 2 * tokens(batches), LARGER_BATCH: tokens(larger)}
    work[STACKED] = 2 * tokens(batches)
    with contextlib.ExitStack() as stack:
        stack.enter_context(training_attention(CPU))
        for s in students:
            stack.enter_context(cls_only_last_layer(s.model, cfg.cls_only_last_layer))
        seconds = measure(arms, args.rounds)
    rates = {name: work[name] * len(s) / sum(s) for name, s in seconds.items()}
    arms_report = {
        name: {
            "tokens": work[name],
            "seconds": seconds[name],
            "tokens_per_second": rate,
            "vs_one_after_the_other": rate / rates[SEQUENTIAL],
        }
        for name, rate in rates.items()
    }
    report = {"machine": machine(), "steps": args.steps, "rounds": args.rounds, "arms": arms_report}
    write_json(args.out, report)
    show(report)


def show(report: dict) -> None:
    """The table of a run, from what `main` wrote."""
    print(
        f"Students' training on {report['machine']}, {report['rounds']} timed rounds of {report['steps']} default"
        " batches a student:\n"
    )
    print("| arm | tokens a round | seconds a round (each timed round) | tokens/s | vs one after the other |")
    print("|---|---|---|---|---|")
    for name, row in report["arms"].items():
        each = ", ".join(f"{s:.1f}" for s in row["seconds"])
        print(
            f"| {name} | {row['tokens']:,} | {each} | {row['tokens_per_second']:,.0f} |"
            f" {row['vs_one_after_the_other']:.2f}x |"
        )


if __name__ == "__main__":
    main()
