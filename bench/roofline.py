"""How far a training step is from what this CPU can do: a roofline for the default job, in one run.

    python -m bench.roofline            # prints the tables, writes bench/roofline.json
    python -m bench.roofline --out bench/amx/roofline.json   # another CPU's figures, beside these

1. Sustained matmul throughput (GFLOP/s) in bf16 and fp32 at the shapes a MiniLM layer multiplies
   (1,280 tokens x 384 x 1,536 and its neighbours), the best of several timed seconds: the machine's peak.
2. A student's distillation step (3 layers, teacher logits cached) and the teacher's fine-tuning step
   (6 layers), on the default job's real batches, with their FLOPs counted per token from the model's
   shapes and the batch's rows at the width of its longest one (padding beyond that is work done, not counted):
   achieved GFLOP/s and its ratio to the peak.
3. Where a student's epoch goes: collation, forward, backward, optimizer (clipping, AdamW, zeroing) and the
   end-of-epoch evaluation, each timed around the same library calls the job makes.
4. The same steps with the word embeddings frozen (`freeze_word_embeddings`), without dropout, with the last
   layer computed for [CLS] only (`cls_only_last_layer`), compiled by torch.compile (`torch_compile`), with batch
   widths rounded up to a multiple of 8 (12 widths in the default training set instead of 63, for oneDNN's
   primitive cache to hold), and the student's with 1 thread instead of 2: candidates the profile points at, every row
   trained in turn step by step in this process (`profile_arms`), so they are measured side by side.
5. The default steps, eager and compiled, split into their matmuls and the rest (`matmul_split`, one more pass
   under torch's profiler): the matmuls' own rate, and the time the rest may take for the step to reach 60% of
   the peak measured alongside the steps.

The peak is this machine's, not the hardware's on paper: the file records the CPU's model, its matmul flags
(AVX-512 bf16 and AMX multiply at very different rates), the thread count, and the peak measured before the steps
and again after them (a machine busy at the start would understate it); every step is also compared with the
peak alongside it, the median of short matmul bursts run between the timed steps (`peak_burst`), since this
machine's speed drifts while the steps run. `stale_peak` refuses a file whose peak is
under what the same CPU measures now, so a roofline from a busy or other machine cannot stand as this one's.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from bench.machine import cpu_facts, machine
from distill.config import JobConfig
from distill.data import encode, load_job_data, make_loader
from distill.estimate import flops_per_token
from distill.evaluation import autocast, evaluate
from distill.job import distillation_step
from distill.models import (
    build_student,
    cls_only_last_layer,
    for_training,
    freeze_word_embeddings,
    load_classifier,
    load_tokenizer,
    set_dropout,
)
from distill.plan import check_teacher_and_layers
from distill.results import write_json
from distill.shared import EVAL_BATCH
from distill.teacher import TeacherOutputs
from distill.training import (
    Runtime,
    accumulate,
    cross_entropy_step,
    make_optimizer,
    resolve_precision,
    training_attention,
)

OUT = Path(__file__).resolve().parent / "roofline.json"
PHASES = ("collation", "forward", "backward", "optimizer")
CPU = torch.device("cpu")
STUDENT_COMPILED = "student, the defaults, compiled by torch.compile (`torch_compile`)"
STUDENT_ROUNDED = "student, the defaults, batch widths rounded up to a multiple of 8 (not kept)"
TEACHER_DEFAULTS = "teacher fine-tuning, frozen, no dropout, last layer for [CLS] only (the defaults)"
TEACHER_COMPILED = "teacher fine-tuning, the defaults, compiled by torch.compile"
ARM_SCOPE = "roofline arm: "
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")  # (bias, a, b) for the add* ones
PEAK_SHAPES = [(1280, 384, 1536), (1280, 1536, 384), (1280, 384, 384)]  # 1,280 tokens through MiniLM's projections
STALE_MARGIN = 0.2  # a machine measures its own peak within this share from run to run (noisy neighbours)


def require_native_bf16(bench: str) -> None:
    """Stop a bench of bf16 training on a CPU where a job trains in fp32, with one line saying so."""
    if resolve_precision("auto", CPU) != "bf16":
        raise SystemExit(
            f"{bench} times bf16 training, and this CPU has no avx512_bf16: a job here trains in fp32 "
            "(python -m bench.precision compares the two)"
        )


def stale_peak(recorded: dict, measured_gflops: float, here: dict) -> str | None:
    """Why the roofline `recorded` cannot stand on this machine (`here`, `cpu_facts()`), which just measured
    `measured_gflops` at the same shapes: its peak is under that by more than STALE_MARGIN. None when it stands,
    or when it was measured on another CPU, a comparison this machine cannot make."""
    if recorded.get("cpu") != here:
        return None
    peak = recorded["sustained_bf16_gflops"]
    if peak < (1 - STALE_MARGIN) * measured_gflops:
        return (
            f"the recorded bf16 peak, {peak:.0f} GFLOP/s, is under the {measured_gflops:.0f} this {here['model']} "
            "measures at the same shapes: it was measured on a busy machine; measure it again on an idle one"
        )
    return None


def matmul_rates(
    shapes: list[tuple[int, int, int]], seconds: float, dtype: torch.dtype = torch.bfloat16
) -> dict[str, float]:
    """GFLOP/s of a matmul at each shape, named 'MxKxN'."""
    return {"x".join(map(str, dims)): matmul_gflops(dtype, *dims, seconds) for dims in shapes}


def matmul_gflops(dtype: torch.dtype, m: int, k: int, n: int, seconds: float, reps: int = 20) -> float:
    """Best GFLOP/s of (m x k) @ (k x n) over timed bursts of `reps` products filling `seconds`."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
    return best


