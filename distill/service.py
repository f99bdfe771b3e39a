"""Running a job for the app: in time slices, streamed as plain-data updates, stoppable from another request."""

from __future__ import annotations

import contextvars
import os
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .config import JobConfig
from .errors import UserError
from .job import resume_job, run_job
from .progress import Event
from .results import Run

MAX_LOG_LINES = 400
MAX_CURVE_POINTS = 2000


class StopFile:
    """A stop request any process can see: set by creating a file. On ZeroGPU a slice runs in a forked worker,
    which a threading.Event in the app's process cannot reach (and which cannot be pickled to it)."""

    def __init__(self) -> None:
        self.path = os.path.join(tempfile.gettempdir(), "distill-stop", uuid.uuid4().hex)

    def set(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.path).touch()

    def is_set(self) -> bool:
        return os.path.exists(self.path)

    def clear(self) -> None:
        Path(self.path).unlink(missing_ok=True)


def job_slice(cfg: JobConfig, resume: str | None, seconds: float | None, stop: StopFile) -> Iterator[Event | str]:
    """One time slice of a job (the whole job when `seconds` is None): its progress events, then its run folder.

    On ZeroGPU this is the `spaces.GPU` function, run in a forked worker: what it takes and yields must pickle
    (a JobConfig, strings, numbers, a StopFile, Event records), so progress comes back as yielded events.
    """
    deadline = time.monotonic() + seconds if seconds is not None else None
    events: queue.Queue[Event | None] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            if resume:
                outcome["run"] = str(resume_job(Run(Path(resume)), events.put, stop, deadline).path)
            else:
                outcome["run"] = str(run_job(cfg, events.put, stop, deadline=deadline).path)
        except BaseException as err:  # raised again on the consuming side
            outcome["error"] = err
        finally:
            events.put(None)

    thread = threading.Thread(target=work, name="distill-slice", daemon=True)
    thread.start()
    try:
        while (event := events.get()) is not None:
            yield event
    finally:  # also when the consumer goes away: the job stops cleanly, keeping its finished models
        if thread.is_alive():
            stop.set()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    yield outcome["run"]


