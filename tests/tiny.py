"""Helpers for tests that make, copy and damage small runs (the `good_run` fixture in conftest makes one)."""

from __future__ import annotations

import shutil
from pathlib import Path

from distill.results import Run

# A job that takes seconds: 2 training steps per model, 32 validation rows per split.
TINY = {"train_size": 64, "eval_size": 32, "epochs": 1, "teacher_epochs": 1, "latency_examples": 8, "seeds": [0]}


def copy_run(run: Run, root: Path, name: str) -> Run:
    """A copy of `run` named `name` inside `root`."""
    shutil.copytree(run.path, Path(root) / name)
    return Run(Path(root) / name)


def cut(path: Path, keep: float | None = None) -> None:
    """Cut a file short, as a lost write would: by default its last 25 bytes (mid-record)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep else data[:-25])
