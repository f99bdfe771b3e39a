"""The results store: one folder per run, every file written atomically, runs listable after a restart.

runs/<run>/
  config.json        the exact job settings       environment.json  package versions, device
  status.json        running / completed / failed / stopped / paused, with a message and the time spent running
  heartbeat.json     the lease of the job writing the run (`lease.py`), renewed every 10 s: a stale one means
                     the job is gone
  stop-request.json  another process asking the lease's holder to stop
  progress.json      the job's live view (steps, log, loss per step, finished models), for watchers anywhere
  owner.json         on the public Space, a hash of the visitor who started the run (for stop and resume)
  data/              a copy of the user's data file(s), so the run resumes after the upload is gone
  metrics.jsonl      one row per model and epoch; epoch 0 is a student before its first step
  summary.json, summary.csv  one row per model (`summary.SummaryRow`; a model that failed has `failed`, its reason,
                     and no metrics); the CSV has each split's metrics as `<split>_<metric>` columns
  predictions.json   predicted labels per model and validation split (for paired tests)
  probabilities/<model>.npz  class probabilities per validation split, float32 (for ensembles)
  models/<name>/     save_pretrained folders (safetensors + tokenizer)
  checkpoints/<name>.pt  training state after the last finished epoch of a model still in training
  plots/*.png        written by `python -m distill report`
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import lease  # lease writes run files too: imported as a module, the two may import each other
from .config import RUN_NAME, ConfigError, JobConfig, default_results_dir
from .errors import UserError, echo, first_line, scrub
from .progress import JobState
from .schema import (
    CONFIG,
    HEARTBEAT,
    OWNER,
    PROGRESS,
    finished,
    labels_problem,
    metrics_row,
    predictions_problem,
    probabilities_problem,
    status_problem,
    summary_file,
    summary_rows,
)
from .strategies import RANDOM_INIT
from .summary import SummaryRow, flat, from_file, recommended_student

STATES = ("running", "completed", "failed", "stopped", "paused", "interrupted")
RESUMABLE = ("stopped", "paused", "interrupted", "failed")
DAMAGED = "damaged"  # listed for a run whose files cannot be read; never stored


class DamagedRun(UserError):
    """A run file that exists but cannot be read; the message names the run and the file, never a server path."""


# Settings added later, with the behaviour runs had before them (their defaults now differ).
BEFORE_SETTINGS_EXISTED = {
    "freeze_word_embeddings": False,
    "dropout": None,
    "eval_every_epoch": True,
    "max_tokens_per_pass": 0,
    "teacher_freeze_word_embeddings": False,
    "teacher_dropout": None,
    "cls_only_last_layer": False,
}


TEMPORARY = ".*.tmp"  # every write goes through a hidden sibling named so, then renames it into place


def temporary_path(target: Path, tag: str = "") -> Path:
    """The hidden sibling (`.NAME.tmp`, or `.NAME.TAG.tmp`) a write of `target` goes through: a file or a folder
    matching `TEMPORARY`, which `Run.remove_leftover_temporaries` deletes where a killed writer left one."""
    return target.with_name(f".{target.name}.{tag}.tmp" if tag else f".{target.name}.tmp")


def atomic_write(path: Path, content: str | bytes) -> None:
    """Write via a temporary file in the same folder and rename it over the target: old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # a unique TEMPORARY
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, to_json(value, indent=2) + "\n")


def to_json(value: Any, indent: int | None = None) -> str:
    """Strict JSON: numpy values as lists and numbers, and NaN or infinity as null (never a bare NaN)."""
    return json.dumps(finite(value), indent=indent, default=_jsonable, allow_nan=False)


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity in it (in dicts, lists, tuples, numpy arrays) as None; other values
    as they are. The app passes every answer through it: Gradio writes a bare NaN, which JSON does not allow."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, tuple):  # a Gradio function's several outputs
        return tuple(finite(v) for v in value)
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return finite(value.tolist())
    return value


