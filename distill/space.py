"""Hugging Face Spaces glue: settings from space_config/, public-Space limits, ZeroGPU, optional Hub upload."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, JobConfig
from .hub import scrub
from .search import variants

SETTINGS_FILE = Path(__file__).resolve().parent.parent / "space_config" / "space.yaml"


@cache
def settings() -> dict[str, Any]:
    return yaml.safe_load(SETTINGS_FILE.read_text(encoding="utf-8"))


def results_dir() -> str:
    s = settings()
    return os.environ.get(s["results_dir_env"]) or s["results_dir_default"]


def hardware() -> str:
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def is_public_space() -> bool:
    """True on the original shared Space, where visitors' jobs are limited; False on duplicates and locally."""
    return os.environ.get("SPACE_ID") == settings()["original_space"]


def default_job() -> JobConfig:
    return JobConfig.from_dict({**settings()["defaults"][hardware()], "results_dir": results_dir()})


def enforce_limits(cfg: JobConfig) -> None:
    """On the public Space, refuse jobs bigger than its limits, and say how to run them."""
    if not is_public_space():
        return
    limits = settings()["public_limits"]
    checks = [
        ("train_size", cfg.train_size or 10**9, limits["max_train_size"]),
        ("eval_size", cfg.eval_size or 10**9, limits["max_eval_size"]),
        ("epochs", cfg.epochs, limits["max_epochs"]),
        ("teacher_epochs", cfg.teacher_epochs, limits["max_teacher_epochs"]),
        ("seeds", len(cfg.seeds), limits["max_seeds"]),
        ("strategies", len(cfg.strategies), limits["max_strategies"]),
        ("students", len(variants(cfg)) * len(cfg.seeds), limits["max_students"]),
    ]
    upload = Path(cfg.data)
    if upload.is_file() and upload.stat().st_size > limits["max_upload_mb"] * 2**20:
        raise ConfigError(f"uploads are limited to {limits['max_upload_mb']} MB on this shared Space")
    for name, value, limit in checks:
        if value > limit:
            raise ConfigError(
                f"{name} is limited to {limit} on this shared Space; duplicate the Space to run bigger jobs"
            )


def job_time_limit() -> float | None:
    """Seconds a visitor's job may run on the public Space (None elsewhere)."""
    return settings()["public_limits"]["max_job_minutes"] * 60 if is_public_space() else None


def slice_seconds() -> float | None:
    """Length of one job slice: DISTILL_SLICE_SECONDS if set, on ZeroGPU its call duration less a margin for
    saving, otherwise None (the job runs in one piece)."""
    if os.environ.get("DISTILL_SLICE_SECONDS"):
        return float(os.environ["DISTILL_SLICE_SECONDS"])
    if os.environ.get("SPACES_ZERO_GPU"):
        return settings()["zerogpu"]["duration_s"] - settings()["zerogpu"]["margin_s"]
    return None


def gpu_task(fn: Callable) -> Callable:
    """spaces.GPU on ZeroGPU hardware (where the `spaces` package exists); the function itself elsewhere."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=settings()["zerogpu"]["duration_s"])(fn)


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
            ignore_patterns=["cache/*", "checkpoints/*", ".*"],
        )
    except Exception as err:  # network, permission or quota: report, never crash the app
        raise ConfigError(scrub(f"upload to {repo} failed: {err}")) from None
    return f"https://huggingface.co/{repo}/tree/main/{run_path.name}"
