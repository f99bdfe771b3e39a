"""The training loop (teacher fine-tuning and student distillation share it), run through accelerate."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import io
import json
import math
import platform
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import get_linear_schedule_with_warmup

from .config import ConfigError, JobConfig
from .errors import UserError
from .evaluation import autocast, model_inputs
from .models import cls_only_last_layer
from .progress import Event, EventHandler, JobPaused, JobStopped, StepCount, StopSignal, ignore
from .results import atomic_write


class ModelDiverged(UserError):
    """A model's loss or validation metrics stopped being finite numbers: it is recorded as failed, not as a result."""


SEEDED = threading.Lock()  # held while the global random generator is seeded, restored or drawn from to build


class StoppedBeside(JobStopped):
    """Raised in a student trained side by side with one that failed: the job reports that one's error."""


StepLoss = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]


def resolve_precision(requested: str, device: torch.device) -> str:
    """'auto' becomes bf16 where the hardware runs it natively, fp16 on older GPUs, fp32 elsewhere."""
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        if requested == "auto":
            return "bf16" if bf16 else "fp16"
        if requested == "bf16" and not bf16:
            raise ConfigError("this GPU does not support bf16; use fp16, fp32 or auto", "precision")
        return requested
    if requested == "fp16":
        usable = "fp32 or auto" if bf16_is_emulated() else "bf16, fp32 or auto"
        raise ConfigError(f"fp16 needs a GPU; on this CPU use {usable}", "precision")
    if requested == "auto":
        native = device.type == "cpu" and torch.cpu._is_avx512_bf16_supported()
        return "bf16" if native else "fp32"
    if requested == "bf16" and device.type == "cpu" and bf16_is_emulated():
        raise ConfigError(
            "this CPU has no AVX-512, so bf16 would run 50 to 100 times slower than fp32; use fp32 or auto", "precision"
        )
    return requested


def bf16_is_emulated() -> bool:
    """An x86 CPU without AVX-512 has no bf16 path in oneDNN: PyTorch multiplies bf16 in plain loops, 1.5 to 2.8
    GFLOP/s against 158 for fp32 on a 2-core AMD EPYC with AVX2 only (`python -m bench.precision`)."""
    return platform.machine().lower() in ("x86_64", "amd64") and not torch.cpu._is_avx512_supported()


@dataclass
class Runtime:
    """Where and how a job trains, and where its progress goes."""

    accelerator: Accelerator
    precision: str
    on_event: EventHandler = ignore
    stop: StopSignal | None = None
    deadline: float | None = None  # time.monotonic() after which the job pauses (a time slice on ZeroGPU)
    steps: StepCount = field(default_factory=StepCount)
    halted: threading.Event = field(default_factory=threading.Event)  # set once a student trained side by side fails
    _events: threading.RLock = field(default_factory=threading.RLock)  # handlers see one event at a time

    @classmethod
    def create(
        cls,
        requested_precision: str,
        on_event: EventHandler = ignore,
        stop: StopSignal | None = None,
        deadline: float | None = None,
    ) -> Runtime:
        # Mixed precision is applied by our own autocast, not accelerate's, so one process can run
        # jobs of different precisions (accelerate's state is a process-wide singleton).
        accelerator = Accelerator(mixed_precision="no")
        return cls(accelerator, resolve_precision(requested_precision, accelerator.device), on_event, stop, deadline)

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def steps_per_epoch(self, rows: int, batch_size: int) -> int:
        """Training steps of one epoch in each process: the batches are shared out between the processes."""
        return math.ceil(math.ceil(rows / batch_size) / self.accelerator.num_processes)

    def emit(self, kind: str, stage: str = "", message: str = "", **metrics) -> None:
        if self.is_main:
            with self._events:
                self.on_event(Event(kind, stage, message, self.steps.done, self.steps.total, metrics))

    def check_stop(self) -> None:
        if self.halted.is_set():
            raise StoppedBeside("stopped: a student trained beside it ended the job")
        if self.stop is not None and self.stop.is_set():
            pausing = getattr(self.stop, "pausing", None)
            if pausing is not None and pausing():
                raise JobPaused("paused: its visitor left the page (on ZeroGPU a job runs only while watched)")
            raise JobStopped(str(getattr(self.stop, "reason", lambda: "")() or "stopped by the user"))
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise JobPaused("paused after its time slice")


