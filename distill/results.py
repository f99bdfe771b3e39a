"""The results store: one folder per run, every file written atomically, runs listable after a restart.

runs/<run>/
  config.json        the exact job settings       environment.json  package versions, device
  status.json        running / completed / failed / stopped, with a message
  metrics.jsonl      one row per model and epoch; epoch 0 is a student before its first step
  summary.json, summary.csv  one row per model
  predictions.json   predicted labels per model and validation split (for paired tests)
  probabilities/<model>.npz  class probabilities per validation split, float32 (for ensembles)
  models/<name>/     save_pretrained folders (safetensors + tokenizer)
  checkpoints/<name>.pt  training state after the last finished epoch of a model still in training
  plots/*.png        written by `python -m distill report`
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import RUN_NAME, ConfigError, JobConfig, default_results_dir

STATES = ("running", "completed", "failed", "stopped", "paused", "interrupted")
RESUMABLE = ("stopped", "paused", "interrupted", "failed")


def atomic_write(path: Path, content: str | bytes) -> None:
    """Write via a temporary file in the same folder and rename it over the target: old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    atomic_write(path, json.dumps(value, indent=2, default=_jsonable) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return default


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
    """One run folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.metrics: list[dict] = read_jsonl(self.path / "metrics.jsonl")

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
                raise ConfigError(f"a run named {name!r} already exists in {root}; choose another name")
            path = root / f"{name}-{os.getpid()}"
        try:
            path.mkdir(parents=True)
        except OSError as err:
            raise ConfigError(f"cannot create the run folder {path}: {err.strerror}") from None
        run = cls(path)
        write_json(path / "config.json", cfg.to_dict())
        write_json(path / "environment.json", environment())
        run.set_status("running")
        return run

    def set_status(self, state: str, message: str = "") -> None:
        """Record the state; `busy_seconds` adds up the time spent running (pauses and stops not counted)."""
        assert state in STATES
        now = time.time()
        previous = read_json(self.path / "status.json", {})
        busy = previous.get("busy_seconds", 0.0)
        if previous.get("state") == "running" and previous.get("pid") == os.getpid():
            busy += now - previous["time"]
        status = {"state": state, "message": message, "time": now, "pid": os.getpid(), "host": socket.gethostname()}
        write_json(self.path / "status.json", {**status, "started": previous.get("started", now), "busy_seconds": busy})

    def status(self) -> dict[str, Any]:
        status = read_json(self.path / "status.json", {"state": "failed", "message": "no status file"})
        if status["state"] == "running" and not _alive(status):
            status = {**status, "state": "interrupted", "message": "the process ended without finishing the run"}
        return status

    def config(self) -> dict[str, Any]:
        return read_json(self.path / "config.json", {})

    def add_metrics(self, rows: list[dict]) -> None:
        self.metrics.extend(rows)
        atomic_write(
            self.path / "metrics.jsonl", "".join(json.dumps(r, default=_jsonable) + "\n" for r in self.metrics)
        )

    def summary(self) -> list[dict]:
        return read_json(self.path / "summary.json", [])

    def write_summary(self, rows: list[dict]) -> None:
        write_json(self.path / "summary.json", rows)
        atomic_write(self.path / "summary.csv", to_csv(rows))

    def predictions(self) -> dict[str, dict[str, list[int]]]:
        return read_json(self.path / "predictions.json", {})

    def add_predictions(self, model: str, predictions: dict[str, list[int]]) -> None:
        write_json(self.path / "predictions.json", {**self.predictions(), model: predictions})

    def probabilities(self, model: str) -> dict[str, np.ndarray]:
        """A model's class probabilities per validation split (empty for runs made before they were kept)."""
        path = self.path / "probabilities" / f"{model}.npz"
        if not path.exists():
            return {}
        with np.load(path) as saved:
            return {split: saved[split].astype(np.float32) for split in saved.files}

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
        tmp = target.with_name(f".{name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, copy_function=_link_or_copy)
        os.replace(tmp, target)
        return target


def save_pretrained_atomic(target: Path, model, tokenizer) -> Path:
    tmp = target.with_name(f".{target.name}.tmp")
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


def _alive(status: dict) -> bool:
    if status.get("host") != socket.gethostname():
        return True  # another machine's run: cannot tell, assume it is alive
    try:
        os.kill(int(status.get("pid", -1)), 0)
    except (OSError, ValueError):
        return False
    return True


def read_jsonl(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


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


def open_run(name_or_path: str | Path, results_dir: Roots = None, *, allow_paths: bool = True) -> Run:
    """A run by name inside the results folder(s), or (with `allow_paths`, as on the command line) by folder
    path; names never escape those folders."""
    name = str(name_or_path)
    if RUN_NAME.match(name) and ".." not in name:
        for root in _roots(results_dir):
            if (root / name / "config.json").is_file():
                return Run(root / name)
    path = Path(name_or_path)
    if not allow_paths or not path.is_dir():
        raise ConfigError(f"no run named {name!r}")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{name} is not a run folder (no config.json)")
    return Run(path)


def list_runs(results_dir: Roots = None) -> list[dict[str, Any]]:
    """Every run in the results folder(s), newest first, with its state and headline numbers."""
    runs = []
    paths = [p for root in _roots(results_dir) if root.is_dir() for p in root.iterdir()]
    for path in paths:
        if path.name.startswith(".") or not (path / "config.json").is_file():
            continue
        run = Run(path)
        status = run.status()
        summary = run.summary()
        students = [r for r in summary if r.get("role") == "student"]
        runs.append(
            {
                "run": path.name,
                "folder": str(path),
                "state": status["state"],
                "message": status.get("message", ""),
                "started": (path / "config.json").stat().st_mtime,
                "teacher": run.config().get("teacher"),
                "models": len(summary),
                "best_student": max(students, key=lambda r: r.get("accuracy", 0))["model"] if students else None,
            }
        )
    return sorted(runs, key=lambda r: r["started"], reverse=True)