def read_json(path: Path, default: Any = None) -> Any:
    """A JSON file's value, or `default` when the file does not exist; DamagedRun when it exists but cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError) as err:
        raise DamagedRun(f"{path.name} cannot be read ({_reason(err)})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DamagedRun(f"{path.name} is not valid JSON ({err.msg}, line {err.lineno})") from None


def _reason(err: BaseException) -> str:
    if isinstance(err, UnicodeDecodeError):
        return "not UTF-8 text"
    return err.strerror if isinstance(err, OSError) and err.strerror else "unreadable"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def environment() -> dict[str, Any]:
    import accelerate
    import torch
    import transformers

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }
    return {
        "versions": versions,
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


class Run:
    """One run folder. Its readers check what they read: a damaged file raises DamagedRun, naming it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._metrics: list[dict] | None = None
        self.writing = threading.RLock()  # held while a record is read and rewritten (students train side by side)

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, cfg: JobConfig) -> Run:
        root = Path(cfg.results_dir)
        name = cfg.run_name or time.strftime("%Y%m%d-%H%M%S")
        path = root / name
        if path.exists():
            if cfg.run_name:
                raise ConfigError(f"a run named {name!r} already exists; choose another name")
            path = root / f"{name}-{os.getpid()}"
        try:
            path.mkdir(parents=True)
        except OSError as err:
            raise UserError(f"cannot create the run folder {path.name}: {err.strerror}") from err
        run = cls(path)
        write_json(path / "config.json", run._keep_data(cfg))
        write_json(path / "environment.json", environment())
        run.set_status("running")
        return run

    def _keep_data(self, cfg: JobConfig) -> dict[str, Any]:
        """The settings to store, with the user's data files copied into data/ and named relative to the run:
        an upload is a temporary file, gone after a restart, and a resumed run needs it again."""
        values = cfg.to_dict()
        if Path(cfg.data).is_file():
            values["data"] = self._copy_in(Path(cfg.data), f"{DATA_DIR}/train")
        values["eval_data"] = [self._copy_in(Path(f), f"{DATA_DIR}/eval{i}") for i, f in enumerate(cfg.eval_data)]
        return values

    def _copy_in(self, source: Path, folder: str) -> str:
        relative = f"{folder}/{source.name}"  # the file's own name: a validation split is named after it
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(target)
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        return relative

    def remove_leftover_temporaries(self, older_than: float) -> None:
        """Delete the hidden temporary files and folders (`TEMPORARY`) that a writer killed mid-write left: never
        a result, since a write renames its temporary into place. Called by the run's one writer once it holds
        the lease; those from before `older_than` (a time.time()) are no write of its own in flight."""
        for path in sorted(self.path.rglob(TEMPORARY), reverse=True):  # a folder's own leftovers first
            with contextlib.suppress(OSError):
                if path.lstat().st_mtime < older_than:
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    def job_config(self) -> JobConfig:
        """The run's settings, with its kept copies of the user's data files, in the results folder it is in now
        (a bucket may be mounted elsewhere after a restart)."""
        values = {**self.config(), "results_dir": str(self.path.parent)}
        if str(values.get("data", "")).startswith(f"{DATA_DIR}/"):
            values["data"] = str(self.path / values["data"])
        values["eval_data"] = [
            str(self.path / f) if str(f).startswith(f"{DATA_DIR}/") else f for f in values.get("eval_data") or []
        ]
        return self._settings(values)

    def _settings(self, values: dict[str, Any]) -> JobConfig:
        try:
            return JobConfig.from_dict(values)
        except ConfigError as err:
            field = f" field {err.setting}" if err.setting and err.setting not in str(err) else ""
            raise DamagedRun(f"run {self.name} is damaged: config.json{field}: {err}") from None

    def log_failure(self, err: BaseException) -> None:
        """Append `err` with its traceback (tokens scrubbed) to the run's errors.log: the user is shown one line,
        the log keeps what a developer needs. Best effort: a full disk must not hide the original error."""
        text = "".join(traceback.format_exception(err))
        entry = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {type(err).__name__}\n{scrub(text)}\n"
        with contextlib.suppress(OSError), self.writing:
            atomic_write(self.path / "errors.log", self.read_log() + entry)

    def read_log(self) -> str:
        path = self.path / "errors.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    def set_status(self, state: str, message: str = "") -> None:
        """Record the state; `busy_seconds` adds up the time spent running (pauses and stops not counted)."""
        assert state in STATES
        now = time.time()
        previous = self._status()
        busy = previous.get("busy_seconds", 0.0)
        if previous.get("state") == "running":
            busy += self._running_until(previous, now) - previous["time"]
        status = {"state": state, "message": message, "time": now, "pid": os.getpid(), "host": socket.gethostname()}
        write_json(self.path / "status.json", {**status, "started": previous.get("started", now), "busy_seconds": busy})

    def status(self) -> dict[str, Any]:
        """The stored state, except that a run stored as running whose job is gone reads "interrupted"."""
        status = self._status()
        if status["state"] == "running" and not self._alive(status):
            message = "the job ended without finishing the run (killed, or its machine restarted)"
            status = {**status, "state": "interrupted", "message": message}
        return status

    def public_status(self) -> dict[str, Any]:
        """The status as visitors see it: no process id or host name."""
        status = self.status()
        return {"state": status["state"], "message": status.get("message", ""), "busy_seconds": self.busy_seconds()}

    def _status(self) -> dict[str, Any]:
        return self._read("status.json", {"state": "failed", "message": "no status file"}, _status_problem)

    def busy_seconds(self) -> float:
        """Seconds spent running over all of the run's starts; a job that died counts up to its last heartbeat."""
        status = self._status()
        busy = status.get("busy_seconds", 0.0)
        if status["state"] == "running":
            busy += self._running_until(status, time.time()) - status["time"]
        return busy

    def _last_heartbeat(self) -> float:
        return lease.beat_time(lease.read_lease(self.path)) or 0.0

    def _alive(self, status: dict) -> bool:
        """Whether the run's job still runs: its holder (the lease's, else the status's writer) wrote the lease or
        the status within a minute and, on this host, its process lives (`lease.is_alive`).

        Liveness cannot trust a process id: on a Space every restart is a new container with a new host name,
        and the run folder lives on in a mounted bucket. A lease that has gone stale means the job is gone.
        """
        held = lease.read_lease(self.path) or {}  # a lease of old holds its time only
        times = [t for t in (lease.beat_time(status), lease.beat_time(held)) if t is not None]
        return lease.is_alive({**status, **held, "time": max(times, default=None)})

    def _running_until(self, status: dict, now: float) -> float:
        """When the run last ran: now if its job is alive, else its last heartbeat (a restarted container may
        reuse the process id and host name: its downtime is not busy time)."""
        return now if self._alive(status) else max(status["time"], self._last_heartbeat())

    def save_progress(self, snapshot: dict[str, Any]) -> None:
        write_json(self.path / PROGRESS_FILE, snapshot)

    def progress(self) -> dict[str, Any]:
        """What a watcher shows for a run that no job of this process is running: its last saved progress, with
        the stored state (and its message as the last log line) and the finished models from the summary."""
        saved = self._read(PROGRESS_FILE, {}, PROGRESS)
        status = self.public_status()
        view = JobState(self.name, status["state"], status["state"])
        view.update(**{key: saved[key] for key in ("log", "curve", "done", "total") if key in saved})
        if status["state"] == "running" and isinstance(saved.get("stage"), str):
            view.stage = saved["stage"]
        keys = ("model", "strategy", "layers", "accuracy", "failed")
        view.models = [{k: row.get(k) for k in keys} for row in self.summary()]
        if not view.log:  # a run written before progress was saved: its models say what it did
            for row in view.models:
                said = row["failed"] or (f"accuracy {row['accuracy']:.4f}" if row["accuracy"] is not None else "")
                view.add_log(f"{row['model']} (layers {row['layers']}): {said}")
        if status["message"] and view.log[-1:] != [status["message"]]:
            view.add_log(status["message"])
        return view.snapshot()

    def owned_by(self, visitor: str | None) -> bool:
        """Whether `visitor` (on the public Space) started this run; without a visitor (a duplicate, a local app)
        every run is open. A run with no recorded owner belongs to no visitor."""
        if visitor is None:
            return True
        return self._read(OWNER_FILE, {}, OWNER).get("owner") == _hash(visitor)

    def set_owner(self, visitor: str) -> None:
        write_json(self.path / OWNER_FILE, {"owner": _hash(visitor)})

    def config(self) -> dict[str, Any]:
        """The stored settings, checked as a JobConfig (typed, in range); a run written before a setting existed
        ran with its behaviour of the time."""
        stored = self._read("config.json", None, CONFIG)
        if not stored:  # a run's settings gone or emptied: listed as damaged, never read as the defaults
            raise DamagedRun(
                f"run {self.name} is damaged: config.json {'is missing' if stored is None else 'is empty'}"
            )
        return self._settings({**BEFORE_SETTINGS_EXISTED, **stored}).to_dict()

    def teacher(self) -> str:
        """The teacher as visitors may see it: a Hub id, 'embedded', or a local folder's name (never its path)."""
        teacher = str(self.config().get("teacher", ""))
        return Path(teacher).name if Path(teacher).is_absolute() else teacher

    @property
    def metrics(self) -> list[dict]:
        if self._metrics is None:
            try:
                rows = read_jsonl(self.path / "metrics.jsonl")
            except DamagedRun as err:
                raise DamagedRun(f"run {self.name} is damaged: {err}") from None
            for number, row in enumerate(rows, start=1):
                issue = metrics_row(row)
                if issue:
                    raise DamagedRun(f"run {self.name} is damaged: metrics.jsonl line {number} {issue}")
            self._metrics = rows
        return self._metrics

    def add_metrics(self, rows: list[dict]) -> None:
        with self.writing:
            self.metrics.extend(rows)
            atomic_write(self.path / "metrics.jsonl", "".join(to_json(r) + "\n" for r in self.metrics))

    def summary(self) -> list[SummaryRow]:
        """One row per model (`summary.SummaryRow`); a model whose accuracy is not a finite number reads as
        failed."""
        rows = self._read("summary.json", [], summary_file)
        splits = list(self.labels()) if any("splits" not in r for r in rows) else []
        rows = [from_file(r, splits) for r in rows]
        self._damaged_if("summary.json", summary_rows(rows))
        return [_mark_failed(r) for r in rows]

    def record_row(self, row: SummaryRow) -> None:
        """A model's summary row, in place of any earlier one; its training checkpoint is no longer needed."""
        with self.writing:
            self.write_summary([r for r in self.summary() if r["model"] != row["model"]] + [row])
            self.checkpoint(row["model"]).unlink(missing_ok=True)

    def write_summary(self, rows: list[SummaryRow]) -> None:
        write_json(self.path / "summary.json", rows)
        atomic_write(self.path / "summary.csv", to_csv([flat(r) for r in rows]))

    def predictions(self) -> dict[str, dict[str, list[int]]]:
        return self._read("predictions.json", {}, lambda value: predictions_problem(value, self.labels()))

    def labels(self) -> dict[str, list[int]]:
        return self._read("labels.json", {}, labels_problem)

    def add_predictions(self, model: str, predictions: dict[str, list[int]]) -> None:
        with self.writing:
            write_json(self.path / "predictions.json", {**self.predictions(), model: predictions})

    def probabilities(self, model: str) -> dict[str, np.ndarray]:
        """A model's class probabilities per validation split (empty for runs made before they were kept)."""
        path = self.path / "probabilities" / f"{model}.npz"
        if not path.exists():
            return {}
        try:
            with np.load(path) as saved:
                arrays = {split: saved[split] for split in saved.files}
        except Exception:  # a cut, flipped or replaced file raises zip, zlib, OS or value errors
            raise DamagedRun(f"run {self.name} is damaged: probabilities/{model}.npz cannot be read") from None
        self._damaged_if(f"probabilities/{model}.npz", probabilities_problem(arrays, self.labels()))
        return {split: array.astype(np.float32) for split, array in arrays.items()}

    def add_probabilities(self, model: str, probabilities: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        # float32: half precision rounds a near-uniform model's probabilities into ties, and their argmax then
        # no longer reproduces the saved prediction.
        np.savez_compressed(buffer, **{split: p.astype(np.float32) for split, p in probabilities.items()})
        atomic_write(self.path / "probabilities" / f"{model}.npz", buffer.getvalue())

    def checkpoint(self, model: str) -> Path:
        """Where a model's training state is kept between epochs until the model is saved."""
        return self.path / "checkpoints" / f"{model}.pt"

    def model_dir(self, name: str) -> Path:
        return self.path / "models" / name

    def save_model(self, name: str, model, tokenizer) -> Path:
        """save_pretrained into a temporary folder, then rename it into place."""
        return save_pretrained_atomic(self.model_dir(name), model, tokenizer)

    def link_model(self, name: str, source: Path) -> Path:
        """Place an already saved model folder into the run (hard links where possible, else copies)."""
        target = self.model_dir(name)
        tmp = temporary_path(target)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, copy_function=_link_or_copy)
        os.replace(tmp, target)
        return target

    def check(self) -> None:
        """Read every file of the run, raising DamagedRun for the first that cannot be used.

        The verdict is kept until one of the files changes, so listing many runs stays cheap.
        """
        stamp = self._stamp()
        known = _CHECKED.get(self.path)
        if known is None or known[0] != stamp:
            try:
                self._check_files()
                known = (stamp, None)
            except DamagedRun as err:
                known = (stamp, str(err))
            _CHECKED[self.path] = known
        if known[1]:
            raise DamagedRun(known[1])
        beat = lease.read_lease(self.path)  # rewritten every few seconds: read each time, never kept
        self._damaged_if(HEARTBEAT_FILE, HEARTBEAT(beat) if beat is not None else None)

    def _check_files(self) -> None:
        self.job_config()
        self.status()
        self.metrics  # noqa: B018 (read for its check)
        self._read(PROGRESS_FILE, {}, PROGRESS)
        self._read(OWNER_FILE, {}, OWNER)
        predictions = self._read("predictions.json", None, lambda value: predictions_problem(value, self.labels()))
        kept = (self.path / "probabilities").is_dir()  # runs made before probabilities were kept have none
        labels = self.labels()
        summary = self.summary()
        if not summary and self._status()["state"] == "completed":
            self._damaged_if("summary.json", "lists no models, yet the run is completed")
        for row in summary:
            if row.get("failed"):
                continue
            if row["eval_split"] not in labels:
                where = "is missing" if not labels else f"has no split {row['eval_split']}"
                self._damaged_if("labels.json", f"{where} (summary.json scores {row['model']} on it)")
            if predictions is None or row["model"] not in predictions:
                missing = "is missing" if predictions is None else f"has no model {row['model']}"
                self._damaged_if("predictions.json", f"{missing} (summary.json lists {row['model']} as finished)")
            if kept and not (self.path / "probabilities" / f"{row['model']}.npz").is_file():
                self._damaged_if(f"probabilities/{row['model']}.npz", "is missing")
            self.probabilities(row["model"])
            folder = self.model_dir(row["model"])
            if folder.is_dir():  # a run may be kept without its models (they are large)
                _check_model_folder(folder, f"run {self.name} is damaged: models/{row['model']}")

    def _stamp(self) -> tuple:
        files = [p for p in self.path.glob("*") if p.is_file() and p.name not in (HEARTBEAT_FILE, PROGRESS_FILE)]
        files += list(self.path.glob("probabilities/*")) + list(self.path.glob("models/*/*"))
        return tuple(sorted((str(p.relative_to(self.path)), *_size_and_time(p)) for p in files))

    def _read(self, name: str, default: Any, problem: Callable[[Any], str | None]) -> Any:
        """A JSON file's value checked by `problem` (its schema), or `default` when there is no file (a file
        holding null is no missing file: it is checked like any other value)."""
        try:
            value = read_json(self.path / name, _MISSING)
        except DamagedRun as err:
            raise DamagedRun(f"run {self.name} is damaged: {err}") from None
        if value is _MISSING:
            return default
        self._damaged_if(name, problem(value))
        return value

    def _damaged_if(self, name: str, issue: str | None) -> None:
        """Raise DamagedRun naming the run, its file `name` and the `issue` (its schema's answer), if any."""
        if issue:
            raise DamagedRun(f"run {self.name} is damaged: {name} {issue}")


