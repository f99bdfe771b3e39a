"""Distil a BERT-style encoder into smaller students and compare which teacher layers they should start from."""

import os

# PyTorch runs bf16 matmuls on CPU through oneDNN, which keeps a compiled primitive per shape, up to 1,024 of them.
# Length-grouped batches have hundreds of shapes: in the default job the cache held about 0.5 GiB of a 2 GiB peak,
# for no measured gain in speed (`python -m bench.onednn_cache`). A capacity set in the environment is kept.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

from .config import ConfigError, JobConfig

__all__ = ["ConfigError", "JobConfig", "run_job"]


def __getattr__(name: str):
    """`distill.run_job` on first use: the training stack (torch, transformers, accelerate: seconds to import) is
    loaded when a job runs, not when `python -m distill --help` or a config check starts."""
    if name == "run_job":
        from .job import run_job

        return run_job
    raise AttributeError(f"module 'distill' has no attribute {name!r}")
