"""Hugging Face Spaces glue: settings from space_config/, public-Space limits, ZeroGPU, optional Hub upload."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, JobConfig
from .data import read_capped
from .errors import UserError, first_line, scrub, user_message
from .hub import HUB_ID
from .job import check_resumable
from .plan import JobPlan, plan_job
from .results import Run, find_runs
from .search import variants

log = logging.getLogger(__name__)
SETTINGS_FILE = Path(__file__).resolve().parent.parent / "space_config" / "space.yaml"


@cache
def settings() -> dict[str, Any]:
    return yaml.safe_load(SETTINGS_FILE.read_text(encoding="utf-8"))


def results_dir() -> str:
    s = settings()
    return os.environ.get(s["results_dir_env"]) or s["results_dir_default"]


def on_zerogpu() -> bool:
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def hardware() -> str:
    """'zerogpu', 'gpu' or 'cpu': which defaults the Distill tab opens with. On ZeroGPU, CUDA is not touched
    outside a GPU call, so the environment says it."""
    if on_zerogpu():
        return "zerogpu"
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def is_public_space() -> bool:
    """True on the original shared Space, where visitors' jobs are limited; False on duplicates and locally."""
    return os.environ.get("SPACE_ID") == settings()["original_space"]


def default_job() -> JobConfig:
    return JobConfig.from_dict({**settings()["defaults"][hardware()], "results_dir": results_dir()})


def reference_runs() -> list[str]:
    """Folders of the published runs named by DISTILL_REFERENCE_MODELS: local folders as they are, Hub repos
    from the Hub cache (preload_from_hub fills it when the Space is built), else downloaded without a token.
    Each appears as a run named after the repo. One that cannot be had is skipped: chat must not fail on it."""
    folders = []
    for item in filter(None, (x.strip() for x in os.environ.get(settings()["reference_models_env"], "").split(","))):
        if Path(item).is_dir():
            folders.append(str(Path(item)))
            continue
        try:
            folders.append(_hub_run(item))
        except Exception as err:  # offline, gone or private: listed without it, said once in the log
            log.warning("reference models %r skipped: %s", item, scrub(first_line(err, 200)))
    return folders


def _hub_run(repo: str) -> str:
    from huggingface_hub import snapshot_download

    if not HUB_ID.match(repo):
        raise UserError(f"{repo!r} is neither a folder nor a Hub repo id")
    try:
        snapshot = snapshot_download(repo, token=False, local_files_only=True)
    except Exception:  # not in the cache: fetch it
        snapshot = snapshot_download(repo, token=False)
    named = Path(tempfile.gettempdir()) / "distill-reference" / repo.split("/")[-1]  # the run's name
    named.parent.mkdir(parents=True, exist_ok=True)
    if named.is_symlink() or named.exists():
        named.unlink()
    named.symlink_to(snapshot, target_is_directory=True)
    return str(named)


QUICK_RUN = "quick-student"  # the run a Space starts by itself when it has no model to chat with


def quick_student_on_start() -> bool:
    """Whether the app starts the quick student by itself when there is nothing to chat with: the setting
    `quick_student_on_start` (space: on a Space only; always; never), which DISTILL_QUICK_STUDENT_ON_START
    overrides. Never on ZeroGPU, where a job runs only inside a visitor's request."""
    when = os.environ.get("DISTILL_QUICK_STUDENT_ON_START") or settings()["quick_student_on_start"]
    if when not in ("space", "always", "never"):
        raise UserError(f"quick_student_on_start must be space, always or never, not {when!r}")
    return not on_zerogpu() and (when == "always" or (when == "space" and bool(os.environ.get("SPACE_ID"))))


def unwatched_seconds() -> float | None:
    """Seconds after which a job that nobody watches is stopped (`stop_unwatched_minutes`; None: never)."""
    minutes = settings().get("stop_unwatched_minutes")
    return None if minutes is None else float(minutes) * 60


