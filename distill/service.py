"""Jobs for the app: a worker the app owns runs them one at a time, in time slices where the hardware asks for
it; any number of watchers follow a job by its run's name, and none of them is needed for it to go on."""

from __future__ import annotations

import contextvars
import itertools
import os
import queue
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import JobConfig
from .errors import UserError, first_line, user_message
from .job import resume_job, run_job
from .lease import RunBusy
from .plan import JobPlan, plan_job
from .progress import Event, JobState
from .results import Run

PAUSE = "pause"  # a StopFile holding this asks for a pause: the run stays resumable, marked paused
LIVE = ("queued", "running")
KEEP_FINISHED = 50  # finished jobs kept in memory for their watchers (their run folders keep everything anyway)
# A watcher is sent the unchanged state after this long without news: Gradio ends a watcher that is cancelled or
# gone only between two states, so a queued job's watcher would otherwise hold its thread until the job moves.
KEEPALIVE_SECONDS = 2.0
PUBLISH_SECONDS = 0.25  # a running job's steps reach its watchers at most this often


class StopFile:
    """A stop request any process can see: set by creating a file, whose text says why (or asks for a pause). On
    ZeroGPU a slice runs in a forked worker, which a threading.Event in the app's process cannot reach."""

    def __init__(self) -> None:
        self.path = os.path.join(tempfile.gettempdir(), "distill-stop", uuid.uuid4().hex)

    def set(self, reason: str = "") -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        Path(self.path).write_text(reason, encoding="utf-8")

    def is_set(self) -> bool:
        return os.path.exists(self.path)

    def reason(self) -> str:
        try:
            return Path(self.path).read_text(encoding="utf-8")
        except OSError:
            return ""

    def pausing(self) -> bool:
        return self.reason() == PAUSE

    def clear(self) -> None:
        Path(self.path).unlink(missing_ok=True)


def job_slice(plan: JobPlan, resume: str | None, seconds: float | None, stop: StopFile) -> Iterator[Event | str]:
    """One time slice of a job (the whole job when `seconds` is None): its progress events, then its run folder.

    On ZeroGPU this is the `spaces.GPU` function, run in a forked worker: what it takes and yields must pickle
    (a JobPlan, strings, numbers, a StopFile, Event records), so progress comes back as yielded events.
    """
    deadline = time.monotonic() + seconds if seconds is not None else None
    events: queue.Queue[Event | None] = queue.Queue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            if resume:
                outcome["run"] = str(resume_job(Run(Path(resume)), events.put, stop, deadline, plan).path)
            else:
                outcome["run"] = str(run_job(plan, events.put, stop, deadline=deadline).path)
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


@dataclass
class Job:
    """One submitted job: its settings, who may stop it, and the state its watchers see (`snapshot`)."""

    run: str
    plan: JobPlan
    resume: str | None
    owner: str | None
    slice_seconds: float | None
    time_limit: float | None
    attached: bool  # ZeroGPU: runs only while watched (a GPU call needs its visitor's request)
    context: contextvars.Context
    share: tuple[str, ...] = ()  # the keys of the visitor whose share of the Space it uses (none: unlimited)
    event: str | None = None  # the id of the request that submitted it, which its client may cancel
    stop: StopFile = field(default_factory=StopFile)
    view: JobState = field(init=False)
    owned: bool = field(init=False)
    version: int = 0
    over: bool = False
    error: BaseException | None = None
    watchers: int = 0
    unwatched_since: float = field(default_factory=time.monotonic)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.view = JobState(self.run, "queued", "queued")
        self.owned = self.owner is None or self.resume is not None  # its run folder says whose it is

    @property
    def cfg(self) -> JobConfig:
        return self.plan.cfg

    def publish(self, **changes: Any) -> None:
        with self.changed:
            self.view.update(**changes)
            self.version += 1
            self.changed.notify_all()

    def snapshot(self) -> dict[str, Any]:
        with self.changed:
            return self.view.snapshot()


