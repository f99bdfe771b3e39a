"""Distil a BERT-style encoder into smaller students and compare which teacher layers they should start from."""

import os

# PyTorch runs bf16 matmuls on CPU through oneDNN, which keeps a compiled primitive per shape, up to 1,024 of them.
# Length-grouped batches have hundreds of shapes: in the default job that cache held 0.35 GiB more at its peak, for
# a job 1.1x faster (`python -m bench.onednn_cache`; docs/performance.md). 16 keeps the job under its 2 GiB target;
# a capacity set in the environment (1024 where memory is not short) is kept.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

from .config import ConfigError, JobConfig

__all__ = ["ConfigError", "JobConfig", "JobPlan", "plan_job", "run_job"]
LAZY = {"run_job": "job", "plan_job": "plan", "JobPlan": "plan"}


def __getattr__(name: str):
    """`distill.run_job` and `distill.plan_job` on first use: the training stack (torch, transformers, accelerate:
    seconds to import) is loaded when a job is planned or run, not when `python -m distill --help` starts."""
    if name in LAZY:
        import importlib

        return getattr(importlib.import_module(f".{LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'distill' has no attribute {name!r}")