def jobs_token() -> str | None:
    """The token to read and cancel runs launched on Hugging Face Jobs without a visitor's own: the HF_TOKEN
    secret of a duplicate or a local app (its owner's jobs). Never on the public Space, whose token is not the
    visitors'."""
    return None if is_public_space() else os.environ.get("HF_TOKEN") or None


def where_jobs_run() -> str:
    """What the Distill tab says before a job starts: where it runs and what survives a closed tab."""
    if on_zerogpu():
        return (
            "**On ZeroGPU a job runs only while this page is open**: each GPU slice is charged to your visit, so "
            "closing the tab *pauses* the job, keeping its finished models; resume it to go on from there. "
            "Duplicate the Space onto a GPU of your own for jobs that run without you."
        )
    text = (
        "Jobs run on this Space, not in your browser: **you can close this tab**. Once a job starts, the page's "
        "address (`?run=NAME`) and the link above its log watch it from anywhere, and Compare lists it."
    )
    if visitor_rules():
        text += " " + visitor_rules()
    if unwatched_seconds() is not None:
        text += f" A job that nobody watches for {unwatched_seconds() / 60:g} min is stopped, keeping its models."
    return text


def quick_job() -> JobConfig:
    """The quick student's job (Chat's button when there is no model), in the Space's results folder."""
    return JobConfig.from_dict({**settings()["quick_student"], "results_dir": results_dir()})


def teacher_choices() -> list[str]:
    """The teachers the Distill tab offers: those allowed on the public Space (elsewhere any id or folder too)."""
    return list(settings()["public_limits"]["teachers"])


def enforce_limits(cfg: JobConfig) -> None:
    """On the public Space, refuse jobs bigger than its limits, and say how to run them; on ZeroGPU, torch.compile
    (unsupported there); on a CPU, a precision it cannot run (fp16, or bf16 where it would be emulated).

    Every way to start work goes through here: a new job, a search, explicit layer lists and a resumed run
    (whose stored settings are checked again), so no route walks around a limit.
    """
    if on_zerogpu() and cfg.torch_compile:
        raise ConfigError("torch_compile does not work on ZeroGPU; turn it off", "torch_compile")
    if hardware() == "cpu":  # the container may have restarted on another CPU since a stopped run began
        import torch

        from .training import resolve_precision

        resolve_precision(cfg.precision, torch.device("cpu"))
    if not is_public_space():
        return
    limits = settings()["public_limits"]
    if cfg.teacher not in limits["teachers"]:  # checked first: nothing about the server's folders is probed
        raise ConfigError(
            f"on this shared Space the teacher is one of {', '.join(limits['teachers'])}; "
            "duplicate the Space to distil another",
            "teacher",
        )
    checks = [
        ("train_size", cfg.train_size or 10**9, limits["max_train_size"]),
        ("eval_size", cfg.eval_size or 10**9, limits["max_eval_size"]),
        ("epochs", cfg.epochs, limits["max_epochs"]),
        ("teacher_epochs", cfg.teacher_epochs, limits["max_teacher_epochs"]),
        ("seeds", len(cfg.seeds), limits["max_seeds"]),
        ("strategies", len(cfg.strategies), limits["max_strategies"]),
        ("students", len(variants(cfg)) * len(cfg.seeds), limits["max_students"]),
        ("batch_size", cfg.batch_size, limits["max_batch_size"]),
        ("max_length", cfg.max_length, limits["max_length"]),
        ("latency_examples", cfg.latency_examples, limits["max_latency_examples"]),
        ("students_at_once", cfg.students_at_once, limits["max_students_at_once"]),
    ]
    for name, value, limit in checks:
        if value > limit:
            raise ConfigError(
                f"{name} is limited to {limit} on this shared Space; duplicate the Space to run bigger jobs",
                "strategies" if name == "students" else name,
            )
    for path in [cfg.data, *cfg.eval_data]:
        if Path(path).is_file():  # counted as it expands: a small gzip must not become a huge table
            try:
                read_capped(Path(path), limits["max_upload_mb"] * 2**20)
            except ConfigError as err:
                message = f"uploads are limited to {limits['max_upload_mb']} MB on this shared Space: {err}"
                raise ConfigError(message, "data_file") from None