_CHECKED: dict[Path, tuple[tuple, str | None]] = {}
_MISSING = object()
DATA_DIR = "data"
HEARTBEAT_FILE = "heartbeat.json"
PROGRESS_FILE = "progress.json"  # rewritten every few seconds while a job runs, like the heartbeat
OWNER_FILE = "owner.json"


def _hash(visitor: str | None) -> str:
    return hashlib.sha256(str(visitor).encode()).hexdigest()


def _size_and_time(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)


_status_problem = status_problem(STATES)


def _mark_failed(row: dict) -> dict:
    if row.get("failed") or finished(row):
        return row
    return {**row, "failed": "its accuracy is not a finite number"}


def _check_model_folder(folder: Path, what: str) -> None:
    """The model's config parses and each weights file's header fits the file (a cut file does not)."""
    from safetensors import safe_open

    try:
        config = read_json(folder / "config.json")
    except DamagedRun as err:
        raise DamagedRun(f"{what}/{err}") from None
    if config is not None and not isinstance(config, dict):
        raise DamagedRun(f"{what}/config.json does not hold a JSON object")
    safetensors = list(folder.glob("*.safetensors"))
    if not safetensors and not any(folder.glob("pytorch_model*.bin")):
        raise DamagedRun(f"{what} has no weights file (model.safetensors)")
    for weights in safetensors:
        try:
            with safe_open(str(weights), "np") as f:
                f.keys()
        except Exception as err:  # safetensors raises its own error types for a cut or overwritten file
            raise DamagedRun(f"{what}/{weights.name} cannot be read ({first_line(err, 120)})") from None