class JobRunner:
    """The app's jobs: submitted ones wait in a queue and run one at a time in a worker thread the runner owns,
    so a job goes on when the client that started it goes away. Watchers follow a job by its run's name."""

    def __init__(
        self,
        run_slice: Callable[..., Iterator] = job_slice,
        unwatched_seconds: float | None = None,
        jobs_per_visitor: Callable[[], int | None] = lambda: None,
    ):
        self.run_slice = run_slice
        self.unwatched_seconds = unwatched_seconds  # stop a job nobody has watched this long (None: never)
        self.jobs_per_visitor = jobs_per_visitor  # queued or running jobs a visitor may have at once (None: any)
        self.on_complete: Callable[[dict[str, Any], Run], dict[str, Any]] | None = None  # e.g. a Hub upload
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._running: Job | None = None
        self._lock = threading.Condition()
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------ submitting, stopping, finding

    def submit(
        self,
        job: JobConfig | JobPlan,
        *,
        resume: str | None = None,
        owner: str | None = None,
        slice_seconds: float | None = None,
        time_limit: float | None = None,
        attached: bool = False,
        share: tuple[str, ...] | None = None,
        event: str | None = None,
    ) -> Job:
        """Queue a job (its plan, or settings it plans now: a job that cannot work is refused here) and return it
        at once: a new run, or `resume`, a run folder, continued. A new run is named now, so it can be watched
        while it waits. Its slices run in the caller's context (on ZeroGPU, spaces finds the visitor's request
        there and charges the visitor's quota). `share`: the keys of the visitor whose share of the Space it uses
        (the owner unless given); `event`: the submitting request, for `cancel`."""
        share = share if share is not None else (owner,) if owner else ()
        plan = job if isinstance(job, JobPlan) else plan_job(job)
        with self._lock:
            self.check_room(share)
            if resume:
                name = Path(resume).name
            else:
                name = plan.cfg.run_name or self._free_name(Path(plan.cfg.results_dir))
                plan = plan if plan.cfg.run_name else plan.named(name)
            if self.live(name):
                raise UserError(f"run {name} is already queued or running; watch it instead")
            job = Job(
                name, plan, resume, owner, slice_seconds, time_limit, attached, contextvars.copy_context(), share, event
            )
            self._jobs[name] = job
            self._queue.append(job)
            self._renumber()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="distill-jobs", daemon=True)
                self._worker.start()
            self._lock.notify_all()
        return job

    def _free_name(self, root: Path) -> str:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for name in itertools.chain([stamp], (f"{stamp}-{i}" for i in itertools.count(2))):
            if name not in self._jobs and not (root / name).exists():
                return name
        raise AssertionError("unreachable")

    def check_room(self, visitor: tuple[str, ...]) -> None:
        """Refuse a visitor (known by any of their keys: login, session, address) who already has
        `jobs_per_visitor` queued or running jobs: one visitor must not hold a shared Space. No limit without
        keys (a duplicate, a local app) or a limit."""
        limit = self.jobs_per_visitor()
        if not visitor or limit is None:
            return
        with self._lock:
            theirs = [job for job in self._jobs.values() if not job.over and set(job.share) & set(visitor)]
        if len(theirs) >= limit:
            job = theirs[0]
            raise UserError(
                f"you already have a job on this shared Space (run {job.run}, {job.snapshot()['state']}); each "
                f"visitor runs {limit} at a time: watch it, or stop it, before starting another"
            )

    def live(self, run: str) -> Job | None:
        """The queued or running job of that run, if this runner has one."""
        job = self._jobs.get(run)
        return job if job is not None and not job.over else None

    def job(self, run: str) -> Job | None:
        """This runner's job of that run, live or finished (finished ones are kept for a while)."""
        return self._jobs.get(run)

    def running(self) -> str | None:
        return self._running.run if self._running else None

    def stop(self, who: str | None = None, run: str | None = None) -> bool:
        """Stop a job cleanly (False when there is none): `run`'s, else `who`'s own (queued or running), else the
        running one. A queued job is taken out of the queue and never creates its run. With `who` (a visitor of
        the public Space), only the visitor who started the job may stop it; anyone else gets a UserError."""
        with self._lock:
            theirs = next((j for j in self._jobs.values() if who and j.owner == who and not j.over), None)
            job = self.live(run) if run else theirs or self._running
            if job is None:
                return False
            if who is not None and who != job.owner:
                which = f"run {job.run}" if run else "the running job"
                raise UserError(f"{which} was started by another visitor; only they can stop it")
            self._end(job)
            return True

    def cancel(self, event: str) -> bool:
        """The client of the request that submitted a job cancelled it (gradio_client's Job.cancel()): that job,
        and no other, leaves the queue if it is still there, creating no run. A running job goes on, as when its
        client goes away: only a stop ends it. False when no queued job has that event."""
        with self._lock:
            job = next((j for j in self._queue if event and j.event == event), None)
            if job is None:
                return False
            self._end(job)
            return True

    def _end(self, job: Job, reason: str = "") -> None:
        """A queued job leaves the queue (it never creates its run); a running one is asked to stop (`reason`,
        or PAUSE to pause it)."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                self._renumber()
                self._finish(job, state="cancelled", stage="cancelled")
            elif job is self._running:
                job.stop.set(reason)

    def _renumber(self) -> None:
        ahead = 1 if self._running else 0
        for position, job in enumerate(self._queue):
            job.publish(queue_position=position + ahead)

    def _finish(self, job: Job, **changes: Any) -> None:
        job.publish(queue_position=None, **changes)
        with job.changed:
            job.over = True
            job.changed.notify_all()
        finished = [name for name, j in self._jobs.items() if j.over]
        for name in finished[:-KEEP_FINISHED]:
            del self._jobs[name]

    # ------------------------------------------------------------ watching

    def watch(self, job: Job, poll_seconds: float = 0.5, *, starter: bool = False) -> Iterator[dict[str, Any]]:
        """The job's state each time it changes, until it ends; its failure is raised. Any number may watch; a
        watcher leaving changes nothing, except the `starter`'s (the request that submitted it) of an attached
        job (ZeroGPU, where the job's GPU calls are charged to that visitor): a running one then pauses, keeping
        its finished models, and a queued one is dropped."""
        with job.changed:
            job.watchers += 1
        try:
            seen, sent = -1, time.monotonic()
            while True:
                with job.changed:
                    job.changed.wait_for(lambda seen=seen: job.version != seen or job.over, timeout=poll_seconds)
                    news = job.version != seen or job.over
                    if not news and time.monotonic() - sent < KEEPALIVE_SECONDS:
                        continue
                    seen, over, snapshot = job.version, job.over, job.view.snapshot()
                yield snapshot
                sent = time.monotonic()
                if over:
                    break
            if job.error is not None:
                raise job.error
        finally:
            with job.changed:
                job.watchers -= 1
                if job.watchers == 0:
                    job.unwatched_since = time.monotonic()
            if starter and job.attached and not job.over:
                self._end(job, PAUSE)

    def stream(
        self,
        job: JobConfig | JobPlan,
        poll_seconds: float = 0.5,
        slice_seconds: float | None = None,
        time_limit: float | None = None,
        resume: str | None = None,
        owner: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Submit a job and watch it to its end (what a caller that waits for its job wants)."""
        submitted = self.submit(job, resume=resume, owner=owner, slice_seconds=slice_seconds, time_limit=time_limit)
        yield from self.watch(submitted, poll_seconds)

    # ------------------------------------------------------------ the worker

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._lock.wait()
                job = self._queue.popleft()
                self._running = job
                self._renumber()
            try:
                self._execute(job)
            except BaseException as err:  # handed to the watchers, who raise it; the worker goes on
                job.error = err
                with job.changed:
                    job.view.add_log(user_message(err))
                with self._lock:  # a run another process writes (RunBusy) is that process's: this job failed
                    state = "failed" if isinstance(err, RunBusy) else self._stored_state(job) or "failed"
                    self._finish(job, state=state, stage=state, error=user_message(err))
            finally:
                job.stop.clear()
                with self._lock:
                    self._running = None
                    if not job.over:
                        self._finish(job)
                    self._renumber()

    @staticmethod
    def _folder(job: Job) -> Path:
        return Path(job.resume) if job.resume else Path(job.cfg.results_dir) / job.run

    def _stored_state(self, job: Job) -> str | None:
        """The state the job's run folder records (a refused ZeroGPU slice leaves it paused), if it has one."""
        try:
            return Run(self._folder(job)).status()["state"] if self._folder(job).is_dir() else None
        except Exception:  # a damaged folder: the job's own error says what happened
            return None

    def _execute(self, job: Job) -> None:
        """Run the job to its end: in one piece here, or slice after slice (resuming the run after each pause)
        where slices are asked for (ZeroGPU), stopped cleanly once the run has been busy `time_limit` seconds
        over all its resumes."""
        resume = job.resume
        used = Run(Path(resume)).busy_seconds() if resume else 0.0
        ends = time.monotonic() + job.time_limit - used if job.time_limit else None
        job.publish(state="running", stage="starting", queue_position=None)
        while True:
            seconds = job.slice_seconds
            if ends is not None:
                seconds = max(0.0, min(seconds or float("inf"), ends - time.monotonic()))
            finished_before = len(Run(Path(resume)).summary()) if resume else 0
            run = (
                self._run_plainly(job, resume, seconds)
                if job.slice_seconds is None
                else self._slice(job, resume, seconds)
            )
            status = run.status()
            if status["state"] == "paused" and ends is not None and time.monotonic() >= ends:
                message = (
                    f"stopped at this Space's limit of {job.time_limit / 60:g} min per job; finished models are "
                    "kept; duplicate the Space to run longer jobs"
                )
                run.set_status("stopped", message)
                job.view.add_log(message)
                status = run.status()
            paused_by_visitor = job.stop.pausing()
            if status["state"] != "paused" or paused_by_visitor:
                final = {**job.snapshot(), "run": run.name, "state": status["state"], "stage": status["state"]}
                if status["state"] == "completed" and self.on_complete is not None:
                    final = self.on_complete(final, run)
                job.publish(**final)
                return
            job.publish(stage="paused")
            if len(run.summary()) == finished_before:
                raise UserError(
                    f"a time slice of {job.slice_seconds:.0f} s is too short to finish one model; "
                    "run a smaller job, or duplicate the Space onto dedicated hardware"
                )
            resume = str(run.path)

    def _run_plainly(self, job: Job, resume: str | None, seconds: float | None) -> Run:
        """The job in this thread, paused after `seconds` if given. Its events are published as they come, its
        training steps at most every PUBLISH_SECONDS (a GPU steps faster than a watcher needs to hear)."""
        deadline = time.monotonic() + seconds if seconds is not None else None
        pending: list[Event] = []
        published = time.monotonic()

        def on_event(event: Event) -> None:
            nonlocal published
            pending.append(event)
            if event.kind != "step" or time.monotonic() - published >= PUBLISH_SECONDS:
                self._news(job, pending)
                pending.clear()
                published = time.monotonic()

        try:
            if resume:
                return resume_job(Run(Path(resume)), on_event, job.stop, deadline, job.plan)
            return run_job(job.plan, on_event, job.stop, deadline=deadline)
        finally:
            self._news(job, pending)

    def _slice(self, job: Job, resume: str | None, seconds: float | None) -> Run:
        """One slice of the job (`run_slice`, on ZeroGPU a GPU call in a forked worker) in a thread of its own
        run in the submitter's context; its events are published as they come back."""
        events: queue.Queue[Event] = queue.Queue()
        worker = SliceWorker(self.run_slice, job.plan, resume, seconds, job.stop, events, job.context.copy())
        worker.start()
        while worker.is_alive() or not events.empty():
            worker.join(timeout=PUBLISH_SECONDS)
            news = []
            while not events.empty():
                news.append(events.get_nowait())
            self._news(job, news)
        if worker.error is not None:
            raise refusal(worker.error, job.run if self._folder(job).is_dir() else None) or worker.error
        return Run(Path(worker.run_path))

    def _news(self, job: Job, events: list[Event]) -> None:
        """Publish a job's events; a new run is marked as its owner's as soon as its folder exists, and a job that
        nobody has watched for `unwatched_seconds` is stopped."""
        if events:
            with job.changed:
                for event in events:
                    job.view.apply(event)
            job.publish()
            if not job.owned and self._folder(job).is_dir():
                Run(self._folder(job)).set_owner(job.owner)
                job.owned = True
        idle = time.monotonic() - job.unwatched_since
        unwatched = self.unwatched_seconds is not None and job.watchers == 0 and idle > self.unwatched_seconds
        if unwatched and not job.stop.is_set():
            job.stop.set(f"stopped: nobody watched it for {self.unwatched_seconds / 60:g} min (this Space's setting)")


class SliceWorker(threading.Thread):
    """One slice in a thread of its own, run in the submitter's context: on ZeroGPU, spaces finds the visitor's
    request there and charges the slice to that visitor's quota rather than the Space's. Its events go to
    `events`; its run folder ends in `run_path`, or its error in `error`."""

    def __init__(self, run_slice: Callable[..., Iterator], plan, resume, seconds, stop, events, context):
        super().__init__(name="distill-job", daemon=True)
        self.run_slice, self.arguments, self.events = run_slice, (plan, resume, seconds, stop), events
        self.context = context
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
        except BaseException as err:  # handed to the runner, which raises it to the watchers
            self.error = err


def watch_folder(run: Run, poll_seconds: float = 2.0) -> Iterator[dict[str, Any]]:
    """A run that no job of this process runs, watched through its folder: its saved progress each time it
    changes, until it is no longer running (written by another process, a Jobs container on a shared bucket,
    or already over)."""
    last = None
    while True:
        view = run.progress()
        if view != last:
            yield view
            last = view
        if view["state"] != "running":
            return
        time.sleep(poll_seconds)


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
        f"{first_line(text)}. {kept}: the daily quota resets 24 h after its first use, signed-in "
        "visitors get more, and a duplicate of this Space on your own hardware has no quota"
    )