def make_optimizer(model: nn.Module, learning_rate: float, weight_decay: float, eight_bit: bool):
    """AdamW, decaying matrices only (not biases or LayerNorm weights); 8-bit through bitsandbytes on request.

    The fused kernel updates every tensor in one pass: on this 2-core CPU it steps MiniLM's 17 M student
    parameters about 10x faster than the default multi-tensor loop, which took half of a student's step.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    if eight_bit:
        try:
            import bitsandbytes as bnb
        except ImportError as err:
            raise ConfigError(f"the 8-bit optimizer needs bitsandbytes: {err}") from None
        return bnb.optim.AdamW8bit(groups, lr=learning_rate)
    return torch.optim.AdamW(groups, lr=learning_rate, fused=True)


def fit(
    model: nn.Module,
    loader,
    step_loss: StepLoss,
    *,
    epochs: int,
    learning_rate: float,
    cfg: JobConfig,
    runtime: Runtime,
    stage: str,
    seed: int,
    max_tokens: int | None = None,
    after_epoch: Callable[[nn.Module, int], dict] | None = None,
    checkpoint: Path | None = None,
    measure_start: bool = False,
) -> tuple[nn.Module, list[dict]]:
    """Train `model` for `epochs` on `loader`, minimising `step_loss`; returns the trained model and per-epoch rows.

    Each row has the epoch's mean training losses and whatever `after_epoch` measured (validation).
    With `checkpoint`, the training state is saved there after every epoch but the last, and a run that was
    killed or stopped continues from the last saved epoch instead of starting the model again. With
    `measure_start`, `after_epoch` also measures the model before its first step, as epoch 0. A batch of more
    than `max_tokens` padded tokens (default: `cfg.max_tokens_per_pass`) trains in passes.
    """
    max_tokens = cfg.max_tokens_per_pass if max_tokens is None else max_tokens
    with SEEDED:
        set_seed(seed)
    accelerator = runtime.accelerator
    optimizer = make_optimizer(model, learning_rate, cfg.weight_decay, cfg.optimizer_8bit)
    steps = epochs * len(loader)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.precision == "fp16")
    sampler = loader.batch_sampler
    # The optimizer and scheduler stay unwrapped: our own scaler and clipping drive them, on one or many processes.
    model, loader = accelerator.prepare(model, loader)
    plain = accelerator.unwrap_model(model)  # what is evaluated, checkpointed and returned
    if cfg.torch_compile:
        # By hand, not accelerate's dynamo setting: that one is process-wide, and one app runs many jobs.
        # dynamic=True compiles one graph for every batch width, and every student of a job reuses it.
        model = torch.compile(model, dynamic=True)
    history: list[dict] = []
    # Training and the after-epoch evaluation read only the last layer's [CLS] position (cfg.cls_only_last_layer).
    with cls_only_last_layer(plain, cfg.cls_only_last_layer):
        if checkpoint is not None and checkpoint.exists():  # loaded after prepare: optimizer state follows the device
            history = load_checkpoint(checkpoint, plain, optimizer, scheduler, scaler)
            done = trained_epochs(history)
            sampler.passes = done  # the next epoch draws the batch order it would have drawn
            runtime.steps.advance(done * len(loader))
            runtime.emit("stage", stage, f"{stage}: continuing from its checkpoint after epoch {done}")
        elif measure_start and after_epoch is not None:
            start = {"epoch": 0, **after_epoch(plain, 0)}
            history.append(start)
            runtime.emit("epoch", stage, f"{stage}: before training " + _short(start), **start)
        for epoch in range(trained_epochs(history) + 1, epochs + 1):
            model.train()
            sums: dict[str, float] = defaultdict(float)
            batches = 0
            for batch in loader:
                runtime.check_stop()
                loss, parts = accumulate(model, batch, step_loss, max_tokens, runtime, scaler)
                value = _finite_loss(loss, accelerator, stage, epoch, batches + 1)
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                batches += 1
                sums["loss"] += value
                for name, part in parts.items():
                    sums[name] += part
                runtime.steps.advance()
                runtime.emit("step", stage, loss=value, epoch=epoch, **parts)
            row = {"epoch": epoch, **{f"train_{k}": v / max(batches, 1) for k, v in sums.items()}}
            if after_epoch is not None:
                row.update(after_epoch(plain, epoch))
            history.append(row)
            if checkpoint is not None and epoch < epochs and runtime.is_main:
                save_checkpoint(checkpoint, plain, optimizer, scheduler, scaler, history)
            runtime.emit("epoch", stage, f"{stage}: epoch {epoch}/{epochs} " + _short(row), **row)
    del model
    accelerator.free_memory()
    release_freed_memory()
    return plain, history


def release_freed_memory() -> None:
    """Hand the memory freed by a finished model back to the system. glibc keeps freed heap pages, and the
    default job's resident size grew by about 30 MB with every student (`python -m bench.memory`)."""
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