def save_pretrained_atomic(target: Path, model, tokenizer) -> Path:
    tmp = temporary_path(target)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)  # a half-written model must not fill the disk further
        # safetensors reports I/O failures (a full disk) as its own error type, "... (os error 28)"
        code = re.search(r"os error (\d+)", str(err))
        if code and not isinstance(err, OSError):
            raise OSError(int(code[1]), os.strerror(int(code[1]))) from err
        raise
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def read_jsonl(path: Path) -> list[Any]:
    """The values of a JSON-lines file (empty when it does not exist); DamagedRun names a line that does not parse."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        raise DamagedRun(f"{path.name} cannot be read ({_reason(err)})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise DamagedRun(f"{path.name} line {number} is not valid JSON") from None
    return rows


def to_csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()})
    return out.getvalue()


Roots = str | Path | list[str | Path] | None


def _roots(results_dir: Roots) -> list[Path]:
    if results_dir is None:
        return [Path(default_results_dir())]
    return [Path(r) for r in results_dir] if isinstance(results_dir, list) else [Path(results_dir)]


def openable_name(name: str) -> bool:
    """Whether `open_run` opens a run by this name: a run name, never one that could leave the results folder."""
    return bool(RUN_NAME.match(name)) and ".." not in name


def open_run(name_or_path: str | Path, results_dir: Roots = None, *, allow_paths: bool = True) -> Run:
    """A run by name inside the results folder(s), or (with `allow_paths`, as on the command line) by folder
    path; names never escape those folders."""
    name = str(name_or_path)
    if openable_name(name):
        for run in find_runs(results_dir):
            if run.name == name:
                return run
    path = Path(name_or_path)
    if not allow_paths or not path.is_dir():
        raise UserError(f"no run named {echo(name)}")
    if not is_run_folder(path):
        kind = "a saved model's folder" if is_model_folder(path) else "no config.json, status.json or summary.json"
        raise UserError(f"{echo(name)} is not a run folder ({kind})")
    return Run(path)


def download_copies(run: Run, names: tuple[str, ...] = ("summary.csv", "summary.json")) -> list[str]:
    """Copies of a run's result files in the system's temp folder, from where the app serves downloads: the
    results folder may be a mounted bucket anywhere, and serving it whole would expose every run's files."""
    folder = Path(tempfile.gettempdir()) / "distill-downloads" / run.name
    copies = []
    for name in names:
        if (run.path / name).is_file():
            atomic_write(folder / name, (run.path / name).read_bytes())
            copies.append(str(folder / name))
    return copies