class JobRunner:
    """One job at a time (the app's queue enforces it); `stop()` ends the running one cleanly."""

    def __init__(self) -> None:
        self._stop: StopFile | None = None
        self._owner: str | None = None
        self._lock = threading.Lock()

    def stop(self, who: str | None = None) -> bool:
        """Stop the running job (False when none runs). With `who` (a visitor of the public Space), only the
        visitor who started the job may stop it; anyone else gets a ConfigError."""
        with self._lock:
            if self._stop is None:
                return False
            if who is not None and who != self._owner:
                raise UserError("the running job was started by another visitor; only they can stop it")
            self._stop.set()
            return True

    def stream(
        self,
        cfg: JobConfig,
        poll_seconds: float = 0.5,
        slice_seconds: float | None = None,
        run_slice: Callable[..., str] = job_slice,
        time_limit: float | None = None,
        resume: str | None = None,
        owner: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield the job's state (run, stage, steps, log, curve points, finished models) until it ends.

        With `slice_seconds`, the job runs as a sequence of time slices, each one call of `run_slice` (a GPU
        call on ZeroGPU), and the run is resumed after each pause. With `time_limit` (seconds), the job is
        stopped cleanly once the run has been busy that long, over all its resumes, keeping its finished models.
        With `resume` (a run folder), that run is continued instead of starting a new one. With `owner` (a
        visitor of the public Space), only that visitor may stop the job, and the new run is marked as theirs.
        A failure of the job is raised.
        """
        used = Run(Path(resume)).busy_seconds() if resume else 0.0
        ends = time.monotonic() + time_limit - used if time_limit else None
        events: queue.Queue[Event] = queue.Queue()
        stop = StopFile()
        with self._lock:
            self._stop, self._owner = stop, owner
        state: dict[str, Any] = {
            "run": None,
            "state": "running",
            "stage": "starting",
            "done": 0,
            "total": 0,
            "log": [],
            "curve": [],
            "models": [],
        }
        worker: SliceWorker | None = None
        try:
            while True:
                seconds = slice_seconds
                if ends is not None:
                    seconds = max(0.0, min(seconds or float("inf"), ends - time.monotonic()))
                finished_before = len(Run(Path(resume)).summary()) if resume else 0
                worker = SliceWorker(run_slice, cfg, resume, seconds, stop, events)
                worker.start()
                yield from self._follow(worker, events, state, cfg, owner if not resume else None, poll_seconds)
                if worker.error is not None:
                    run_name = state["run"] or (Path(resume).name if resume else None)
                    raise refusal(worker.error, run_name) or worker.error
                run = Run(Path(worker.run_path))
                status = run.status()
                if status["state"] == "paused" and ends is not None and time.monotonic() >= ends:
                    message = (
                        f"stopped at this Space's limit of {time_limit / 60:g} min per job; finished models are "
                        "kept; duplicate the Space to run longer jobs"
                    )
                    run.set_status("stopped", message)
                    state["log"] = [*state["log"], message][-MAX_LOG_LINES:]
                    status = run.status()
                state.update(run=run.name, state=status["state"], stage=status["state"])
                yield _snapshot(state)
                if status["state"] != "paused":
                    return
                if len(run.summary()) == finished_before:
                    raise UserError(
                        f"a time slice of {slice_seconds:.0f} s is too short to finish one model; "
                        "run a smaller job, or duplicate the Space onto dedicated hardware"
                    )
                resume = str(run.path)
        finally:
            stop.set()  # a client that went away stops its job
            if worker is not None:
                worker.join()
            stop.clear()
            with self._lock:
                self._stop, self._owner = None, None

    @staticmethod
    def _follow(
        worker: SliceWorker,
        events: queue.Queue[Event],
        state: dict[str, Any],
        cfg: JobConfig,
        owner: str | None,
        poll_seconds: float,
    ) -> Iterator[dict[str, Any]]:
        """The job's state after each batch of a running slice's events, until the slice ends; a new run is
        marked as its owner's as soon as its name is known."""
        owned = owner is None
        while worker.is_alive() or not events.empty():
            worker.join(timeout=poll_seconds)
            if _drain(events, state):
                if not owned and state["run"]:
                    Run(Path(cfg.results_dir) / state["run"]).set_owner(owner)
                    owned = True
                yield _snapshot(state)


class SliceWorker(threading.Thread):
    """One slice in a thread of its own, started with the caller's context: on ZeroGPU, spaces finds the
    visitor's request there and charges the slice to that visitor's quota rather than the Space's. Its events
    go to `events`; its run folder ends in `run_path`, or its error in `error`."""

    def __init__(self, run_slice: Callable[..., Iterator], cfg: JobConfig, resume: str | None, seconds, stop, events):
        super().__init__(name="distill-job", daemon=True)
        self.run_slice, self.arguments, self.events = run_slice, (cfg, resume, seconds, stop), events
        self.context = contextvars.copy_context()
        self.run_path: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        self.context.run(self._work)

    def _work(self) -> None:
        try:
            for item in self.run_slice(*self.arguments):
                if isinstance(item, Event):
                    self.events.put(item)
                else:
                    self.run_path = item
        except BaseException as err:  # handed to the streaming side, which raises it there
            self.error = err


def refusal(err: BaseException, run: str | None) -> UserError | None:
    """ZeroGPU's refusal of a slice (quota exceeded, or a duration over the cap) as one clear line that says
    the finished models are kept; None for any other error."""
    title = str(getattr(err, "title", "") or "")
    if not ("ZeroGPU" in title and ("quota" in title.lower() or "duration" in title.lower())):
        return None  # any other error, a worker's included, is the job's own: reported as it is
    message = getattr(err, "message", None) or str(err)  # gr.Error keeps its text in .message
    text = f"{title} {message}"
    kept = f"run {run} is paused with its finished models; resume it later" if run else "nothing was started"
    return UserError(
        f"{text.splitlines()[0][:300]}. {kept}: the daily quota resets 24 h after its first use, signed-in "
        "visitors get more, and a duplicate of this Space on your own hardware has no quota"
    )


def _drain(events: queue.Queue, state: dict[str, Any]) -> bool:
    changed = False
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return changed
        changed = True
        state.update(done=event.done, total=event.total, stage=event.stage or state["stage"])
        state["run"] = event.metrics.get("run", state["run"])
        if event.message:
            state["log"] = [*state["log"], event.message][-MAX_LOG_LINES:]
        if event.kind == "step":
            state["curve"].append({"step": event.done, "stage": event.stage, "loss": event.metrics.get("loss")})
            if len(state["curve"]) > MAX_CURVE_POINTS:  # long jobs: keep every other point
                state["curve"] = state["curve"][::2]
        if event.kind == "model":
            keys = ("model", "strategy", "layers", "accuracy", "failed")
            state["models"].append({k: event.metrics.get(k) for k in keys})


def _snapshot(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "log": list(state["log"]), "curve": list(state["curve"]), "models": list(state["models"])}
