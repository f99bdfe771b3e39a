"""Progress events: the pipeline emits them, the CLI draws tqdm bars from them, the app a progress bar and curves."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_LOG_LINES = 400
MAX_CURVE_POINTS = 2000


class JobStopped(Exception):
    """Raised inside a job when the user asked it to stop."""


class JobPaused(JobStopped):
    """Raised inside a job when its time slice is over; the run can be resumed where it stood."""


@dataclass
class Event:
    kind: str  # "stage" (a new phase), "step" (a training step), "epoch", "log" or "model" (a model is finished)
    stage: str = ""
    message: str = ""
    done: int = 0  # training steps done in the whole job
    total: int = 0  # training steps the whole job will take
    metrics: dict[str, Any] = field(default_factory=dict)


EventHandler = Callable[[Event], None]


class StopSignal(Protocol):
    """What a job polls to know it should stop: a threading.Event, or the app's StopFile across processes. A
    signal whose `pausing()` is true asks for a pause (the run stays resumable, marked paused) instead."""

    def is_set(self) -> bool: ...


def ignore(_: Event) -> None:
    pass


class TqdmReporter:
    """One tqdm bar for the job's training steps; log lines printed above it."""

    def __init__(self, file=sys.stderr):
        self.bar = None
        self.file = file

    def __call__(self, event: Event) -> None:
        from tqdm.auto import tqdm

        if self.bar is None and event.total:
            self.bar = tqdm(total=event.total, unit="step", file=self.file, dynamic_ncols=True)
        if event.kind == "step" and self.bar is not None:
            self.bar.set_description(event.stage)
            self.bar.set_postfix(loss=f"{event.metrics.get('loss', 0):.3f}")
            self.bar.update(event.done - self.bar.n)
        elif event.kind in ("stage", "log", "epoch", "model") and event.message:
            (self.bar.write if self.bar else print)(event.message, file=self.file)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class JobState:
    """A job's state as watchers see it, built from its events: run, state, stage, steps done of total, the last
    log lines, the loss per step and the finished models. Plain data (`snapshot()`), the same for every watcher."""

    def __init__(self, run: str | None = None, state: str = "running", stage: str = "starting") -> None:
        self.data: dict[str, Any] = {
            "run": run,
            "state": state,
            "stage": stage,
            "done": 0,
            "total": 0,
            "log": [],
            "curve": [],
            "models": [],
        }

    def apply(self, event: Event) -> None:
        data = self.data
        data.update(done=event.done, total=event.total, stage=event.stage or data["stage"])
        data["run"] = event.metrics.get("run", data["run"])
        if event.message:
            self.log(event.message)
        if event.kind == "step":
            data["curve"].append({"step": event.done, "stage": event.stage, "loss": event.metrics.get("loss")})
            if len(data["curve"]) > MAX_CURVE_POINTS:  # long jobs: keep every other point
                data["curve"] = data["curve"][::2]
        if event.kind == "model":
            keys = ("model", "strategy", "layers", "accuracy", "failed")
            data["models"].append({k: event.metrics.get(k) for k in keys})

    def log(self, line: str) -> None:
        self.data["log"] = [*self.data["log"], line][-MAX_LOG_LINES:]

    def snapshot(self) -> dict[str, Any]:
        data = self.data
        return {**data, "log": list(data["log"]), "curve": list(data["curve"]), "models": list(data["models"])}


class SavedProgress:
    """An event handler that keeps a JobState and hands its snapshot to `save` at most every `seconds` (and on
    `flush`): a run's progress.json, so a watcher in another process or on another machine sees the job."""

    def __init__(
        self, forward: EventHandler, save: Callable[[dict[str, Any]], None], run: str, seconds: float = 3.0
    ) -> None:
        self.forward, self.save, self.seconds = forward, save, seconds
        self.state = JobState(run)
        self.saved_at = 0.0

    def __call__(self, event: Event) -> None:
        self.state.apply(event)
        self.forward(event)
        if time.monotonic() - self.saved_at >= self.seconds or event.kind in ("stage", "model"):
            self.flush()

    def flush(self) -> None:
        self.saved_at = time.monotonic()
        self.save(self.state.snapshot())