RUN_MARKERS = ("config.json", "status.json", "summary.json")  # files only a run folder holds
MODEL_MARKERS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "tokenizer_config.json")


def is_model_folder(path: Path) -> bool:
    """Whether `path` is a saved model (`save_pretrained`), whose config.json is the model's, not a run's."""
    return any(os.path.lexists(path / name) for name in MODEL_MARKERS)


def is_run_folder(path: Path) -> bool:
    """Whether `path` holds any of a run's own files, whatever they have become: a config.json turned folder, or
    deleted beside the others, is a damaged run, not a folder to pass over. A saved model's folder is no run."""
    return any(os.path.lexists(path / name) for name in RUN_MARKERS) and not is_model_folder(path)


def find_runs(results_dir: Roots = None) -> list[Run]:
    """Every run folder in the results folder(s), damaged ones included. A folder given that is itself a run (a
    published run's tree, `distill.publish`) counts as one."""
    runs = []
    for root in _roots(results_dir):
        if is_run_folder(root):
            runs.append(Run(root))
        elif root.is_dir():
            paths = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.is_dir())
            runs += [Run(p) for p in paths if is_run_folder(p)]
    return runs


def intact_runs(results_dir: Roots = None) -> list[Run]:
    """The runs whose files all read well, under names they can be opened by."""
    intact = []
    for run in find_runs(results_dir):
        with contextlib.suppress(Exception):  # damaged, or unreadable in a way nobody foresaw: not served
            check_listed(run)
            intact.append(run)
    return intact