def visitor(username: str | None, session: str | None) -> str | None:
    """Who is asking, on the public Space: the Hugging Face user when signed in (OAuth), else the browser
    session. None on a duplicate or a local app, which stay open to whoever uses them."""
    if not is_public_space():
        return None
    if username:
        return f"user:{username}"
    # A caller without a session (a bare HTTP call) is nobody anyone can be again: no other caller may stop or
    # resume what it started (gradio_client keeps one session for all its calls).
    return f"session:{session}" if session else f"anonymous:{uuid.uuid4().hex}"


def share_of(username: str | None, session: str | None, address: str | None) -> tuple[str, ...]:
    """Whose share of the public Space a request uses, as the keys it is known by: the Hugging Face user when
    signed in; else the browser session and the caller's address together, since any HTTP call can name a new
    session (Gradio even makes one up for a call without one), so a visitor without a login has one share per
    address. None of them on a duplicate or a local app, which have no shares."""
    if not is_public_space():
        return ()
    if username:
        return (f"user:{username}",)
    return tuple(key for key in (session and f"session:{session}", address and f"address:{address}") if key)


def jobs_per_visitor() -> int | None:
    """Jobs a visitor may have queued or running at once on the public Space (None elsewhere: any number)."""
    return settings()["visitor_limits"]["jobs_at_once"] if is_public_space() else None


def visitor_rules() -> str:
    """The public Space's share per visitor, as the Distill tab says it ("" elsewhere)."""
    if not is_public_space():
        return ""
    limits = settings()["visitor_limits"]
    return (
        f"On this shared Space each visitor runs {limits['jobs_at_once']} job at a time and keeps their "
        f"{limits['runs_kept']} newest runs: a new job deletes their oldest finished ones. Duplicate the Space "
        "for more."
    )


def prune_runs_of(visitor: str | None, busy: Callable[[str], bool]) -> list[str]:
    """Before a visitor's new job on the public Space: delete their oldest runs that are over, so that with the
    new one they keep `runs_kept`; a run that `busy` names (queued or running in this app) or that another
    process writes is never deleted. Returns the deleted runs' names."""
    if visitor is None or not is_public_space():
        return []
    keep = settings()["visitor_limits"]["runs_kept"] - 1
    theirs = [run for run in find_runs(results_dir()) if _owned(run, visitor)]
    over = [run for run in theirs if not busy(run.name) and _is_over(run)]
    over.sort(key=_started, reverse=True)
    deleted = []
    for run in over[max(0, keep - (len(theirs) - len(over))) :]:
        trash = run.path.with_name(f".deleted-{run.name}-{uuid.uuid4().hex[:8]}")
        run.path.rename(trash)  # one atomic step: listing never sees a half-deleted run
        shutil.rmtree(trash, ignore_errors=True)
        deleted.append(run.name)
    return deleted


def _owned(run: Run, visitor: str) -> bool:
    try:
        return run.owned_by(visitor)
    except UserError:  # an owner file that cannot be read names nobody
        return False


def _started(run: Run) -> float:
    try:
        return (run.path / "config.json").stat().st_mtime
    except OSError:
        return 0.0


def _is_over(run: Run) -> bool:
    try:
        return run.status()["state"] != "running"
    except UserError:  # damaged: over, and the visitor's to lose first
        return True


def check_job(cfg: JobConfig) -> JobPlan:
    """Everything a new job must pass before it joins the queue: the Space's limits, then the job's own checks;
    returns its plan, which is what runs."""
    enforce_limits(cfg)
    return plan_job(cfg)


def check_resume(run: Run, who: str | None) -> JobConfig:
    """Everything a resume must pass before it joins the queue; returns the run's settings.

    On the public Space only the visitor who started the run may resume it, its stored settings must fit the
    limits, and the time limit counts the run's busy time over all its resumes.
    """
    if not run.owned_by(who):
        raise UserError(f"run {run.name} was started by another visitor; only they can resume it")
    check_resumable(run)
    cfg = run.job_config()
    enforce_limits(cfg)
    limit = job_time_limit()
    if limit is not None and run.busy_seconds() >= limit:
        raise UserError(
            f"run {run.name} has used this Space's {limit / 60:g} min per job; its finished models are kept; "
            "duplicate the Space to continue it"
        )
    return cfg