def students_at_once(cfg: JobConfig, runtime: Runtime) -> int:
    """How many students a job trains at the same time: `cfg.students_at_once` in one process; with several
    (`accelerate launch`) each process trains one at a time, its share of every student's batches."""
    return 1 if runtime.accelerator.num_processes > 1 else cfg.students_at_once


def side_by_side(tasks: list[Callable[[], None]], at_once: int, runtime: Runtime) -> None:
    """Run `tasks` in order, `at_once` at a time, each in a thread of its own on its share of torch's threads (torch
    releases the GIL inside its operations). The first task to fail stops the others at their next step, and no
    task starts after it; once every thread has ended, the failure is raised: an error before a stop or a pause,
    and any of them before the stops it caused. Ctrl-C while waiting stops them all the same way."""
    if at_once <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    threads = max(1, torch.get_num_threads() // at_once)
    runtime.emit("log", "students", f"training {at_once} students at once, {threads} thread(s) each")
    waiting, taking, failures = collections.deque(tasks), threading.Lock(), []

    def work() -> None:
        torch.set_num_threads(threads)  # torch's thread count is the calling thread's
        while True:
            with taking:
                if not waiting or runtime.halted.is_set():
                    return
                task = waiting.popleft()
            try:
                task()
            except BaseException as err:
                failures.append(err)
                runtime.halted.set()
                return

    workers = [threading.Thread(target=work, name=f"student-{i}") for i in range(min(at_once, len(tasks)))]
    # The attention kernel switch is process-wide: held here for every thread, so no thread's step ends it.
    with training_attention(runtime.device):
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        except BaseException:  # Ctrl-C: the students stop at their next step, and the job ends once they have
            runtime.halted.set()
            for worker in workers:
                if worker.ident is not None:
                    worker.join()
            raise
    if failures:  # errors first, then a stop or a pause, then the stops they caused; each kind in the order it came
        raise sorted(failures, key=lambda err: (isinstance(err, StoppedBeside), isinstance(err, JobStopped)))[0]


def accumulate(
    model: nn.Module, batch: dict[str, torch.Tensor], step_loss: StepLoss, max_tokens: int, runtime: Runtime, scaler
) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward and backward of one batch, in passes of at most `max_tokens` padded tokens when it is larger.

    Every loss is a mean over the batch's examples, so weighting each pass by its share of the rows makes the
    summed gradients the whole batch's: the same step, with the activations of a part of it in memory (a batch
    of 32 pairs padded to 128 tokens held about 1 GB of them in the teacher). Gradients are synchronised once,
    on the last pass, so processes that split their batches differently stay in step.
    """
    rows, width = batch["input_ids"].shape
    per_pass = rows if not max_tokens or rows * width <= max_tokens else max(1, max_tokens // width)
    starts = range(0, rows, per_pass)
    total, parts = torch.zeros((), device=batch["input_ids"].device), defaultdict(float)
    for start in starts:
        share = min(per_pass, rows - start) / rows
        last = start == starts[-1]
        with runtime.accelerator.no_sync(model) if not last else contextlib.nullcontext():
            with autocast(runtime.device, runtime.precision), training_attention(runtime.device):
                loss, pass_parts = step_loss(model, _rows(batch, start, per_pass, len(starts)))
            runtime.accelerator.backward(scaler.scale(loss * share))
        total += loss.detach().float() * share
        for name, value in pass_parts.items():
            parts[name] += value * share
    return total, dict(parts)


def _rows(batch: dict[str, torch.Tensor], start: int, count: int, passes: int) -> dict[str, torch.Tensor]:
    """The batch's rows for one pass: copies, not views, when it splits (torch.compile guards on a view's base
    and would compile the model again for the first split batch: a minute for the teacher on a 2-core CPU)."""
    if passes == 1:
        return batch
    return {k: v[start : start + count].clone() for k, v in batch.items()}


def training_attention(device: torch.device) -> contextlib.AbstractContextManager:
    """On a CPU, attention trains through PyTorch's plain (math) kernel. Without attention dropout PyTorch
    picks its fused flash kernel, whose backward is slow on CPUs: it took most of what dropping dropout saved
    (`python -m bench.roofline`, the row "PyTorch's own attention kernel"). With dropout the plain one runs anyway."""
    if device.type != "cpu":
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


def _finite_loss(loss: torch.Tensor, accelerator: Accelerator, stage: str, epoch: int, step: int) -> float:
    """The loss as a number, or ModelDiverged once it is NaN or infinite: a diverged model trains no further.

    With several processes every one of them must stop at the same step, or the others would wait forever
    for its gradients; so the verdict is the worst loss over all processes.
    """
    worst = loss.detach().float()
    if accelerator.num_processes > 1:
        worst = accelerator.gather(torch.where(torch.isfinite(worst), worst, torch.inf).reshape(1)).max()
    if not torch.isfinite(worst):
        raise ModelDiverged(
            f"{stage} diverged: its training loss became {worst.item()} at step {step} of epoch {epoch}; "
            "try a lower learning rate"
        )
    return loss.item()


def save_checkpoint(path: Path, model: nn.Module, optimizer, scheduler, scaler, history: list[dict]) -> None:
    """Everything needed to continue training after the epochs in `history`, written atomically."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "history": json.dumps(history, default=float),  # JSON: numpy numbers would not load with weights_only
        "rng": torch.get_rng_state(),
    }
    buffer = io.BytesIO()  # serialised in memory first: a full disk then fails as a plain OSError
    torch.save(state, buffer)
    atomic_write(path, buffer.getbuffer())  # a view, not a second copy of the teacher's whole training state


def load_checkpoint(path: Path, model: nn.Module, optimizer, scheduler, scaler) -> list[dict]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    with SEEDED:
        torch.set_rng_state(state["rng"])
    return json.loads(state["history"])


def trained_epochs(history: list[dict]) -> int:
    """Epochs of training behind `history` (its epoch-0 row, a measurement before training, is not one)."""
    return sum(row["epoch"] > 0 for row in history)


def _short(row: dict) -> str:
    shown = {k: v for k, v in row.items() if k == "train_loss" or k.endswith("accuracy")}
    return " ".join(f"{k}={v:.4f}" for k, v in shown.items())


def cross_entropy_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Plain fine-tuning: the model's own cross-entropy on the hard labels."""
    logits = model(**model_inputs(batch)).logits
    loss = nn.functional.cross_entropy(logits.float(), batch["labels"])
    return loss, {"ce": loss.item()}