def check_listed(run: Run) -> None:
    """`Run.check`, and a folder name that `open_run` takes: a run listed by a name it cannot be opened by (a
    space in it) is listed as damaged, saying so, and not served."""
    if not openable_name(run.name):
        raise DamagedRun(
            f"run folder {echo(run.name)} has a name no command can open: rename it with letters, digits, '.', '_' "
            "and '-' only"
        )
    run.check()


def list_runs(results_dir: Roots = None) -> list[dict[str, Any]]:
    """Every run in the results folder(s), newest first, with its state and headline numbers; a run whose
    files cannot be read is listed as damaged, with the reason, and never hides the others."""
    return sorted((_listing(run) for run in find_runs(results_dir)), key=lambda r: r["started"], reverse=True)


def run_kind(run: Run) -> str | None:
    """What a run was set up to test, read from its own settings: a hyperparameter search, or a control (every
    student starting from random layers, or learning from the labels only, no teacher); None for a comparison
    of layer choices."""
    cfg = run.config()
    if cfg.get("search"):
        return "hyperparameter search"
    strategies = cfg.get("strategies") or []
    if strategies and all(s in RANDOM_INIT for s in strategies):
        return "control: random layers"
    if cfg.get("weight_ce") and not any(cfg.get(w) for w in ("weight_kl", "weight_cos", "weight_hidden")):
        return "control: hard labels only"
    return None