def exact_width(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch cut to the width of its longest row, as the job pads it."""
    width = int(batch["attention_mask"].sum(1).max())
    return {name: t[:, :width] if t.dim() == 2 else t for name, t in batch.items()}


def rounded_width(batch: dict[str, torch.Tensor], multiple: int, pad_id: int) -> dict[str, torch.Tensor]:
    """The batch padded on to a width that is a multiple of `multiple`: fewer distinct shapes in a job, so
    oneDNN's primitive cache could hold every one, for more padded work."""
    extra = -batch["input_ids"].shape[1] % multiple
    fill = {"input_ids": pad_id}  # the mask and token types pad with 0
    return {
        name: torch.nn.functional.pad(t, (0, extra), value=fill.get(name, 0)) if t.dim() == 2 else t
        for name, t in batch.items()
    }


def forward_flops(config, batch: dict[str, torch.Tensor], layers: int, cls_only: bool = False) -> float:
    """Matmul FLOPs of one forward pass of an encoder classifier on `batch` (its padded shape): the layers,
    then per sequence the pooler 2h^2 and the classifier 2h x labels, and with `cls_only` the rest of the last
    layer's work for the [CLS] position."""
    rows, width = batch["input_ids"].shape
    h = config.hidden_size
    per_row = 2 * h * h + 2 * h * config.num_labels
    if cls_only:
        per_row += flops_per_token(config, 1, width) - 4 * h * h
    return rows * width * flops_per_token(config, layers, width, cls_only) + rows * per_row


@dataclass
class StepProfile:
    """Seconds per phase summed over the timed steps, and the FLOPs those steps counted."""

    steps: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    warmup_seconds: float = 0.0  # the untimed first pass; with `compiled`, compiling is in it
    flops: float = 0.0
    tokens: int = 0
    profiled_seconds: float = 0.0  # with `Arm.split`: a profiled pass of `steps` steps (`matmul_split`)
    matmul_seconds: float = 0.0  # the matmuls' own time in that pass
    matmul_flops: float = 0.0  # their FLOPs, from the shapes the profiler recorded
    peak_alongside: float = 0.0  # GFLOP/s of the peak's matmul, the median of bursts between the timed steps

    @property
    def step_seconds(self) -> float:
        return sum(self.seconds.values()) / self.steps

    @property
    def gflops(self) -> float:
        compute = self.seconds["forward"] + self.seconds["backward"] + self.seconds["optimizer"]
        return self.flops / compute / 1e9


@dataclass
class Arm:
    """One row of the table: a model trained on `batches` as `training.fit` trains it, with the options it varies.

    With `max_tokens`, forward and backward run as `training.accumulate` runs them, in passes, and are timed
    together (as backward). `plain_attention=False` leaves PyTorch to pick the attention kernel (the fused flash one
    without dropout); `cls_only` computes the last layer for the [CLS] position only, as the job does by default;
    `compiled` trains through torch.compile as `training.fit` does with `torch_compile`; `threads` runs the arm's
    steps on that many threads instead of torch's default; `split` times its matmuls apart from the rest of a step
    (`matmul_split`).
    """

    model: nn.Module
    batches: list[dict]
    step_loss: Callable
    layers: int
    max_tokens: int = 0
    plain_attention: bool = True
    cls_only: bool = False
    compiled: bool = False
    threads: int = 0
    split: bool = False
    profile: StepProfile = field(default_factory=StepProfile)


def profile_arms(arms: dict[str, Arm], cfg: JobConfig) -> dict[str, StepProfile]:
    """Train every arm on its batches, one step of each in turn, twice over; time each phase of the second pass.

    Interleaved step by step, a change in the machine's speed (a shared virtual machine drifts by 10 to 15% over
    minutes) falls on every row alike, so the rows' ratios hold where rows measured one after another did not.
    The first pass is the warm-up, as a job's first steps are: it compiles (with `compiled`), meets oneDNN's
    first primitives and grows the allocator's heap; a job's thousands of later steps run warm. After each round of
    the timed pass, a burst of the peak's matmul (`peak_burst`): their median is the peak measured alongside the
    steps, which a step's rate is compared with as well as with the best peak of the run. Collation is timed
    once, when the batches are built (`collate`), and added per step afterwards.
    """
    runtime, scaler = Runtime.create("auto"), torch.amp.GradScaler("cpu", enabled=False)
    with contextlib.ExitStack() as stack:
        trained = {}
        for name, arm in arms.items():
            arm.model.train()
            stack.enter_context(cls_only_last_layer(arm.model, arm.cls_only))
            optimizer = make_optimizer(arm.model, cfg.learning_rate, cfg.weight_decay, eight_bit=False)
            trained[name] = (torch.compile(arm.model, dynamic=True) if arm.compiled else arm.model, optimizer)
        bursts = []
        for timed in (False, True):
            for steps in _rounds(arms):
                for name, arm, batch in steps:
                    _record(arm, batch, train_step(*trained[name], arm, batch, cfg, runtime, scaler), timed)
                if timed:
                    bursts.append(peak_burst())
        for arm in arms.values():
            arm.profile.peak_alongside = statistics.median(bursts)
        split = {name: arm for name, arm in arms.items() if arm.split}
        matmul_split(split, {name: trained[name] for name in split}, cfg, runtime, scaler)
    return {name: arm.profile for name, arm in arms.items()}


def _rounds(arms: dict[str, Arm]) -> Iterator[list[tuple[str, Arm, dict]]]:
    """The arms' steps round by round: each round the next batch of every arm that has one left, in order."""
    for i in range(max((len(arm.batches) for arm in arms.values()), default=0)):
        yield [(name, arm, arm.batches[i]) for name, arm in arms.items() if i < len(arm.batches)]


def matmul_split(arms: dict[str, Arm], trained: dict[str, tuple], cfg: JobConfig, runtime, scaler) -> None:
    """One more pass of these arms (`trained`: each one's model and optimizer), in turn step by step under torch's
    profiler: each step's wall time, and its matmuls' (mm, addmm, bmm) own seconds and FLOPs from the shapes the
    profiler records, go to the arm's profile. The profiler slows the many small operations, so the rest of a
    profiled step is an upper bound."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as recorded:
        for steps in _rounds(arms):
            for name, arm, batch in steps:
                start = time.perf_counter()
                with record_function(f"{ARM_SCOPE}{name}"):
                    train_step(*trained[name], arm, batch, cfg, runtime, scaler)
                arm.profile.profiled_seconds += time.perf_counter() - start
    for event in recorded.events():
        scopes = [parent.name for parent in _ancestors(event)]
        arm = next((arms[s.removeprefix(ARM_SCOPE)] for s in scopes if s.startswith(ARM_SCOPE)), None)
        if event.name in MATMUL_OPS and arm is not None and not any(s in MATMUL_OPS for s in scopes):
            shapes = event.input_shapes  # a matmul inside another one is counted there
            left, right = (shapes[1], shapes[2]) if "add" in event.name else (shapes[0], shapes[1])
            arm.profile.matmul_flops += 2 * math.prod(left) * right[-1]
            arm.profile.matmul_seconds += event.self_cpu_time_total / 1e6


def peak_burst(reps: int = 5) -> float:
    """GFLOP/s of `reps` bf16 matmuls at the peak's first shape (1,280 x 384 x 1,536): short enough to run between
    the rows' steps. The median of many sits a little under the best, which `matmul_gflops` reports."""
    m, k, n = PEAK_SHAPES[0]
    a, b = torch.randn(m, k, dtype=torch.bfloat16), torch.randn(k, n, dtype=torch.bfloat16)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9


def _ancestors(event) -> Iterator:
    """The profiler events an event ran inside, innermost first."""
    parent = event.cpu_parent
    while parent is not None:
        yield parent
        parent = parent.cpu_parent


def train_step(model, optimizer, arm: Arm, batch: dict, cfg: JobConfig, runtime, scaler) -> tuple[float, ...]:
    """One training step of `arm`: seconds of its forward, backward and optimizer phases."""
    default_threads = torch.get_num_threads()
    torch.set_num_threads(arm.threads or default_threads)
    t1 = time.perf_counter()
    if arm.max_tokens:
        t2 = t1
        accumulate(model, batch, arm.step_loss, arm.max_tokens, runtime, scaler)
    else:
        with autocast(CPU, "bf16"), training_attention(CPU) if arm.plain_attention else contextlib.nullcontext():
            loss, _ = arm.step_loss(model, batch)
        t2 = time.perf_counter()
        loss.backward()
    t3 = time.perf_counter()
    nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    t4 = time.perf_counter()
    torch.set_num_threads(default_threads)
    return t2 - t1, t3 - t2, t4 - t3


def _record(arm: Arm, batch: dict, seconds: tuple[float, ...], timed: bool) -> None:
    profile = arm.profile
    if not timed:
        profile.warmup_seconds += sum(seconds)
        return
    profile.steps += 1
    for phase, value in zip(PHASES[1:], seconds, strict=True):
        profile.seconds[phase] += value
    counted = exact_width(batch)  # the padding that rounds a width up is work done, not counted
    profile.flops += 3 * forward_flops(arm.model.config, counted, arm.layers, arm.cls_only)  # backward: 2x forward
    profile.tokens += counted["input_ids"].numel()


def collate(loader, steps: int) -> tuple[list[dict], float]:
    """The loader's first `steps` batches, and the seconds it took to collate one."""
    start = time.perf_counter()
    batches = [batch for _, batch in zip(range(steps), loader, strict=False)]
    return batches, (time.perf_counter() - start) / len(batches)


TARGET = 0.6  # #28's target share of the peak
SPLIT_HEADER = (
    "| step | ms/step | profiled, ms/step | in matmuls, ms | matmuls' own GFLOP/s | of the peak alongside |"
    f" the rest, ms | the rest for {TARGET:.0%} of that peak, ms |"
)


def matmul_row(p: StepProfile) -> dict[str, float]:
    """A step split into its matmuls and the rest (`matmul_split`), and the time the rest may take for the step to
    reach TARGET of the peak measured alongside (negative: out of reach were the rest free)."""
    flops, matmuls, profiled = (value / p.steps for value in (p.flops, p.matmul_seconds, p.profiled_seconds))
    rate = p.matmul_flops / p.matmul_seconds / 1e9
    return {
        "ms_per_step": 1000 * p.step_seconds,
        "profiled_ms_per_step": 1000 * profiled,
        "matmul_ms": 1000 * matmuls,
        "matmul_gflops": rate,
        "peak_alongside_gflops": p.peak_alongside,
        "matmul_share_of_peak_alongside": rate / p.peak_alongside,
        "rest_ms": 1000 * (profiled - matmuls),
        "rest_ms_at_target": 1000 * (flops / (TARGET * p.peak_alongside * 1e9) - matmuls),
    }


def step_row(p: StepProfile, peak: float) -> dict:
    """A row of the table as the file keeps it: its rate against the run's best peak and the peak alongside."""
    return {
        "ms_per_step": 1000 * p.step_seconds,
        "tokens_per_step": p.tokens / p.steps,
        "gflops": p.gflops,
        "share_of_peak": p.gflops / peak,
        "share_of_peak_alongside": p.gflops / p.peak_alongside,
        "phase_seconds": p.seconds,
        "steps": p.steps,
        "warmup_seconds": p.warmup_seconds,
    }


def step_line(name: str, row: dict) -> str:
    return (
        f"| {name} | {row['ms_per_step']:.0f} | {row['tokens_per_step']:.0f} | {row['gflops']:.0f} |"
        f" {row['share_of_peak']:.0%} | {row['share_of_peak_alongside']:.0%} |"
    )


def split_line(name: str, row: dict[str, float]) -> str:
    return (
        f"| {name} | {row['ms_per_step']:.0f} | {row['profiled_ms_per_step']:.0f} | {row['matmul_ms']:.0f} |"
        f" {row['matmul_gflops']:.0f} | {row['matmul_share_of_peak_alongside']:.0%} | {row['rest_ms']:.0f} |"
        f" {row['rest_ms_at_target']:.0f} |"
    )


def counted_flops(model: nn.Module, batch: dict[str, torch.Tensor], step_loss) -> float:
    """FLOPs of one forward and backward as torch's FlopCounterMode counts them: a check on `forward_flops`."""
    with FlopCounterMode(display=False) as counter:
        loss, _ = step_loss(model, batch)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per measurement")
    parser.add_argument("--matmul-seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=OUT, help="the file to write (another CPU's: bench/<cpu>/)")
    args = parser.parse_args()
    require_native_bf16("bench.roofline")
    torch.manual_seed(0)
    cfg = JobConfig()
    plan = check_teacher_and_layers(cfg)
    config, n_student = plan.teacher_config, plan.n_student
    tokenizer = load_tokenizer(plan.source)
    examples = load_job_data(cfg)
    data = {name: encode(ex, tokenizer, cfg.max_length) for name, ex in examples.items()}
    pad = tokenizer.pad_token_id

    cpu = cpu_facts()
    peak = {
        "bf16": matmul_rates(PEAK_SHAPES, args.matmul_seconds),
        "fp32": matmul_rates(PEAK_SHAPES, args.matmul_seconds, torch.float32),
    }
    for name, rates in peak.items():
        print(f"matmul {name}: " + ", ".join(f"{s} {g:.0f} GFLOP/s" for s, g in rates.items()))

    teacher = load_classifier(plan.source)
    batches, collation = collate(make_loader(data["train"], pad, cfg.batch_size, 0, train=True), args.steps)
    teacher_logits = torch.randn(len(data["train"]), teacher.config.num_labels)
    layers = [0, 2, 4] if n_student == 3 else list(range(n_student))
    step = distillation_step(cfg, None, TeacherOutputs(teacher_logits, None), layers)
    flops_check = {}
    for cls_only in (False, True):
        with cls_only_last_layer(model := build_student(teacher, layers), cls_only):
            check = counted_flops(model, batches[0], step)
        formula = 3 * forward_flops(teacher.config, batches[0], n_student, cls_only)
        flops_check["cls_only" if cls_only else "full"] = {"formula": formula, "flop_counter": check}
        print(
            f"FLOPs of one student step{' ([CLS]-only last layer)' if cls_only else ''}: "
            f"formula {formula / 1e9:.1f} G, torch FlopCounterMode {check / 1e9:.1f} G"
        )

    def student(frozen: bool, dropout: float | None) -> nn.Module:
        model = build_student(teacher, layers)
        if frozen:
            freeze_word_embeddings(model)
        return model if dropout is None else set_dropout(model, dropout)

    defaults = "student, frozen, no dropout, last layer for [CLS] only (the defaults)"
    passes = cfg.max_tokens_per_pass  # the teacher's, as the job trains it
    arms = {
        "student, as before (every weight trained, dropout 0.1)": Arm(student(False, None), batches, step, n_student),
        "student, word embeddings frozen": Arm(student(True, None), batches, step, n_student),
        "student, word embeddings frozen, no dropout": Arm(student(True, 0.0), batches, step, n_student),
        "student, frozen, no dropout, PyTorch's own attention kernel (flash)": Arm(
            student(True, 0.0), batches, step, n_student, plain_attention=False
        ),
        "student, frozen, no dropout, in passes of at most 1,024 tokens (forward in backward)": Arm(
            student(True, 0.0), batches, step, n_student, max_tokens=1024
        ),
        "student, frozen, no dropout, on 1 thread instead of 2": Arm(
            student(True, 0.0), batches, step, n_student, threads=1
        ),
        defaults: Arm(student(True, 0.0), batches, step, n_student, cls_only=True, split=True),
        STUDENT_ROUNDED: Arm(
            student(True, 0.0), [rounded_width(b, 8, pad) for b in batches], step, n_student, cls_only=True
        ),
        STUDENT_COMPILED: Arm(student(True, 0.0), batches, step, n_student, cls_only=True, compiled=True, split=True),
    }
    for name, now, max_tokens, cls_only, compiled in (
        ("teacher fine-tuning as before (dropout 0.1, every weight trained)", False, 0, False, False),
        ("teacher fine-tuning as before, in passes of 1,024 tokens", False, 1024, False, False),
        ("teacher fine-tuning, word embeddings frozen, no dropout", True, passes, False, False),
        (TEACHER_DEFAULTS, True, passes, True, False),
        (TEACHER_COMPILED, True, passes, True, True),
    ):
        model = load_classifier(plan.source)
        arms[name] = Arm(
            for_training(model, freeze_words=True, dropout=0.0) if now else model,
            batches[: args.steps // 2],
            cross_entropy_step,
            config.num_hidden_layers,
            max_tokens=max_tokens,
            cls_only=cls_only,
            compiled=compiled,
            split=name in (TEACHER_DEFAULTS, TEACHER_COMPILED),
        )
    profiles = profile_arms(arms, cfg)
    for p in profiles.values():
        p.seconds["collation"] = collation * p.steps

    # Evaluation after a student's last epoch: every validation split once, at two batch sizes, and with the
    # last layer for [CLS] only.
    model = student(True, 0.0)
    eval_data = {split: enc for split, enc in data.items() if split.startswith("validation")}
    eval_seconds = {}
    for batch_size, cls_only in ((EVAL_BATCH, False), (256, False), (EVAL_BATCH, True)):
        loaders = {split: make_loader(enc, pad, batch_size, train=False) for split, enc in eval_data.items()}
        start = time.perf_counter()
        with cls_only_last_layer(model, cls_only):
            evaluate(model, loaders, eval_data, "bf16")
        eval_seconds[f"batch {batch_size}" + (", last layer for [CLS] only" if cls_only else "")] = (
            time.perf_counter() - start
        )

    steps_per_epoch = -(-len(data["train"].subset(list(range(cfg.student_train_size)))) // cfg.batch_size)
    base = profiles[defaults]
    epoch = {phase: base.seconds[phase] / base.steps * steps_per_epoch for phase in PHASES}
    epoch["evaluation"] = eval_seconds[f"batch {EVAL_BATCH}, last layer for [CLS] only"]
    total = sum(epoch.values())

    # Measured again after the steps: the peak is the better of the two, so a busy start cannot understate it.
    after = matmul_rates(PEAK_SHAPES, args.matmul_seconds)
    sustained = max(*peak["bf16"].values(), *after.values())
    fp32 = max(peak["fp32"].values())
    on = machine()
    print(f"\nRoofline on {on}; sustained peak: bf16 {sustained:.0f} GFLOP/s, fp32 {fp32:.0f} GFLOP/s\n")
    alongside = next(iter(profiles.values())).peak_alongside
    print(f"the peak alongside the steps (median of bursts between them): {alongside:.0f} GFLOP/s\n")
    print("| step | ms/step | tokens/step | achieved GFLOP/s | achieved / bf16 peak | achieved / the peak alongside |")
    print("|---|---|---|---|---|---|")
    rows = {name: step_row(p, sustained) for name, p in profiles.items()}
    for name, row in rows.items():
        print(step_line(name, row))
    print("\nThe default steps' matmuls apart from the rest (one more pass, profiled, the rows in turn):\n")
    print(SPLIT_HEADER)
    print("|---|---|---|---|---|---|---|---|")
    split = {name: matmul_row(p) for name, p in profiles.items() if p.matmul_seconds}
    for name, row in split.items():
        print(split_line(name, row))
    print(f"\nOne student epoch of the default job ({steps_per_epoch} steps) and its evaluation:\n")
    print("| phase | seconds | share |")
    print("|---|---|---|")
    for phase, seconds in epoch.items():
        print(f"| {phase} | {seconds:.1f} | {seconds / total:.0%} |")
    eval_rows = sum(len(d) for d in eval_data.values())
    print(f"\nevaluation of {eval_rows} rows: " + ", ".join(f"{b} {t:.1f} s" for b, t in eval_seconds.items()))
    print(
        "the warm-up pass, compiling included: "
        + ", ".join(
            f"{name} {profiles[name].warmup_seconds:.1f} s (eager {profiles[eager].warmup_seconds:.1f} s)"
            for name, eager in ((STUDENT_COMPILED, defaults), (TEACHER_COMPILED, TEACHER_DEFAULTS))
        )
    )
    write_json(
        args.out,
        {
            "machine": on,
            "cpu": cpu,
            "matmul_gflops": peak,
            "bf16_gflops_after_the_steps": after,
            "sustained_bf16_gflops": sustained,
            "bf16_gflops_alongside_the_steps": alongside,
            "flops_check": flops_check,
            "steps": rows,
            "matmul_split": split,
            "student_epoch_seconds": epoch,
            "evaluation_seconds": eval_seconds,
        },
    )


if __name__ == "__main__":
    main()