def job_time_limit() -> float | None:
    """Seconds a visitor's run may be busy on the public Space, over all its resumes (None elsewhere)."""
    return settings()["public_limits"]["max_job_minutes"] * 60 if is_public_space() else None


def slice_seconds() -> float | None:
    """Length of one job slice: DISTILL_SLICE_SECONDS if set, on ZeroGPU its call duration less a margin for
    saving, otherwise None (the job runs in one piece)."""
    if os.environ.get("DISTILL_SLICE_SECONDS"):
        return float(os.environ["DISTILL_SLICE_SECONDS"])
    if on_zerogpu():
        return settings()["zerogpu"]["duration_s"] - settings()["zerogpu"]["margin_s"]
    return None


def gpu_task(fn: Callable) -> Callable:
    """`fn` as a `spaces.GPU` function asking for `slice_duration` seconds (on ZeroGPU; off it the decorator
    does nothing), or `fn` itself where the `spaces` package is not installed."""
    try:
        import spaces
    except ImportError:
        return fn

    return spaces.GPU(duration=slice_duration)(_errors_as_lines(fn) if on_zerogpu() else fn)


def _errors_as_lines(fn: Callable) -> Callable:
    """`fn` raising its errors as gr.Error with their one line for the user: spaces reports any other error
    from its worker as "ZeroGPU worker error" and the type's name, losing the message."""

    @functools.wraps(fn)
    def in_worker(*args: Any) -> Iterator[Any]:
        import gradio as gr

        try:
            yield from fn(*args)
        except Exception as err:
            raise gr.Error(user_message(err), print_exception=False) from None  # user_message logged it if unexpected

    return in_worker


def slice_duration(cfg: JobConfig, resume: str | None, seconds: float | None, stop: Any) -> int:
    """The GPU seconds one slice asks for (called with the slice's own arguments): its length plus the margin
    to save, never more than the cap. ZeroGPU checks the request against the visitor's quota, and shorter
    requests are scheduled sooner, so a slice cut short by the time limit asks for less."""
    zerogpu = settings()["zerogpu"]
    length = zerogpu["duration_s"] - zerogpu["margin_s"] if seconds is None else seconds
    return int(min(zerogpu["duration_s"], max(1.0, length + zerogpu["margin_s"])))


def upload_finished(state: dict[str, Any], run: Run) -> dict[str, Any]:
    """After a job (new or resumed) completes, push its run to the Hub when set up; a failed upload is reported
    in the job's state and log, never turns the finished job into an error."""
    try:
        url = upload_run(run.path)
    except UserError as err:
        return {**state, "upload_error": str(err), "log": [*state["log"], str(err)]}
    return {**state, "upload": url, "log": [*state["log"], f"uploaded to {url}"]} if url else state


def upload_run(run_path: Path) -> str | None:
    """Push a run's folder to the Hub repo named by DISTILL_UPLOAD_REPO, with the HF_TOKEN secret; never logs it."""
    repo = os.environ.get(settings()["hub_upload"]["enabled_env"])
    token = os.environ.get("HF_TOKEN")
    if not repo or not token:
        return None
    from huggingface_hub import HfApi

    try:
        api = HfApi(token=token)
        api.create_repo(repo, exist_ok=True, private=True)
        api.upload_folder(
            folder_path=str(run_path),
            repo_id=repo,
            path_in_repo=run_path.name,
            ignore_patterns=["cache/*", "checkpoints/*", "data/*", "owner.json", "heartbeat.json", "errors.log", ".*"],
        )
    except Exception as err:  # network, permission or quota: report, never crash the app
        raise UserError(scrub(f"upload to {repo} failed: {first_line(err)}")) from None
    return f"https://huggingface.co/{repo}/tree/main/{run_path.name}"