def run_label(run: Run, *, committed: bool = False, viewer: str | None = None, shared: bool = False) -> str:
    """A run in plain, true words: a committed run by what it is ("reference", "hyperparameter search",
    "control: random layers", "control: hard labels only"); any other is "your run" (with its kind), except on
    a shared Space (`shared`), where only the viewer's own runs are theirs and any other is "a visitor's run"."""
    kind = run_kind(run)
    if committed:
        return kind or "reference"
    whose = "your run" if not shared or (viewer is not None and run.owned_by(viewer)) else "a visitor's run"
    return f"{whose} ({kind})" if kind else whose


def _listing(run: Run) -> dict[str, Any]:
    entry = {"run": run.name, "started": _size_and_time(run.path / "config.json")[1] / 1e9}
    try:
        check_listed(run)
        status = run.public_status()
        summary = run.summary()
        best = recommended_student(summary)
        return {
            **entry,
            **status,
            "teacher": run.teacher(),
            "models": len(summary),
            "failed_models": sum(bool(r.get("failed")) for r in summary),
            "best_student": best["model"] if best else None,
        }
    except Exception as err:  # DamagedRun names the file; anything unforeseen still lists the run, as damaged
        reason = str(err) if isinstance(err, DamagedRun) else f"run {run.name} is damaged: its files cannot be read"
        return {
            **entry,
            "state": DAMAGED,
            "message": reason,
            "busy_seconds": None,
            "teacher": None,
            "models": 0,
            "failed_models": 0,
            "best_student": None,
        }
