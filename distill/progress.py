"""Progress events: the pipeline emits them, the CLI draws tqdm bars from them, the app a progress bar and curves."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


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
    """What a job polls to know it should stop: a threading.Event, or the app's StopFile across processes."""

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
