"""Gradio app: Distill, Compare and Chat tabs over the `distill` library, plus a stable Python API.

Run locally with `python app.py` (http://127.0.0.1:7860); on Hugging Face Spaces it is the Space's app_file.
Every function here only wires components to `distill/`; the training, data and reporting logic lives there.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

with contextlib.suppress(ImportError):  # on ZeroGPU, `spaces` comes before anything that touches CUDA (torch)
    import spaces  # noqa: F401

import gradio as gr
import gradio.queueing
import gradio.utils
import pandas as pd
from fastapi.exception_handlers import http_exception_handler
from gradio.context import LocalContext
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from distill import hf_jobs, space
from distill.comparison import comparison
from distill.config import PRECISIONS, RUN_NAME, ConfigError, JobConfig
from distill.errors import UserError, echo, strip_paths, user_message
from distill.inference import MAX_LENGTH_RANGE, TEMPERATURE_RANGE, chat, chat_models, describe
from distill.lease import BEAT_SECONDS, holder_line, is_alive, read_lease, request_stop
from distill.plan import JobPlan, plan_job
from distill.plots import curves, step_loss_figure
from distill.results import DAMAGED, DamagedRun, Run, download_copies, find_runs, finite, list_runs, open_run
from distill.results import run_label as describe_run
from distill.service import JobRunner, job_slice, watch_folder
from distill.strategies import DESCRIPTIONS, parse_layer_list
from distill.tables import display_rows
from distill.wording import glossary, notes, plan_line, teacher_name, verdict

REFERENCE_DIR = Path(__file__).resolve().parent / "results"  # committed runs, e.g. results/reference
# decorated once, as ZeroGPU expects
log = logging.getLogger("distill.app")
RUNNER = JobRunner(space.gpu_task(job_slice), space.unwatched_seconds(), space.jobs_per_visitor)
RUNNER.on_complete = space.upload_finished
DEFAULT = space.default_job()
CHAT_EXAMPLES = Path(__file__).parent / "examples" / "chat_examples.jsonl"
EXAMPLES = [json.loads(line) for line in CHAT_EXAMPLES.read_text(encoding="utf-8").splitlines()]
DATA_CHOICES = ("mnli-sample", "glue", "upload")
NO_STUDENTS = (
    "No students yet: train a quick one with the button below (about two minutes), or run a job in the "
    "**Distill** tab (or `python -m distill run`), then pick it here."
)


@functools.cache
def reference_models() -> tuple[str, ...]:
    """The published runs named by DISTILL_REFERENCE_MODELS, with their models (Chat opens on their best student):
    fetched on first use, not when the app is imported."""
    return tuple(space.reference_runs())


def roots(published: bool = True) -> list[str]:
    """Where runs are listed from: the app's results folder, the committed reference runs and (`published`) the
    published ones. The page is built from the first two; its opening events list them all."""
    return [space.results_dir(), str(REFERENCE_DIR), *(reference_models() if published else ())]


def find_run(name: str, where: list[str] | None = None):
    """A run by name only (in `where`, default: every root): visitors never reach folders by path."""
    if not isinstance(name, str) or not name.strip():
        raise UserError("name a run: /list_runs (or the Compare tab's list) gives their names")
    return open_run(name, where or roots(), allow_paths=False)


CSS = """
.narrow-only { display: none; }
@media (max-width: 640px) { .narrow-only { display: block; } }
"""  # shown on phones only: the cue that the comparison table scrolls sideways


class Refusal(gr.Error):
    """A gr.Error whose text is its message (MCP clients are sent str(error), which for gr.Error is its repr), and
    which Gradio does not print as a traceback: a refusal is no fault of the server's, and an unexpected error's
    traceback is already in the log, with tokens scrubbed, from `errors.user_message`."""

    def __init__(self, message: str) -> None:
        super().__init__(message, print_exception=False)

    def __str__(self) -> str:
        return str(self.message)


def user_errors(fn):
    """Turn errors into gr.Error, so the UI and API clients get one clear line (`errors.user_message`): never a
    traceback, an exception type, a token or a server path. Answers (each streamed one too) pass through
    `results.finite`: Gradio would send a NaN or infinity as a bare `NaN`, which is no JSON."""

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                with contextlib.closing(fn(*args, **kwargs)) as answers:  # a client that leaves closes it at once
                    for answer in answers:
                        yield finite(answer)
            except gr.Error:
                raise
            except Exception as err:
                raise Refusal(user_message(err)) from None

        return stream

    @functools.wraps(fn)
    def call(*args, **kwargs):
        try:
            return finite(fn(*args, **kwargs))
        except gr.Error:
            raise
        except Exception as err:
            raise Refusal(user_message(err)) from None

    return call


def refusals(check, arguments: dict, stand_ins: dict | None = None) -> dict[str, str]:
    """Every input `check` refuses, with its message, by name: each refused input's `stand_ins` value (one that
    passes) takes its place while the others are checked, so one click shows every setting to fix. A refusal
    that is about no input (a visitor's share, a run's state) is not among them."""
    arguments, refused = dict(arguments), {}
    while True:
        try:
            check(arguments)
            return refused
        except Exception as err:
            at = getattr(err, "setting", None)
            if at not in arguments or at in refused:
                return refused
            refused[at] = user_message(err)
            if at not in (stand_ins or {}):
                return refused
            arguments[at] = stand_ins[at]


def checked_before_queue(check, stand_ins: dict | None = None):
    """Make `check` (called with an event function's arguments by name) the event's Gradio validator: it runs
    when the event is submitted, before it joins the training queue, so a job that cannot work is refused at
    once instead of after the jobs ahead of it. Each refused input shows its message next to it (`refusals`).
    Any other refusal is left to the event function, which repeats the checks: job events never wait in Gradio's
    queue (the app's worker is the jobs' queue), so it answers at once, in one line (Gradio shows a validator's
    refusal as a list of inputs, and a raised one to API clients as a bare "400 Bad Request")."""

    def attach(fn):
        signature = inspect.signature(fn)
        inputs = [name for name in signature.parameters if name not in ("progress", "request")]

        @functools.wraps(fn)
        def validator(*args, **kwargs):
            refused = refusals(check, signature.bind(*args, **kwargs).arguments, stand_ins)
            return [gr.validate(name not in refused, refused.get(name, "")) for name in inputs]

        fn.validator = validator
        return fn

    return attach


def who(request: gr.Request | None) -> str | None:
    """The visitor, on the public Space (for stop and resume); None on a duplicate or a local app."""
    return space.visitor(getattr(request, "username", None), getattr(request, "session_hash", None))


def share(request: gr.Request | None) -> tuple[str, ...]:
    """Whose share of the public Space the request uses (`space.share_of`); none on a duplicate or a local app."""
    headers = getattr(request, "headers", None) or {}
    # A Space's proxy appends the caller's address to X-Forwarded-For; the entries before it are the caller's own
    # to write, so only the last one counts.
    forwarded = (headers.get("x-forwarded-for") or "").split(",")[-1].strip()
    address = forwarded or getattr(getattr(request, "client", None), "host", None)
    return space.share_of(getattr(request, "username", None), getattr(request, "session_hash", None), address)


# ---------------------------------------------------------------- public API (plain JSON-able data)


def uploaded_file(value: dict | str | None) -> str | None:
    """The server path of a file the visitor uploaded (Gradio's file payload, or its path); any other path on
    the server is refused. /run_job takes its inputs unprocessed, so this is the check Gradio would make."""
    path = value.get("path") if isinstance(value, dict) else value
    if not path:
        return None
    if not isinstance(path, str) or not gr.utils.is_in_or_equal(path, gr.utils.get_upload_folder()):
        raise ConfigError("data_file must be a file uploaded with the job", "data_file")
    return path


def _text(value) -> str:
    return "" if value is None else str(value)


# The Distill form's fields by setting: the form shows these labels, and every message about a setting names it
# by its label (`in_form_words`). A label's "(…)" is its hint: "Train examples must be a whole number (0 = all)".
LABELS = {
    "teacher": "Teacher",
    "data": "Data",
    "data_file": "Your data file (CSV / TSV / JSONL with premise, hypothesis, label)",
    "train_size": "Train examples (0 = all)",
    "eval_size": "Validation examples per split (0 = all)",
    "student_layers": "Student layers (0 = half)",
    "seeds": "Seeds",
    "strategies": "Strategies",
    "layer_list": "Explicit layer list (optional)",
    "epochs": "Student epochs",
    "teacher_epochs": "Teacher epochs",
    "batch_size": "Batch size",
    "learning_rate": "Learning rate",
    "temperature": "Temperature T",
    "weight_ce": "Weight: hard-label CE",
    "weight_kl": "Weight: KL (× T²)",
    "weight_cos": "Weight: cosine on logits",
    "weight_hidden": "Weight: hidden states",
    "precision": "Precision",
    "teacher_8bit": "8-bit teacher (bitsandbytes)",
    "optimizer_8bit": "8-bit AdamW (bitsandbytes)",
    "run_name": "Run name (optional)",
    "search": "Search instead of comparing strategies",
    "search_temperatures": "Temperatures",
    "search_learning_rates": "Learning rates",
    "search_loss_weights": "Loss weights ce:kl:cos",
    "teacher_seeds": "Teacher seeds (optional)",
}


def shortest(value: float) -> str:
    """A number as a person would type it: 2, 0.5, 5e-5."""
    mantissa, exponent = f"{value:e}".split("e")
    return min(f"{value:g}", f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}", key=len)


def form_values(cfg: JobConfig) -> dict:
    """The Distill form showing `cfg`'s settings: the form as it opens (the defaults), and a watched run's."""
    lists = [s for s in cfg.strategies if parse_layer_list(s) is not None]  # the form holds one, in its own field
    return {
        "teacher": cfg.teacher,
        "data": cfg.data if cfg.data in ("mnli-sample", "glue") else "upload",
        "data_file": None,
        "train_size": cfg.train_size or 0,
        "eval_size": cfg.eval_size or 0,
        "student_layers": cfg.student_layers or 0,
        "seeds": " ".join(map(str, cfg.seeds)),
        "strategies": [s for s in cfg.strategies if s not in lists],
        "layer_list": lists[0] if lists else "",
        "epochs": cfg.epochs,
        "teacher_epochs": cfg.teacher_epochs,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "temperature": cfg.temperature,
        **{name: round(getattr(cfg, name), 4) for name in ("weight_ce", "weight_kl", "weight_cos", "weight_hidden")},
        "precision": cfg.precision,
        "teacher_8bit": cfg.teacher_8bit,
        "optimizer_8bit": cfg.optimizer_8bit,
        "run_name": cfg.run_name or "",
        "search": cfg.search,
        "search_temperatures": " ".join(map(shortest, cfg.search_temperatures)),
        "search_learning_rates": " ".join(map(shortest, cfg.search_learning_rates)),
        "search_loss_weights": " ".join(cfg.search_loss_weights),
        "teacher_seeds": " ".join(map(str, cfg.teacher_seeds or [])),
    }


FORM_START = form_values(DEFAULT)  # the form as it opens, a valid job; each value also stands in for a refused one
# What stands in for a refused field while the others are checked: the form's opening values, but a layer list
# that passes for any teacher, so that strategies left empty beside a faulty list are not refused for it too.
STAND_INS = {**FORM_START, "layer_list": "0"}
SECTIONS = {  # the fields of the form's folded sections, by section
    "training_section": (
        *("epochs", "teacher_epochs", "batch_size", "learning_rate", "temperature"),
        *("weight_ce", "weight_kl", "weight_cos", "weight_hidden"),
        *("precision", "teacher_8bit", "optimizer_8bit", "run_name", "teacher_seeds"),
    ),
    "search_section": ("search", "search_temperatures", "search_learning_rates", "search_loss_weights"),
}
WHOLE_NUMBERS = ("train_size", "eval_size", "student_layers", "epochs", "teacher_epochs", "batch_size")
NUMBERS = (*WHOLE_NUMBERS, "learning_rate", "temperature", "weight_ce", "weight_kl", "weight_cos", "weight_hidden")


def short_label(name: str) -> str:
    """A field's label without its hint: 'Train examples (0 = all)' -> 'Train examples'."""
    return LABELS[name].split(" (")[0]


def in_form_words(text: str, setting: str | None) -> str:
    """A message about the job's settings in the form's words: every setting's name (train_size, and the
    message's own subject, such as epochs) is replaced by its field's label, and a message about a field starts
    with its label: 'Explicit layer list: layer index 9 is out of range …'."""
    for name in LABELS:
        if "_" in name or (name == setting and text.startswith(name + " ")):
            text = re.sub(rf"\b{name}\b", short_label(name), text)
    if setting in LABELS and not text.startswith(short_label(setting)):
        return f"{short_label(setting)}: {text}"
    return text[:1].upper() + text[1:]


@contextlib.contextmanager
def form_words(arguments: dict) -> Iterator[None]:
    """A ConfigError raised in the block, worded with the form's labels and attached to the field it is about
    (a fault of the uploaded data is the file field's)."""
    try:
        yield
    except ConfigError as err:
        at = "data_file" if err.setting == "data" and arguments.get("data") == "upload" else err.setting
        raise ConfigError(in_form_words(str(err), at), at) from None


def form_number(name: str, value) -> int | float:
    """A number field's value as sent: an emptied field (text typed into a number field empties it) or text is
    refused by the field's label, before any default could stand in for it."""
    whole = name in WHOLE_NUMBERS
    hint = LABELS[name][len(short_label(name)) :]
    wanted = f"{name} must be {'a whole number' if whole else 'a number'}{hint}"
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        raise ConfigError(wanted, name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{wanted}, not {echo(value)}", name) from None
    if whole and not number.is_integer():
        raise ConfigError(f"{wanted}, not {echo(value)}", name)
    return int(number) if whole else number


def layer_list_of(value) -> str:
    """The explicit layer list field: empty, or 0-based layer numbers such as 0,2,4."""
    text = _text(value).strip()
    if text and parse_layer_list(text) is None:
        raise ConfigError(f"layer_list must be layer numbers such as 0,2,4, not {echo(text)}", "layer_list")
    return text


def job_settings(arguments: dict) -> JobConfig:
    """The JobConfig of /run_job's arguments (by name, as sent: JobConfig checks and converts every value)."""
    a = arguments
    data = a["data"]
    if data not in DATA_CHOICES:  # inputs arrive unprocessed: the radio's choices are checked here
        raise ConfigError(f"data must be one of {', '.join(DATA_CHOICES)}, not {echo(data)}", "data")
    if data == "upload":
        data = uploaded_file(a["data_file"])
        if not data:
            raise ConfigError("choose a CSV, TSV or JSONL file to upload, or pick another data source", "data_file")
    layer_list = layer_list_of(a["layer_list"])
    strategies = a["strategies"] if isinstance(a["strategies"], list) else [_text(a["strategies"])]
    if not all(isinstance(name, str) for name in strategies):  # a number would read as a layer list
        raise ConfigError("strategies must be names (top_k, odd, ...); put layer lists in layer_list", "strategies")
    numbers = {name: form_number(name, a[name]) for name in NUMBERS}
    flags = ("seeds", "teacher_seeds", "precision", "teacher_8bit", "optimizer_8bit", "search")
    searched = ("search_temperatures", "search_learning_rates")
    return JobConfig.from_dict(
        {
            **numbers,
            **{name: a[name] for name in (*flags, *searched)},
            "teacher": a["teacher"],
            "data": data,
            "strategies": [*filter(None, strategies), *([layer_list] if layer_list else [])],
            "student_layers": numbers["student_layers"] or None,
            "run_name": a["run_name"] or None,
            "search_loss_weights": _text(a["search_loss_weights"]).replace(";", " ").split(),
            "results_dir": space.results_dir(),
        }
    )


class SharedCheck:
    """A check's outcome for the same values, shared for a minute by the requests of one submission (the line
    by the Run button, the validator, the job itself) and taken by the job: a job is checked once on its way,
    and the next submission is checked afresh. Only a refusal (UserError) is kept among errors."""

    def __init__(self, check: Callable[[dict], Any], fields: Iterable[str], seconds: float = 60.0) -> None:
        self.check, self.fields, self.seconds = check, tuple(fields), seconds
        self._kept: dict[str, tuple[float, Any, UserError | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, arguments: dict, *, take: bool = False) -> Any:
        key = json.dumps({name: arguments.get(name) for name in self.fields}, sort_keys=True, default=str)
        now = time.monotonic()
        with self._lock:
            self._kept = {k: kept for k, kept in self._kept.items() if now - kept[0] < self.seconds}
            kept = self._kept.pop(key, None) if take else self._kept.get(key)
        if kept is None:
            try:
                kept = (now, self.check(arguments), None)
            except UserError as err:
                kept = (now, None, err)
            if not take:
                with self._lock:
                    self._kept[key] = kept
        if kept[2] is not None:
            raise kept[2]
        return kept[1]


def checked_job(arguments: dict) -> JobPlan:
    """A new job's settings and the Space's limits, a run name that no listed run has (the committed reference
    runs included: a visitor's run must not shadow them), and its plan (`plan.plan_job`)."""
    with form_words(arguments):
        cfg = job_settings(arguments)
        refuse_taken_name(cfg)
        return space.check_job(cfg)


CHECKED_JOBS = SharedCheck(checked_job, LABELS)


def check_new_job(arguments: dict, *, take: bool = False) -> JobPlan:
    """The checks a new job passes before the queue (`checked_job`, once per submission), then the visitor's
    share of the Space; returns its plan (`take`: the job's own call, which the next submission does not share)."""
    plan = CHECKED_JOBS(arguments, take=take)
    RUNNER.check_room(share(arguments["request"]))
    return plan


def show_refusals(values: dict) -> dict:
    """On Run, next to the button, by component name: every setting the job is refused for (each is also marked
    at its field, `run_job.validator`) and the sections that hold them (`OPEN_SECTIONS` opens those folded);
    nothing changes when the job is accepted (its state then fills the view)."""
    refused = refusals(check_new_job, {**values, "request": None}, STAND_INS)
    if not refused:
        return {"header": gr.skip(), "refused_sections": []}
    return {
        "header": refused_line(refused),
        "refused_sections": [name for name, fields in SECTIONS.items() if set(fields) & set(refused)],
    }


# Opens each folded section named, as a click on its header would: in the browser, which knows what is open. An
# update from the server (`gr.update(open=True)`) would redraw a section already open and could drop its marks.
OPEN_SECTIONS = """(sections) => {
  for (const id of sections || []) {
    const header = document.querySelector(`#${id} > button.label-wrap`);
    if (header && !header.classList.contains("open")) header.click();
  }
  return [];
}"""


def refused_line(refused: dict[str, str], outcome: str = "Not started") -> str:
    """The refusals of a job's settings, in the form's order, as one line for the view."""
    listed = " · ".join(refused[name] for name in LABELS if name in refused)
    return f"**{outcome}**: fix the {len(refused)} setting(s) marked in red. {listed}"


def refuse_taken_name(cfg: JobConfig) -> None:
    """A new run's name must be no listed run's: not a committed reference run (a visitor's run must not shadow
    it), nor one launched on Hugging Face Jobs that has not written its folder yet."""
    taken = {r.name for r in find_runs(roots())} | {r["run"] for r in hf_jobs.launched(space.results_dir())}
    if cfg.run_name and cfg.run_name in taken:
        raise ConfigError(f"a run named {echo(cfg.run_name)} already exists; choose another name", "run_name")


@checked_before_queue(check_new_job, STAND_INS)
@user_errors
def run_job(
    teacher: str,
    data: str,
    data_file: dict | None,
    train_size: float,
    eval_size: float,
    strategies: list[str],
    layer_list: str,
    student_layers: float,
    epochs: float,
    teacher_epochs: float,
    batch_size: float,
    learning_rate: float,
    temperature: float,
    weight_ce: float,
    weight_kl: float,
    weight_cos: float,
    weight_hidden: float,
    seeds: str,
    precision: str,
    teacher_8bit: bool,
    optimizer_8bit: bool,
    run_name: str,
    search: bool = False,
    search_temperatures: str = FORM_START["search_temperatures"],
    search_learning_rates: str = FORM_START["search_learning_rates"],
    search_loss_weights: str = FORM_START["search_loss_weights"],
    teacher_seeds: str = "",
    progress=gr.Progress(),  # noqa: B008 (Gradio injects a per-request tracker for this default)
    request: gr.Request = None,
):
    """Run a distillation job; streams its state: run, stage, done/total steps, log, loss curve, finished models.

    data is 'mnli-sample', 'glue' or 'upload' (then data_file, sent with gradio_client.handle_file, is a CSV, TSV or
    JSONL file with premise, hypothesis and label columns).
    strategies are names (top_k, bottom_k, odd, even, ...); layer_list adds an explicit 0-based list such as 0,2,4.
    student_layers 0 means half the teacher's layers; train_size/eval_size 0 mean all rows.
    search: a hyperparameter search over one strategy (choose one), one student per combination of the temperatures,
    learning rates and 'ce:kl:cos' loss weights given (space-separated).
    teacher_seeds (space-separated, optional): fine-tune one teacher per seed and spread each strategy's students
    over them, so that the tests count a teacher's luck; the number of seeds must be a multiple of theirs.
    Settings are checked before the job joins the queue; a model that diverges is marked failed in `models`.
    """
    plan = check_new_job(locals(), take=True)  # the validator's check, or a direct caller's own
    yield from follow(submit(plan, request=request).run, progress, starter=True)


def submit(job: JobConfig | JobPlan, resume: str | None = None, request: gr.Request | None = None):
    """Hand the job to the app's worker (in time slices on ZeroGPU, time-limited on the public Space): it runs
    there whether or not anyone watches, except on ZeroGPU, where it runs only while its visitor does. A new
    run of a visitor of the public Space first makes room among their kept runs (`space.prune_runs_of`)."""
    if request is None:  # the app's own job (the quick student on start): nobody's
        return RUNNER.submit(job, resume=resume, slice_seconds=space.slice_seconds(), time_limit=space.job_time_limit())
    if resume is None:
        space.prune_runs_of(who(request), busy=lambda run: RUNNER.live(run) is not None)
    return RUNNER.submit(
        job,
        resume=resume,
        owner=who(request),
        slice_seconds=space.slice_seconds(),
        time_limit=space.job_time_limit(),
        attached=space.on_zerogpu(),
        share=share(request),
        event=LocalContext.event_id.get(None),  # the request's id, which its client may cancel
    )


def follow(run: str, progress=None, starter: bool = False):
    """A run's states as they change, until its job ends: from the worker when this app runs it, else from the
    run's folder (a job of an earlier start of the app, another process, or a Jobs container on the bucket).
    `starter`: the request that submitted the job is watching (on ZeroGPU, its leaving pauses the job)."""
    job = RUNNER.job(run)
    record = hf_jobs.record_of(run, space.results_dir()) if job is None else None
    if job is not None:
        states = RUNNER.watch(job, starter=starter)
    elif record is not None and not (Path(space.results_dir()) / run).exists():  # launched, not written yet
        states = hf_jobs.watch_launched(record, space.results_dir(), space.jobs_token())
    else:
        states = watch_folder(find_run(run))
    for state in states:
        if progress is not None and state["total"]:
            progress((state["done"], state["total"]), desc=state["stage"], unit="steps")
        yield state


def checked_resume(arguments: dict) -> tuple[Run, JobPlan]:
    """A run that `arguments["who"]` may resume (theirs, not queued or running here or in another process,
    resumable, within the Space's limits), and its settings' plan."""
    found = find_run(arguments["run"], [space.results_dir()])  # committed runs are read-only
    if RUNNER.live(found.name) is not None:
        raise UserError(f"run {found.name} is already queued or running; watch it instead")
    return found, plan_job(space.check_resume(found, arguments["who"]))


CHECKED_RESUMES = SharedCheck(checked_resume, ("run", "who"))


def resumable(run: str, request: gr.Request | None, *, take: bool = False) -> tuple[Run, JobPlan]:
    """The checks a resume passes before the queue, once per submission (`checked_resume`), then the visitor's
    share."""
    found, plan = CHECKED_RESUMES({"run": _text(run), "who": who(request)}, take=take)
    RUNNER.check_room(share(request))
    return found, plan


@checked_before_queue(lambda a: resumable(a["run"], a["request"]))
@user_errors
def resume_job(run: str, progress=gr.Progress(), request: gr.Request = None):  # noqa: B008 (Gradio injects it)
    """Continue a stopped, paused, interrupted (killed) or failed run with its own settings: finished models are
    kept and a model that was in training continues from its last finished epoch. Streams like /run_job.
    On the public Space only the visitor who started the run may resume it, within its time limit."""
    found, plan = resumable(run, request, take=True)
    yield from follow(submit(plan, resume=str(found.path), request=request).run, progress, starter=True)


@user_errors
def watch_job(run: str) -> Iterator[dict]:
    """Watch a run: streams the same states as /run_job (run, state, stage, done/total steps, log, loss curve,
    finished models) until its job ends; for a run already over, its last state. Leaving changes nothing:
    the job goes on, and watching again later gives the same stream."""
    yield from follow(find_run_or_job(run))


def find_run_or_job(run: str) -> str:
    """`run` when it names a job of this app (a queued one has no folder yet), a run launched on Hugging Face
    Jobs from this app, or a listed run."""
    run = _text(run)
    if RUNNER.job(run) is not None or hf_jobs.record_of(run, space.results_dir()) is not None:
        return run
    return find_run(run).name


@user_errors
def stop_job(run: str = "", token: str = "", request: gr.Request = None) -> dict:
    """Stop a job cleanly: `run`'s (queued or running), or the running one when `run` is empty. It is marked
    stopped and its finished models are kept; a queued job is dropped and creates no run. On the public Space
    only the visitor who started the job may stop it. A run launched on Hugging Face Jobs is cancelled there,
    with `token` (the launcher's; never stored); it then reads "interrupted", its finished models kept."""
    run = _text(run).strip()
    record = hf_jobs.record_of(run, space.results_dir()) if run and RUNNER.live(run) is None else None
    if record is None:
        elsewhere = stop_elsewhere(run, request) if run and RUNNER.live(run) is None else None
        return elsewhere or {"stopped": RUNNER.stop(who(request), run or None)}
    token = _text(token).strip() or space.jobs_token()
    if not token:
        raise UserError(f"run {run} runs on Hugging Face Jobs: give the token that launched it to cancel it")
    hf_jobs.cancel(record["job_id"], token, namespace=record.get("namespace"))
    return {"stopped": True, "cancelled_job": record["job_id"]}


def stop_elsewhere(run: str, request: gr.Request | None) -> dict | None:
    """A run that another process writes (an earlier container on the same bucket, the CLI): its lease's holder
    is asked to stop through a stop request in the run's folder, which it reads at its next beat. None when no
    other live process holds the run."""
    folder = Path(space.results_dir()) / run
    lease = read_lease(folder) if RUN_NAME.fullmatch(run) and folder.is_dir() else None
    if not is_alive(lease):
        return None
    if not Run(folder).owned_by(who(request)):
        raise UserError(f"run {run} was started by another visitor; only they can stop it")
    request_stop(folder, "stopped by a request from another process")
    return {
        "stopped": True,
        "message": f"run {run} runs in {holder_line(lease)}, not in this app: asked it to stop, which it does "
        f"within {BEAT_SECONDS:g} s, keeping its finished models",
    }


JOBS_INPUTS = ("flavor", "bucket", "publish_repo", "token", "confirm")


def jobs_request(values: dict) -> tuple[JobConfig, dict]:
    """The job form's settings and the launch's (flavor, bucket, repo) from the Distill tab, by name."""
    with form_words(values):
        cfg = job_settings(values)
        refuse_taken_name(cfg)
    where = {key: _text(values[key]).strip() or None for key in ("bucket", "publish_repo")}
    return cfg.replace(run_name=cfg.run_name or hf_jobs.default_run_name()), where


@user_errors
def estimate_jobs(values: dict) -> str:
    """The estimate of the form's job on the chosen flavor, and the `run_job` call it would make (no token); or
    every setting the job is refused for."""
    if refused := refusals(jobs_request, values, STAND_INS):
        return refused_line(refused, "No estimate").replace(" marked in red", "")
    cfg, where = jobs_request(values)
    repo, revision = hf_jobs.code_source()
    spec = hf_jobs.job_spec(cfg, values["flavor"], code_repo=repo, revision=revision, **where)
    line = hf_jobs.estimate_line(hf_jobs.estimate(cfg, values["flavor"]))
    return f"**{line}**\n\n```python\n{hf_jobs.call_text(spec)}\n```"


@user_errors
def launch_on_jobs(values: dict, oauth_token: gr.OAuthToken | None = None) -> dict:
    """Launch the form's job on Hugging Face Jobs with the visitor's token (pasted, or their sign-in's), once
    they have accepted the estimate; returns the launched run's state, watched like any other run."""
    if not values["confirm"]:
        raise UserError("tick 'I accept the estimated cost' first: the job is billed to your account")
    token = _text(values["token"]).strip() or (oauth_token.token if oauth_token is not None else "")
    if not token:
        raise UserError("paste your Hugging Face token (or sign in): a job on Jobs is billed to its account")
    cfg, where = jobs_request(values)
    repo, revision = hf_jobs.code_source()
    launched = hf_jobs.launch(
        cfg, values["flavor"], token, code_repo=repo, revision=revision, results_dir=space.results_dir(), **where
    )
    return hf_jobs.waiting_view(hf_jobs.record_of(launched["run"], space.results_dir()))


def stop_shown(state: dict | None, token: str, request: gr.Request = None) -> dict:
    """The Stop button: the job this page shows (queued, running, or on Hugging Face Jobs), else the running one;
    says what it did, as the page shows no change when there was nothing to stop."""
    run = (state or {}).get("run") or ""
    outcome = stop_job(run, token, request)
    if outcome.get("message"):
        gr.Info(outcome["message"])
    elif not outcome.get("stopped"):
        gr.Info(f"run {run} is not queued or running: nothing to stop" if run else "no job is running: nothing to stop")
    return outcome


@user_errors
def watch_link(request: gr.Request = None):
    """On opening the app with ?run=NAME: the Distill tab follows that run, live while its job goes on."""
    run = (getattr(request, "query_params", None) or {}).get("run")
    if not run:
        yield gr.update()
        return
    yield from follow(find_run_or_job(run))


def watched_settings(request: gr.Request = None) -> dict:
    """On opening the app with ?run=NAME: the form shows that run's settings, not the defaults, as the view under
    it shows the run's state. A run whose settings can't be read yet (queued, launched on Jobs) or at all (a
    damaged run) leaves the form as it opens."""
    as_opened = dict.fromkeys(FORM_START, gr.skip())
    run = (getattr(request, "query_params", None) or {}).get("run")
    if not run:
        return as_opened
    try:
        found = find_run(run)
        return form_values(found.job_config()) | {"teacher": found.teacher()}  # a folder's name, not its path
    except UserError:
        return as_opened


# Watchers of a job hold a thread each while they watch (the API's, the job events' and the pages'); the thread
# pool is sized for all of them at once, plus chat and the rest.
WATCHERS = {"concurrency_limit": 64}
MAX_THREADS = 3 * 64 + 40


# The page's address names the run it shows, so a reload or a shared link watches the same run.
RUN_IN_ADDRESS = """(state) => {
  if (state && state.run) {
    const url = new URL(window.location.href);
    if (url.searchParams.get("run") !== state.run) {
      url.searchParams.set("run", state.run);
      window.history.replaceState(null, "", url);
    }
  }
  return [];
}"""


@user_errors
def runs() -> list[dict]:
    """Every run (newest first) with its state, teacher, number of models and best student; a run whose files
    cannot be read is listed with state 'damaged' and the reason. Each run's name is the `run` that the
    `comparison` tool takes; its chat models are listed by the `models` tool."""
    launched = hf_jobs.listing(space.results_dir(), space.jobs_token())  # on Jobs, not written here yet
    return sorted(list_runs(roots()) + launched, key=lambda r: r["started"], reverse=True)


@user_errors
def comparison_api(run: str, ensemble: list[str] | None = None) -> dict:
    """A run's comparison table (records: teacher first, mean and spread over seeds, a test vs the best on each
    validation split counting seeds and examples, Holm-adjusted; p_value null and test 'fewer than 3 seeds:
    untested' below 3 seeds; on the best row, plan_detectable: the smallest difference its seeds detect 80% of the
    time, and plan_seeds_for_1_point / _2_points) and its per-epoch curves (records: model, strategy, seed, epoch,
    curve, value).

    Args:
        run: a run name, the `run` of an entry from the `list_runs` tool (e.g. 'reference', the committed run).
        ensemble: null, or 2+ of the run's strategies (table's `strategy`) as one more row, probabilities averaged.
    """
    if ensemble is not None and not (isinstance(ensemble, list) and all(isinstance(s, str) for s in ensemble)):
        raise UserError("ensemble must be a list of the run's strategy names, or null")
    found = find_run(run)
    table = comparison(found, ensemble)
    return {"run": found.name, "status": found.public_status(), "table": table, "curves": curves(found)}


@user_errors
def models() -> list[str]:
    """Models to chat with, as 'run/model' (and 'run/ensemble' for a run's students together): each is a `model`
    that the `chat` tool takes."""
    return chat_models(roots())


@user_errors
def chat_api(
    model: str,
    query: str,
    context: str = "",
    temperature: float = 1.0,
    max_length: int = 128,
    every_model: bool = False,
) -> dict:
    """Classify the relation between context (premise) and query (hypothesis): entailment, neutral or
    contradiction, with softmax(logits / temperature) probabilities; every_model adds the run's other models.

    Args:
        model: a model name from the `models` tool, as 'run/model' (e.g. 'my-run/top_k-seed0') or 'run/ensemble'.
        query: the hypothesis to classify, up to 10,000 characters.
        context: the premise the query is judged against, up to 10,000 characters; empty classifies the query alone.
        temperature: softmax temperature, from 0.05 to 10 (1 gives the model's own probabilities).
        max_length: the most tokens of context and query the model reads, a whole number from 8 to 512.
        every_model: true adds `answers`, the same classification by every other model of the model's run.
    """
    return chat(model, query, context, temperature, max_length, every_model, roots())


# ---------------------------------------------------------------- UI helpers (rendering only)


JOB_VIEW = ("header", "log", "loss_plot")


def render_job(state: dict | None) -> dict:
    """The Distill tab's view of a streamed job state, by component name (JOB_VIEW)."""
    if not state:
        return {"header": "", "log": "", "loss_plot": None}
    done, total, run = state.get("done", 0), state.get("total", 0), state.get("run")
    stage = state.get("stage")
    header = f"**{state.get('state')}** · run `{run}`" + (f" · {stage}" if stage != state.get("state") else "")
    header += f" · step {done}/{total} {progress_bar(done, total)}" if total else ""
    if state.get("state") == "queued" and state.get("queue_position"):
        header += f" · {state['queue_position']} job(s) ahead"
    if run:
        header += f" · [link to watch this run](?run={run})"
    if run and comparable(state):
        header += f" · [see how its models compare]({compare_link(run)})"
    return {
        "header": header,
        "log": "\n".join(state.get("log", [])),
        "loss_plot": step_loss_figure(state.get("curve") or []),
    }


def progress_bar(done: int, total: int) -> str:
    """The job's progress as a bar in the status line, for whoever watches it (Gradio's own bar is drawn on an
    event's outputs: the folded status JSON, and only for the request that started the job)."""
    share = min(max(done / total, 0.0), 1.0)
    return (
        f'<progress value="{done}" max="{total}" aria-label="job progress" '
        f'style="width: 12em; vertical-align: middle; accent-color: var(--color-accent)"></progress> {share:.0%}'
    )


COMPARE_IN_ADDRESS = "compare"  # ?compare=RUN opens the Compare tab on that run (a finished job links to it)


def compare_link(run: str) -> str:
    """The address, relative to the app's page, that opens the Compare tab on `run`."""
    return f"?{COMPARE_IN_ADDRESS}={run}"


def comparable(state: dict) -> bool:
    """Whether a job's state has results to compare: it completed, or it ended (stopped, failed, interrupted)
    after finishing some models."""
    if state.get("state") == "completed":
        return True
    ended = state.get("state") in ("stopped", "failed", "interrupted")
    return ended and any(m.get("accuracy") is not None for m in state.get("models") or [])


def run_label(run: Run, request: gr.Request | None = None) -> str:
    """What a run is, in plain words (`results.run_label`): the committed and published runs by their kind, any
    other as the viewer's own or, on the public Space, a visitor's."""
    committed = run.path.parent == REFERENCE_DIR or str(run.path) in reference_models()
    return describe_run(run, committed=committed, viewer=who(request), shared=space.is_public_space())


def run_choices(published: bool = True) -> list[tuple[str, str]]:
    """The Compare picker's runs (`roots`), each with what it is ("search · hyperparameter search"), a damaged one
    labelled as such (picking it shows why)."""
    where = roots(published)
    found: dict[str, Run] = {}
    for run in find_runs(where):
        found.setdefault(run.name, run)  # the first root's, as `find_run` picks it
    out = []
    for r in list_runs(where):
        name = r["run"]
        if r["state"] == DAMAGED or name not in found:
            out.append((f"{name} (damaged)" if r["state"] == DAMAGED else name, name))
            continue
        try:
            label = run_label(found[name])
            out.append((name if label == name else f"{name} · {label}", name))
        except Exception:  # a run whose settings cannot be read: listed by its name, picking it shows why
            out.append((name, name))
    return out


def refresh_run_choices() -> dict:
    """The Compare tab's run picker, listing the runs as they are now."""
    return gr.update(choices=run_choices())


def default_run(published: bool = True) -> str | None:
    names = [r["run"] for r in list_runs(roots(published)) if r["state"] != DAMAGED]
    return "reference" if "reference" in names else (names[0] if names else None)


COMPARISON_VIEW = (
    "header",
    "table",
    "glossary",
    "accuracy_plot",
    "latency_plot",
    "downloads",
    "loss_plot",
    "loss_strategy",
    "ensemble",
)


def docs_page(page: str) -> str:
    """A page of docs/ (statistics.md: how sure the comparison is, and why) on the Hub, in this Space's repo."""
    return f"https://huggingface.co/spaces/{hf_jobs.space_repo()}/blob/main/docs/{page}"


def quick_default_note() -> str:
    """What the quick default can and cannot rank, in one sentence (three runs of it: docs/reference.md)."""
    return (
        "The quick default tells apart only large differences: in three runs of it `odd` led and `bottom_k` was "
        "clearly last every time, but `top_k`, whose seeds spread by up to 6 points, was never ranked; "
        f"[the reference run]({docs_page('reference.md')}) ranks them."
    )


@user_errors
def show_comparison(
    run: str | None,
    ensemble: list[str] | None = None,
    request: gr.Request = None,  # Gradio gives it: whose run this is, on the public Space
) -> dict:
    """The Compare tab's view of a run, by component name (COMPARISON_VIEW)."""
    empty = dict.fromkeys(("table", "glossary", "accuracy_plot", "latency_plot", "downloads", "loss_plot"))
    if not run:
        return {"header": "No runs yet: start one in the Distill tab.", **empty}
    found = find_run(run)
    try:
        table = comparison(found, ensemble if ensemble and len(ensemble) > 1 else None)
    except DamagedRun as err:  # shown in place of the table: the rest of the tab and the app carry on
        return {
            "header": f"### Run `{found.name}` · damaged\n{err}. Every other run is listed and served as usual.",
            **empty,
            "loss_strategy": gr.update(choices=[], value=None),
            "ensemble": gr.update(choices=[], value=[]),
        }
    status = found.public_status()
    said, plan = verdict(table), plan_line(table)
    header = (
        (f"**{said}**\n\n" if said else "")
        + (f"{plan}\n\n" if plan else "")
        + f"### Run `{found.name}` · {run_label(found, request)} · {status['state']} · "
        f"teacher: {teacher_name(found.teacher())}\n{notes(table, docs_page('statistics.md'))}"
    )
    points = pd.DataFrame(curves(found))
    # A legend has room for so many names: the plots show the teacher and the best students (the table has all);
    # a strategy still training (no row yet) comes last.
    training = [s for s in dict.fromkeys(points.get("strategy", [])) if s not in {r["strategy"] for r in table}]
    shown = plotted_strategies(
        table + [{"strategy": s, "role": "student", "accuracy": float("-inf")} for s in training]
    )
    hidden = [r for r in table if r.get("accuracy") is not None and r["strategy"] not in shown]
    note = f"; the table has {len(hidden)} more" if hidden else ""
    by_name = {r["strategy"]: r for r in table}
    scatter = pd.DataFrame(
        [
            {"strategy": s, "latency_b32_ms": by_name[s]["latency_b32_ms"], "accuracy": by_name[s]["accuracy"]}
            for s in shown
            if s in by_name
        ]
    )
    rows = display_rows(table)
    strategies = [r["strategy"] for r in table if r["role"] == "student"]
    return {
        "header": header,
        "table": gr.update(value=pd.DataFrame(rows), column_widths=column_widths(rows) or None),
        "glossary": glossary(table, docs_page("statistics.md")),
        "accuracy_plot": _whole_epochs(
            _mean_curve(points, "val_accuracy", shown),
            "strategy",
            f"Validation accuracy per epoch (mean over seeds{note})",
        ),
        "latency_plot": gr.update(value=scatter, label=f"Accuracy vs latency (ms/example at batch 32{note})"),
        "downloads": download_copies(found),
        "loss_plot": _loss_curves(points, strategies[0] if strategies else None),
        "loss_strategy": gr.update(choices=strategies, value=strategies[0] if strategies else None),
        "ensemble": gr.update(choices=strategies, value=ensemble or []),
    }


COMPARISON_OPEN = ("tabs", "run", *COMPARISON_VIEW)  # the page's first view: the tab, the picked run, its view


def open_comparison(run: str | None, request: gr.Request = None) -> dict:
    """On opening the app, by component name (COMPARISON_OPEN): the Compare tab's view of the picked run or, with
    ?compare=RUN in the address (a finished job links there), of that run, with the Compare tab selected."""
    linked = (getattr(request, "query_params", None) or {}).get(COMPARE_IN_ADDRESS)
    choices = run_choices()  # the runs as they are now, not as the page was built: newer ones are listed
    if not linked:
        return {"tabs": gr.update(), "run": gr.update(choices=choices), **show_comparison(run, request=request)}
    if linked not in {value for _, value in choices}:
        gr.Warning(f"No run named {linked!r}: pick one in the Compare tab's list.")
        return {"tabs": gr.update(), "run": gr.update(choices=choices), **show_comparison(run, request=request)}
    return {
        "tabs": gr.update(selected="compare"),
        "run": gr.update(choices=choices, value=linked),
        **show_comparison(linked, request=request),
    }


def redraw_plot(plot: dict | None) -> dict:
    """After a plot's data changed (its payload: columns, data, datatypes): its legend names every colour in the
    new data, which redraws it."""
    # Gradio 6.31 keeps a plot's colour domain from its first data: new strategies (another run, an ensemble)
    # would be drawn without a colour, so invisible, under a stale legend. Changing colors_in_legend once the
    # data is in makes it draw the plot anew; sent with the data, it would draw the old data.
    if not plot or not plot.get("data"):
        return gr.update()
    types = plot.get("datatypes") or {}
    # the colour's column: the first nominal one but the x axis's epochs (text, for whole-epoch ticks)
    column = next((i for i, c in enumerate(plot["columns"]) if types.get(c) == "nominal" and c != "epoch"), None)
    return gr.update(colors_in_legend=None if column is None else list(dict.fromkeys(r[column] for r in plot["data"])))


def _mean_curve(points: pd.DataFrame, curve: str, strategies: list[str]) -> pd.DataFrame | None:
    """One curve, averaged over seeds, for `strategies` in their order (the legend's)."""
    if points.empty:
        return None
    rows = points[(points["curve"] == curve) & points["strategy"].isin(strategies)]
    rows = rows.sort_values("strategy", key=lambda column: column.map(strategies.index), kind="stable")
    return rows.groupby(["strategy", "epoch"], as_index=False, sort=False)["value"].mean()


LOSS_NAMES = {  # the loss curves by the names a reader knows: the total, its weighted parts, the validation loss
    "train_loss": "training loss",
    "train_ce": "labels (ce)",
    "train_kl": "teacher's answers (kl)",
    "train_cos": "teacher's logits (cos)",
    "val_loss": "validation loss",
}


def _loss_curves(points: pd.DataFrame, strategy: str | None) -> dict:
    """One strategy's loss curves, averaged over seeds, titled with its name."""
    if points.empty or not strategy:
        return gr.update(value=None, label="Loss curves")
    rows = points[(points["strategy"] == strategy) & points["curve"].isin(list(LOSS_NAMES))]
    means = rows.groupby(["curve", "epoch"], as_index=False, sort=False)["value"].mean()
    means["curve"] = means["curve"].map(LOSS_NAMES)
    return _whole_epochs(means, "curve", f"Loss curves of {strategy} (mean over seeds)")


def _whole_epochs(means: pd.DataFrame | None, series: str, label: str) -> dict:
    """A LinePlot's update for curves (`series`, epoch, value) on an axis of whole epochs: the epochs as text, in
    their order (a number axis ticks at 1.1, 1.2 ...). A line needs two points: a series measured at one epoch
    only (a quick run's teacher) is drawn flat across the epochs at its value, and the label says so."""
    if means is None or means.empty:
        return gr.update(value=means, label=label)
    epochs = sorted(means["epoch"].unique())
    counts = means.groupby(series, sort=False)["epoch"].nunique()
    once = [name for name, n in counts.items() if n == 1] if len(epochs) > 1 else []
    order = list(dict.fromkeys(means[series]))  # the legend's order
    if once:
        level = means[means[series].isin(once)].drop(columns="epoch")
        level = level.merge(pd.DataFrame({"epoch": epochs}), how="cross")
        means = pd.concat([means[~means[series].isin(once)], level], ignore_index=True)
        label = label.removesuffix(")") + f"; {', '.join(once)}: measured once, drawn flat)"
    means = means.sort_values([series, "epoch"], key=lambda c: c.map(order.index) if c.name == series else c)
    means = means.assign(epoch=means["epoch"].map(_epoch_text)).reset_index(drop=True)
    return gr.update(value=means, sort=[_epoch_text(e) for e in epochs], label=label)


def _epoch_text(epoch: float) -> str:
    return str(int(epoch)) if float(epoch).is_integer() else f"{epoch:g}"


@user_errors
def show_loss_curves(run: str | None, strategy: str | None):
    return _loss_curves(pd.DataFrame(curves(find_run(run)) if run else []), strategy)


def chat_ui(
    history: list, query: str, context: str, model: str | None, temperature: float, max_length: float, every_model: bool
):
    # In the UI a refusal is a toast that leaves the conversation and the boxes usable; gr.Error would cover
    # this event's outputs (the conversation and the query box) with an overlay. The API raises gr.Error.
    if not model:
        gr.Warning(NO_STUDENTS.replace("**", ""))
        return history, query
    try:
        result = chat(model, query, context, temperature, int(max_length), every_model, roots())
    except UserError as err:
        gr.Warning(str(err))
        return history, query
    user = f"**Query:** {query}" + (f"\n\n**Context:** {context}" if context else "")
    reply = describe(result, model)
    if every_model:
        reply += "\n\n| model | label | entailment | neutral | contradiction |\n|---|---|---|---|---|\n" + "\n".join(
            f"| {a['model']} | {a['label']} | " + " | ".join(f"{p:.1%}" for p in a["probabilities"].values()) + " |"
            for a in result["answers"]
        )
    return [*history, {"role": "user", "content": user}, {"role": "assistant", "content": reply}], ""


CHAT_REFRESH = ("model", "no_students", "quick", "timer")


def refresh_models() -> dict:
    """The chat models, opening on the best reference student when there is one; the quick-student button
    only while there is no model at all. By component name (CHAT_REFRESH)."""
    names = models()
    best = [f"{r['run']}/{r['best_student']}" for r in list_runs(list(reference_models())) if r["best_student"]]
    students = [n for n in names if not n.endswith(("/teacher", "/ensemble"))]
    value = next((n for n in best if n in names), students[0] if students else (names[0] if names else None))
    quick = RUNNER.live(space.QUICK_RUN)  # started by the app itself on a Space with nothing to chat with
    note = NO_STUDENTS
    if quick is not None:
        progress = quick_line(quick.snapshot())
        note = f"A quick student is training for this Space ({progress}); Chat opens on it when it is done."
    return {
        "model": gr.update(choices=names, value=value),
        "no_students": gr.update(visible=not students, value=note),
        "quick": gr.update(visible=not names and quick is None),
        "timer": gr.Timer(active=quick is not None),
    }


ENDED = ("completed", "stopped", "failed", "interrupted", "cancelled", "paused")


def lists_after(state: dict | None = None) -> dict:
    """When the job shown ends (or, without a state, the quick student's): Compare's runs, opened on the job's
    run when it has results, and Chat's models, as they are now; nothing while a job runs (by component name:
    compare_run and CHAT_REFRESH)."""
    if state is not None and state.get("state") not in ENDED:
        return dict.fromkeys(("compare_run", *CHAT_REFRESH), gr.skip())
    shown = state is not None and comparable(state)
    runs = gr.update(choices=run_choices(), value=state["run"]) if shown else refresh_run_choices()
    return {"compare_run": runs, **refresh_models()}


def check_quick_student(arguments: dict, *, take: bool = False) -> JobPlan:
    """The checks a quick student passes before the queue: no student to chat with exists yet (unless the
    visitor asks for their own), the visitor's share of the Space, and the job's own checks."""
    if not isinstance(arguments["own"], bool):
        raise ConfigError("own must be true or false", "own")
    students = [m for m in models() if not m.endswith(("/teacher", "/ensemble"))]
    if students and not arguments["own"]:
        raise UserError(
            f"a student to chat with exists already ({students[0]}): pick it in Chat; ask for your own "
            "(own=True) to train one anyway"
        )
    RUNNER.check_room(share(arguments["request"]))
    return QUICK_PLAN({}, take=take)


QUICK_PLAN = SharedCheck(lambda _: space.check_job(space.quick_job()), ())


@checked_before_queue(check_quick_student)
@user_errors
def quick_student(own: bool = False, progress=gr.Progress(), request: gr.Request = None):  # noqa: B008 (Gradio injects them)
    """Train one student with the embedded default's fast settings (about two minutes on a 2-core CPU,
    fine-tuned teacher included), streaming its progress as a line of text. Refused while a student to chat
    with exists, unless `own`. It counts as the visitor's job on the public Space."""
    plan = check_quick_student(locals(), take=True)
    for state in follow(submit(plan, request=request).run, progress, starter=True):
        yield quick_line(state)


def quick_line(state: dict) -> str:
    return f"**{state['state']}** · {state['stage']} · step {state['done']}/{state['total']}"


def start_quick_student() -> str | None:
    """On a Space with no model to chat with (no run, no published reference models), start the quick student
    once, in the background (`space.quick_student_on_start`); a later start finds it in the results folder, and
    resumes it if a restart cut it short. Returns the run it started or resumed."""
    if not space.quick_student_on_start() or models():
        return None
    cfg = space.quick_job().replace(run_name=space.QUICK_RUN)
    folder = Path(cfg.results_dir) / space.QUICK_RUN
    try:
        if folder.exists():
            return submit(cfg, resume=str(find_run(space.QUICK_RUN, [cfg.results_dir]).path)).run
        return submit(space.check_job(cfg)).run
    except UserError as err:  # a damaged or completed-but-unusable run: said once in the log, the app serves on
        log.warning("quick student not started: %s", err)
        return None


CHAR_PX = 8.4  # one character of the app's 14 px monospace table font


def column_widths(rows: list[dict[str, str]]) -> list[str]:
    """Widths for `display_rows` in the app's table, in pixels: each column as wide as the longest word of its
    title or its longest cell, long cells (intervals, names) capped so that they wrap. A table wider than its
    frame (on a phone, or with many columns) scrolls sideways in it; no word is ever cut."""
    if not rows:
        return []
    widths = []
    for title in rows[0]:
        word = max(len(w) for w in re.split(r"(?<=-)|\s+", title))  # a title breaks at spaces and after hyphens
        # a cell with spaces wraps at them (13: an interval in two lines), any other anywhere
        cell = max(min(len(r[title]), 13 if " " in r[title] else 10) for r in rows)
        widths.append(f"{round((max(word, cell, 3) + 2.3) * CHAR_PX)}px")  # + 2.3: the cell's padding (16 px)
    return widths


def plotted_strategies(table: list[dict], width_px: int = 1000, most: int = 10) -> list[str]:
    """The rows a plot can name in its legend: the teacher, then the students by accuracy, then any ensemble,
    as many as fit in one legend row of `width_px` and at most `most` (one colour each)."""
    # Gradio's plots draw their legend as one row below the plot (Vega-Lite, 10 px labels): past its width the
    # names are cut off, and past ten the colours repeat.
    finished_rows = [r for r in table if r.get("accuracy") is not None]
    order = {"teacher": 0, "student": 1}
    ranked = sorted(finished_rows, key=lambda r: (order.get(r["role"], 2), -r["accuracy"]))
    out, used = [], 0
    for r in ranked:
        used += 26 + 5 * len(r["strategy"])  # symbol and padding, then about 5 px a character
        if len(out) == most or (out and used > width_px):
            break
        out.append(r["strategy"])
    return out


# ---------------------------------------------------------------- layout

View = dict[str, gr.components.Component]  # a tab's components by name
UI_ONLY = {"api_visibility": "undocumented"}  # the UI's own events: the public API is wire_api's


def named(fn, view: View):
    """`fn`, which returns its updates by name ({"table": ...}), as an event function returning them by component."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return {view[name]: value for name, value in fn(*args, **kwargs).items()}

    return call


def by_name(fn, view: View):
    """`fn`, which takes a dict of values by name, as an event function taking Gradio's dict by component."""
    names = {component: name for name, component in view.items()}

    @functools.wraps(fn)
    def call(values: dict, *args, **kwargs):
        return fn({names[component]: value for component, value in values.items()}, *args, **kwargs)

    return call


def show_backend(backend: str) -> list:
    """The Jobs settings and the Launch button for Hugging Face Jobs, the Run button for this Space; the note on
    where the job runs and what outlives the page."""
    on_jobs = backend == "Hugging Face Jobs"
    note = hf_jobs.WHERE if on_jobs else space.where_jobs_run()
    return [gr.update(visible=on_jobs), gr.update(visible=not on_jobs), note]


def job_inputs(fn, form: View) -> list[gr.components.Component]:
    """The form's components in the order of `fn`'s parameters, found by name: a setting cannot reach another's
    parameter, and a parameter without a component (or a component without one) fails at start-up."""
    names = [p for p in inspect.signature(fn).parameters if p not in ("progress", "request")]
    if set(names) != set(form) or set(form) != set(LABELS):
        raise RuntimeError(f"the job form, its labels and {fn.__name__} disagree: {sorted(set(names) ^ set(LABELS))}")
    return [form[name] for name in names]


def distill_tab() -> tuple[View, View]:
    """The job form (components named as /run_job's parameters) and the job's controls and live view."""
    form: View = {}
    with gr.Row():
        form["teacher"] = gr.Dropdown(
            space.teacher_choices(),
            value=FORM_START["teacher"],
            allow_custom_value=not space.is_public_space(),
            label=LABELS["teacher"],
            info="'embedded' = packaged all-MiniLM-L6-v2 (offline); or a Hub id / folder",
        )
        form["data"] = gr.Radio(
            list(DATA_CHOICES),
            value=FORM_START["data"],
            label=LABELS["data"],
            info="shipped real MNLI sample, GLUE MNLI from the Hub, or your own file",
        )
        form["data_file"] = gr.File(
            label=LABELS["data_file"],
            file_types=[".csv", ".tsv", ".jsonl"],
            type="filepath",
        )
    with gr.Row():
        form["train_size"] = gr.Number(FORM_START["train_size"], precision=0, label=LABELS["train_size"])
        form["eval_size"] = gr.Number(FORM_START["eval_size"], precision=0, label=LABELS["eval_size"])
        form["student_layers"] = gr.Number(FORM_START["student_layers"], precision=0, label=LABELS["student_layers"])
        form["seeds"] = gr.Textbox(FORM_START["seeds"], label=LABELS["seeds"], info="e.g. 0 1 2")
    with gr.Row():
        form["strategies"] = gr.CheckboxGroup(
            list(DESCRIPTIONS),
            value=FORM_START["strategies"],
            label=LABELS["strategies"],
            info="; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()),
            elem_id="job-strategies",
        )
        form["layer_list"] = gr.Textbox(FORM_START["layer_list"], label=LABELS["layer_list"], placeholder="e.g. 0,2,4")
    gr.Markdown(quick_default_note(), elem_id="quick-default-note")
    job: View = {}
    before = set(form)
    with gr.Accordion("Training settings", open=False, elem_id="training_section") as job["training_section"]:
        training_settings(form)
    with gr.Accordion("Hyperparameter search (a job mode)", open=False, elem_id="search_section") as job[
        "search_section"
    ]:
        gr.Markdown(
            "Distil **one** strategy (tick only one above) once per combination of the values below (and per seed); "
            "Compare then shows one row per setting, with its paired test against the best."
        )
        with gr.Row():
            form["search"] = gr.Checkbox(FORM_START["search"], label=LABELS["search"])
            form["search_temperatures"] = gr.Textbox(
                FORM_START["search_temperatures"], label=LABELS["search_temperatures"]
            )
            form["search_learning_rates"] = gr.Textbox(
                FORM_START["search_learning_rates"], label=LABELS["search_learning_rates"]
            )
            form["search_loss_weights"] = gr.Textbox(
                FORM_START["search_loss_weights"], label=LABELS["search_loss_weights"], info="e.g. 1:1:1 2:1:0"
            )
    if set(form) - before != {name for fields in SECTIONS.values() for name in fields}:
        raise RuntimeError("the form's sections and SECTIONS disagree")
    job["refused_sections"] = gr.JSON(visible=False)  # `show_refusals` -> `OPEN_SECTIONS`
    job["backend"] = gr.Radio(
        list(BACKENDS), value=next(iter(BACKENDS)), label="Where to run", info=" · ".join(BACKENDS.values())
    )
    job["where_note"] = gr.Markdown(space.where_jobs_run(), elem_id="where-jobs-run")
    with gr.Group(visible=False) as job["jobs_group"]:
        jobs_settings(job)
    with gr.Row():
        job["run"] = gr.Button("Run", variant="primary")
        job["stop"] = gr.Button("Stop", variant="stop")
    with gr.Accordion("Resume a stopped or interrupted run", open=False), gr.Row():
        job["resume_name"] = gr.Textbox("", label="Run to resume", placeholder="its name (Compare lists the runs)")
        job["resume"] = gr.Button("Resume")
    job["header"] = gr.Markdown(elem_id="job-header")
    job["loss_plot"] = gr.Plot(label="Training loss per step")
    with gr.Accordion("Job status, as the API streams it", open=False):
        job["state"] = gr.JSON(label="Job status")
    job["log"] = gr.Textbox(label="Log", lines=10, max_lines=20, autoscroll=True)
    return form, job


BACKENDS = {
    "this Space": "this Space: the app's worker, one job at a time",
    "Hugging Face Jobs": "Hugging Face Jobs: a GPU machine you rent by the minute with your own token",
}


def jobs_settings(job: View) -> None:
    """The settings of a launch on Hugging Face Jobs, added to the job's controls."""
    with gr.Row():
        job["flavor"] = gr.Dropdown(
            hf_jobs.offered(), value=hf_jobs.settings()["default_flavor"], label="Jobs hardware (flavor)"
        )
        job["bucket"] = gr.Textbox(
            os.environ.get("DISTILL_JOBS_BUCKET", ""),
            label="Bucket for the run (owner/name[/folder])",
            info="written as the job runs; mount it in this Space to watch and compare the run here",
        )
        job["publish_repo"] = gr.Textbox("", label="or a model repo to publish to when it ends (owner/name)")
    job["token"] = gr.Textbox(
        "",
        type="password",
        label="Your Hugging Face token",
        info="sent to Jobs as a secret of this job only, never stored or logged; the job is billed to its account",
    )
    job["estimate"] = gr.Markdown(elem_id="jobs-estimate")
    with gr.Row():
        job["estimate_button"] = gr.Button("Estimate time and cost")
        job["confirm"] = gr.Checkbox(False, label="I accept the estimated cost, billed to the token's account")
        job["launch"] = gr.Button("Launch on Hugging Face Jobs", variant="primary")


def training_settings(form: View) -> None:
    """The accordion of training settings, added to the job form."""
    with gr.Row():
        form["epochs"] = gr.Number(FORM_START["epochs"], precision=0, label=LABELS["epochs"])
        form["teacher_epochs"] = gr.Number(FORM_START["teacher_epochs"], precision=0, label=LABELS["teacher_epochs"])
        form["batch_size"] = gr.Number(FORM_START["batch_size"], precision=0, label=LABELS["batch_size"])
        form["learning_rate"] = gr.Number(FORM_START["learning_rate"], label=LABELS["learning_rate"])
        form["temperature"] = gr.Number(FORM_START["temperature"], label=LABELS["temperature"])
    with gr.Row():
        form["weight_ce"] = gr.Number(FORM_START["weight_ce"], label=LABELS["weight_ce"])
        form["weight_kl"] = gr.Number(FORM_START["weight_kl"], label=LABELS["weight_kl"])
        form["weight_cos"] = gr.Number(FORM_START["weight_cos"], label=LABELS["weight_cos"])
        form["weight_hidden"] = gr.Number(FORM_START["weight_hidden"], label=LABELS["weight_hidden"])
    with gr.Row():
        form["precision"] = gr.Dropdown(list(PRECISIONS), value=FORM_START["precision"], label=LABELS["precision"])
        form["teacher_8bit"] = gr.Checkbox(FORM_START["teacher_8bit"], label=LABELS["teacher_8bit"])
        form["optimizer_8bit"] = gr.Checkbox(FORM_START["optimizer_8bit"], label=LABELS["optimizer_8bit"])
        form["run_name"] = gr.Textbox(
            FORM_START["run_name"], label=LABELS["run_name"], placeholder="letters, digits, . _ -"
        )
        form["teacher_seeds"] = gr.Textbox(
            FORM_START["teacher_seeds"],
            label=LABELS["teacher_seeds"],
            info="e.g. 0 1 2: one fine-tuned teacher each, students spread over them",
        )


def compare_tab() -> View:
    view: View = {}
    with gr.Row():
        view["run"] = gr.Dropdown(run_choices(False), value=default_run(False), label="Run", allow_custom_value=False)
        view["refresh"] = gr.Button("Refresh runs")
    view["header"] = gr.Markdown()
    view["ensemble"] = gr.CheckboxGroup(
        [],
        label="Ensemble of strategies",
        info="pick two or more: one more row averages their class probabilities, seed by seed",
        elem_id="ensemble-picker",
    )
    # On a phone the table is wider than the screen and scrolls inside its frame; nothing else says so.
    gr.Markdown("Swipe the table sideways for all its columns →", elem_classes=["narrow-only"], elem_id="swipe-cue")
    view["table"] = gr.Dataframe(
        label="Strategy comparison", wrap=True, interactive=False, max_height=900, elem_id="comparison-table"
    )
    view["glossary"] = gr.Markdown(elem_id="glossary")  # the table's words explained, under it
    # No fixed height: Gradio sizes the chart to it and cuts off the legend below. Full width: the legend
    # is one row, so it needs the room for the strategies' names.
    view["accuracy_plot"] = gr.LinePlot(
        x="epoch",
        y="value",
        color="strategy",
        x_title="epoch",
        y_title="validation accuracy",
        y_axis_format=".1%",  # a narrow range (a quick run) ticks at tenths of a point
        y_aggregate="mean",  # epochs are text (whole-epoch ticks): Gradio would otherwise sum each epoch's values
        label="Validation accuracy per epoch (mean over seeds)",
        elem_id="accuracy-plot",
    )
    view["latency_plot"] = gr.ScatterPlot(
        x="latency_b32_ms",
        y="accuracy",
        color="strategy",
        x_title="latency per example at batch 32 (ms)",
        y_title="validation accuracy",
        y_axis_format=".1%",  # a narrow range (a quick run) ticks at tenths of a point
        label="Accuracy vs latency (ms/example at batch 32)",
        elem_id="latency-plot",
    )
    with gr.Row():
        view["loss_strategy"] = gr.Dropdown([], label="Loss curves of strategy")
        # Not interactive: a visitor downloads these files; there is nothing to upload or remove
        view["downloads"] = gr.File(label="Download results (CSV, JSON)", file_count="multiple", interactive=False)
    view["loss_plot"] = gr.LinePlot(
        x="epoch",
        y="value",
        color="curve",
        x_title="epoch",
        y_title="loss (mean over seeds)",
        y_aggregate="mean",
        label="Loss curves",
        elem_id="loss-plot",
    )
    for plot in (view["accuracy_plot"], view["latency_plot"], view["loss_plot"]):
        plot.change(redraw_plot, plot, plot, show_progress="hidden", **UI_ONLY)
    shown = [view[name] for name in COMPARISON_VIEW]
    view["run"].change(named(show_comparison, view), view["run"], shown, **UI_ONLY)
    view["ensemble"].input(named(show_comparison, view), [view["run"], view["ensemble"]], shown, **UI_ONLY)
    view["refresh"].click(refresh_run_choices, None, view["run"], **UI_ONLY)
    view["loss_strategy"].input(show_loss_curves, [view["run"], view["loss_strategy"]], view["loss_plot"], **UI_ONLY)
    return view


def chat_tab() -> View:
    view: View = {}
    local = chat_models(roots(published=False))  # the page's opening events add the published runs' models
    view["no_students"] = gr.Markdown(NO_STUDENTS, visible=not local)
    with gr.Row():
        view["quick"] = gr.Button("Train a quick student (about 2 minutes)", visible=not local, variant="primary")
        view["quick_progress"] = gr.Markdown()
    with gr.Row():
        view["model"] = gr.Dropdown(local, label="Model (run/model)", allow_custom_value=False)
        view["refresh"] = gr.Button("Refresh models")
    view["own"] = gr.Checkbox(False, visible=False, label="Train my own student")  # API: own=True
    view["timer"] = gr.Timer(5, active=False)  # while the Space's own quick student trains
    view["chatbot"] = gr.Chatbot(label="Relation of the query to the context", height=360)
    view["query"] = gr.Textbox(label="Query (hypothesis)", placeholder="A statement to check")
    view["context"] = gr.Textbox(label="Context (premise, optional)", lines=2)
    with gr.Row():
        view["temperature"] = gr.Slider(
            *TEMPERATURE_RANGE,
            value=1.0,
            step=0.05,
            label="Temperature",
            info="softmax(logits / T): higher T flattens the probabilities",
        )
        view["max_length"] = gr.Slider(*MAX_LENGTH_RANGE, value=128, step=1, label="Max length (tokens)")
        view["every_model"] = gr.Checkbox(False, label="Ask every model of the run")
    view["send"] = gr.Button("Send", variant="primary")
    gr.Examples(
        [[e["query"], e["context"]] for e in EXAMPLES],
        [view["query"], view["context"]],
        label="Real MNLI validation pairs",
    )
    names = ("chatbot", "query", "context", "model", "temperature", "max_length", "every_model")
    ask = {"concurrency_limit": 4, "concurrency_id": "chat", **UI_ONLY}
    for trigger in (view["send"].click, view["query"].submit):
        trigger(chat_ui, [view[n] for n in names], [view["chatbot"], view["query"]], **ask)
    return view


def build() -> gr.Blocks:
    with gr.Blocks(title="Layer-choice distillation") as demo:
        gr.Markdown(
            "# Which teacher layers should a student start from?\n"
            "Distil a BERT-style encoder on MNLI into smaller students initialised from different teacher "
            "layers, and see which choice wins, by how much, and how sure that is. "
            "Layer indices are 0-based (layer 0 is next to the embeddings)."
        )
        with gr.Tabs() as tabs:  # ids: ?compare=RUN selects the Compare tab (open_comparison)
            with gr.Tab("Distill", id="distill"):
                form, job = distill_tab()
            with gr.Tab("Compare", id="compare"):
                compare = compare_tab()
            with gr.Tab("Chat", id="chat"):
                chat_view = chat_tab()
        compare["tabs"] = tabs
        wire_api(form, job, compare, chat_view)
        demo.load(named(open_comparison, compare), compare["run"], [compare[n] for n in COMPARISON_OPEN], **UI_ONLY)
        demo.load(named(refresh_models, chat_view), None, [chat_view[n] for n in CHAT_REFRESH], **UI_ONLY)
        demo.load(watch_link, None, job["state"], **WATCHERS, concurrency_id="page-watch", **UI_ONLY)
        demo.load(named(watched_settings, form), None, list(form.values()), queue=False, **UI_ONLY)
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo


def wire_api(form: View, job: View, compare: View, chat_view: View) -> None:
    """The public API (stable names, plain data) and the events that cross tabs; the UI's own are undocumented."""
    # The job events only submit to the app's worker (one job at a time, its own queue) and watch: they never
    # wait in Gradio's queue behind another job's watcher, so a job is named and queued at once.
    training = {"concurrency_limit": WATCHERS["concurrency_limit"], "concurrency_id": "jobs"}
    chat_refresh = [chat_view[n] for n in CHAT_REFRESH]
    # The refusals by the Run button and their sections opened first, then the job: its validator marks the
    # fields (in Gradio 6.31 the events of a click after one its validator refuses do not run).
    refused_view = [job["header"], job["refused_sections"]]
    shown = named(by_name(show_refusals, form), job)
    job["run"].click(shown, set(form.values()), refused_view, queue=False, **UI_ONLY).then(
        None, job["refused_sections"], None, js=OPEN_SECTIONS, **UI_ONLY
    ).then(
        run_job,
        job_inputs(run_job, form),
        job["state"],
        api_name="run_job",
        validator=run_job.validator,
        # Unprocessed inputs: the validator runs on processed ones, and a value Gradio cannot process
        # (text sent to a number) would be refused there without its message; JobConfig says which.
        preprocess=False,
        **training,
    )
    job["resume"].click(
        resume_job, job["resume_name"], job["state"], api_name="resume_job", validator=resume_job.validator, **training
    )
    gr.api(stop_job, api_name="stop_job", queue=False)
    gr.api(watch_job, api_name="watch_job", **WATCHERS, concurrency_id="watch")
    gr.api(runs, api_name="list_runs")
    gr.api(comparison_api, api_name="comparison")
    gr.api(models, api_name="models")
    gr.api(chat_api, api_name="chat", queue=False)  # answered directly: no queue round trips

    job["stop"].click(stop_shown, [job["state"], job["token"]], None, queue=False, **UI_ONLY)
    on_jobs = [job["jobs_group"], job["run"], job["where_note"]]
    job["backend"].change(show_backend, job["backend"], on_jobs, queue=False, **UI_ONLY)
    launch_inputs = {**{n: form[n] for n in form}, **{n: job[n] for n in JOBS_INPUTS}}
    estimate = by_name(estimate_jobs, launch_inputs)
    job["estimate_button"].click(estimate, set(launch_inputs.values()), job["estimate"], **UI_ONLY)
    job["flavor"].input(estimate, set(launch_inputs.values()), job["estimate"], **UI_ONLY)
    job["launch"].click(by_name(launch_on_jobs, launch_inputs), set(launch_inputs.values()), job["state"], **UI_ONLY)
    job["state"].change(None, job["state"], None, js=RUN_IN_ADDRESS, **UI_ONLY)
    job_view = [job[n] for n in JOB_VIEW]
    job["state"].change(named(render_job, job), job["state"], job_view, queue=False, **UI_ONLY)
    refresh = named(refresh_models, chat_view)
    lists = {"compare_run": compare["run"], **{name: chat_view[name] for name in CHAT_REFRESH}}
    job["state"].change(named(lists_after, lists), job["state"], list(lists.values()), queue=False, **UI_ONLY)
    chat_view["refresh"].click(refresh, None, chat_refresh, **UI_ONLY)
    chat_view["timer"].tick(refresh, None, chat_refresh, **UI_ONLY)
    quick_event = chat_view["quick"].click(
        quick_student,
        chat_view["own"],
        chat_view["quick_progress"],
        validator=quick_student.validator,
        api_name="quick_student",
        **training,
    )
    quick_event.then(named(lists_after, lists), None, list(lists.values()), **UI_ONLY)


demo = build()
# Reading tools for MCP clients; the job endpoints are not tools: they run for minutes and, on a shared Space,
# spend its GPU.
MCP_TOOLS = ("/chat", "/comparison", "/models", "/list_runs")


def json_tool_results(server) -> None:
    """MCP tool results as JSON text. Gradio 6.31's GradioMCPServer.postprocess_output_data sends a value that
    is no file as str(value), a Python repr (single quotes, False, None) that json.loads cannot read: on this
    server object a dict goes as its JSON instead, and a list (list_runs, models) as {"result": [...]}, an object as
    Gradio's structured_output and the MCP SDK wrap one. Only the MCP text changes, not the API's answers."""
    from gradio_client.utils import is_file_obj_with_meta  # a file goes as Gradio sends it

    shown = server.postprocess_output_data

    def postprocess_output_data(data: list, root_url: str) -> list:
        contents = []
        for value in data:
            if isinstance(value, list) or (isinstance(value, dict) and not is_file_obj_with_meta(value)):
                text = json.dumps(value if isinstance(value, dict) else {"result": value})
                contents.append(server.types.TextContent(type="text", text=text))
            else:
                contents.extend(shown([value], root_url))
        return contents

    server.postprocess_output_data = postprocess_output_data


class CancelJobs:
    """ASGI middleware: a client's cancel of a job request (gradio_client's Job.cancel(): a POST to
    /gradio_api/cancel naming the request's event id) drops the job that request submitted, and only it, while
    it is queued (`JobRunner.cancel`); Gradio then ends the request as it always does."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/cancel"):
            return await self.app(scope, receive, send)
        messages, body = [], b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        with contextlib.suppress(ValueError, AttributeError):  # not JSON, or not an object: Gradio answers it
            RUNNER.cancel(str(json.loads(body).get("event_id") or ""))

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


GRADIO_TOO_FEW = re.compile(r"didn't receive enough input values \(needed: (\d+), got: (\d+)\)")


def plain_gradio_text(text: str) -> str:
    """Gradio's own refusal as one line that says what to do: its pydantic text for a file argument that is no
    uploaded file, its event-handler text for missing arguments; any other less its server paths."""
    if "validation error for FileData" in text:
        return "a file argument must be a file uploaded with the request (gradio_client.handle_file), not a path"
    if found := GRADIO_TOO_FEW.search(text):
        needed, got = found.groups()
        return f"this endpoint takes {needed} arguments, got {got}: see its parameters with client.view_api()"
    return strip_paths(text)


def hide_server_paths() -> dict:
    """Gradio's own error messages, in one plain line (`plain_gradio_text`) without server paths
    (`errors.strip_paths`): a file payload outside its upload
    folder is refused naming its absolute path (under the app's folder for a relative one), in a 400 or an error
    event. Gradio 6.31 has no setting for that text (allowed_paths and blocked_paths decide access only), so its
    error payload is wrapped, once; returns the handler of its HTTP errors, for launch's app_kwargs."""
    if not getattr(gradio.utils.error_payload, "hides_paths", False):
        shown = gradio.utils.error_payload

        def error_payload(error: BaseException | None, show_error: bool) -> dict:
            content = shown(error, show_error)
            if isinstance(content.get("error"), str):
                content["error"] = plain_gradio_text(content["error"])
            return content

        error_payload.hides_paths = True
        gradio.utils.error_payload = gradio.queueing.error_payload = error_payload

    async def http_error(request, err: HTTPException):
        detail = plain_gradio_text(err.detail) if isinstance(err.detail, str) else err.detail
        return await http_exception_handler(request, HTTPException(err.status_code, detail, err.headers))

    return {HTTPException: http_error}


def launch(prevent_thread_lock: bool = False, **options) -> None:
    """Start the app as a web page, a Python API and an MCP server.

    show_error: a value Gradio itself refuses reaches the client with its message, less any server path
    (`hide_server_paths`). Downloads are served from copies in the temp folder (results.download_copies), never
    from the results folder.
    """
    theme = gr.themes.Soft()
    start_quick_student()
    demo.launch(
        max_file_size="50mb",
        show_error=True,
        theme=theme,
        css=CSS,
        mcp_server=True,
        prevent_thread_lock=True,
        max_threads=MAX_THREADS,
        app_kwargs={"middleware": [Middleware(CancelJobs)], "exception_handlers": hide_server_paths()},
        **options,
    )
    server = demo.mcp_server_obj
    if server is not None:  # tools named as their endpoints (chat, comparison, ...), not as Python functions
        server.tool_to_endpoint = {server.tool_prefix + api.lstrip("/"): api for api in MCP_TOOLS}
        json_tool_results(server)
    if not prevent_thread_lock:
        demo.block_thread()


if __name__ == "__main__":
    launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )
