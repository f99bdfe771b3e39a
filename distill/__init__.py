"""Distil a BERT-style encoder into smaller students and compare which teacher layers they should start from."""

from .config import ConfigError, JobConfig
from .job import run_job

__all__ = ["ConfigError", "JobConfig", "run_job"]
