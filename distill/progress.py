"""Progress events: the pipeline emits them, the CLI draws tqdm bars from them, the app a progress bar and curves."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
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


class StepCount:
    """A job's training steps: planned in all, and done so far; every event carries both. Students trained side by
    side advance it from several threads at once."""

    def __init__(self) -> None:
        self.done = 0
        self.total = 0
        self._lock = threading.Lock()
        self._stage = threading.local()  # steps advanced in the calling thread's stage

    def advance(self, steps: int = 1) -> None:
        with self._lock:
            self.done += steps
        self._stage.counted = getattr(self._stage, "counted", 0) + steps

    @contextlib.contextmanager
    def stage(self, planned: int) -> Iterator[None]:
        """A stage of `planned` steps ends at its planned count, whatever it trained: a model that diverged, or a
        teacher another job cached meanwhile, still brings the job's progress to its end."""
        outer = getattr(self._stage, "counted", 0)
        self._stage.counted = 0
        try:
            yield  # a stop or a pause leaves the count where it stood
            self.advance(planned - self._stage.counted)
        finally:
            self._stage.counted = outer + self._stage.counted


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


@dataclass
class JobState:
    """A job's state as watchers see it, built from its events: run, state, stage, steps done of total, the last
    log lines, the loss per step and the finished models; and, from the app's runner, its place in the queue, its
    error and its upload. `snapshot()` is plain data, the same for every watcher."""

    run: str | None = None
    state: str = "running"
    stage: str = "starting"
    done: int = 0
    total: int = 0
    log: list[str] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    queue_position: int | None = None  # jobs ahead of it in the app's queue
    error: str | None = None  # why it failed, in one line
    upload: str | None = None  # where it was uploaded when it completed
    upload_error: str | None = None

    def apply(self, event: Event) -> None:
        self.done, self.total, self.stage = event.done, event.total, event.stage or self.stage
        self.run = event.metrics.get("run", self.run)
        if event.message:
            self.add_log(event.message)
        if event.kind == "step":
            self.curve.append({"step": event.done, "stage": event.stage, "loss": event.metrics.get("loss")})
            if len(self.curve) > MAX_CURVE_POINTS:  # long jobs: keep every other point
                self.curve = self.curve[::2]
        if event.kind == "model":
            keys = ("model", "strategy", "layers", "accuracy", "failed")
            self.models.append({k: event.metrics.get(k) for k in keys})

    def add_log(self, line: str) -> None:
        self.log = [*self.log, line][-MAX_LOG_LINES:]

    def update(self, **changes: Any) -> None:
        """Set fields by name (an unknown one is an error, not a new key)."""
        for name, value in changes.items():
            if name not in FIELDS_OF_STATE:
                raise TypeError(f"JobState has no field {name!r}")
            setattr(self, name, value)

    def snapshot(self) -> dict[str, Any]:
        """Plain data that later events do not change: every field a job has, and the runner's only while set."""
        data = {name: getattr(self, name) for name in FIELDS_OF_STATE}
        data = {name: value for name, value in data.items() if value is not None or name not in RUNNER_FIELDS}
        return {**data, "log": list(self.log), "curve": list(self.curve), "models": list(self.models)}


FIELDS_OF_STATE = tuple(f.name for f in fields(JobState))
RUNNER_FIELDS = ("queue_position", "error", "upload", "upload_error")  # set by the app's runner, not by events


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
