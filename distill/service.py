"""Running a job for the app: in a worker thread, streamed as plain-data updates, stoppable from another request."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from .config import JobConfig
from .job import run_job
from .progress import Event
from .results import Run

MAX_LOG_LINES = 400
MAX_CURVE_POINTS = 2000


class JobRunner:
    """One job at a time (the app's queue enforces it); `stop()` ends the running one cleanly."""

    def __init__(self) -> None:
        self._stop: threading.Event | None = None
        self._lock = threading.Lock()

    def stop(self) -> bool:
        with self._lock:
            if self._stop is None:
                return False
            self._stop.set()
            return True

    def stream(self, cfg: JobConfig, poll_seconds: float = 0.5) -> Iterator[dict[str, Any]]:
        """Yield the job's state (run, stage, steps, log, curve points, finished models) until it ends.

        A ConfigError or any other failure of the job is raised here, after the last update.
        """
        events: queue.Queue[Event] = queue.Queue()
        stop = threading.Event()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["run"] = run_job(cfg, events.put, stop)
            except BaseException as err:  # handed to the streaming side, which re-raises it
                outcome["error"] = err

        with self._lock:
            self._stop = stop
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
        worker = threading.Thread(target=work, name="distill-job", daemon=True)
        worker.start()
        try:
            while worker.is_alive() or not events.empty():
                worker.join(timeout=poll_seconds)
                if _drain(events, state):
                    yield _snapshot(state)
            if "error" in outcome:
                raise outcome["error"]
            run: Run = outcome["run"]
            status = run.status()
            state.update(run=run.name, state=status["state"], stage=status["state"])
            yield _snapshot(state)
        finally:
            stop.set()  # a client that went away stops its job
            worker.join()
            with self._lock:
                self._stop = None


def _drain(events: queue.Queue, state: dict[str, Any]) -> bool:
    changed = False
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return changed
        changed = True
        state.update(done=event.done, total=event.total, stage=event.stage or state["stage"])
        if event.message:
            state["log"] = [*state["log"], event.message][-MAX_LOG_LINES:]
            if state["run"] is None and event.message.startswith("run "):
                state["run"] = event.message.split()[1].rstrip(":")
        if event.kind == "step":
            state["curve"].append({"step": event.done, "stage": event.stage, "loss": event.metrics.get("loss")})
            if len(state["curve"]) > MAX_CURVE_POINTS:  # long jobs: keep every other point
                state["curve"] = state["curve"][::2]
        if event.kind == "model":
            state["models"].append({k: event.metrics.get(k) for k in ("model", "strategy", "layers", "accuracy")})


def _snapshot(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "log": list(state["log"]), "curve": list(state["curve"]), "models": list(state["models"])}
