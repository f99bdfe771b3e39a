"""A job's way in: its settings, its teacher and its data checked once, into the plan that runs (`job.run_job`).

Every caller (the CLI, the app's validator and worker, `JobRunner`) makes a plan once and hands it on, so a job
that cannot work is refused before it waits in a queue, and nothing is checked or read twice on its way.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from transformers import PretrainedConfig

from .config import HUB_DATA, ConfigError, JobConfig, about
from .data import Examples, load_job_data
from .models import is_mnli_classifier, load_model_config
from .strategies import PRETRAINED_LAYERS, StrategyContext, parse_layer_list, resolve_layers


@dataclass(frozen=True)
class TeacherPlan:
    """The teacher's source and config and the student depth."""

    source: str
    teacher_config: PretrainedConfig
    n_student: int

    @property
    def n_teacher(self) -> int:
        return self.teacher_config.num_hidden_layers

    @property
    def already_classifier(self) -> bool:
        """The teacher classifies MNLI labels already: it is used as is, not fine-tuned."""
        return is_mnli_classifier(self.teacher_config)


@dataclass(frozen=True)
class JobPlan:
    """A checked job: its settings (checked when the JobConfig was made), its teacher and depths, and its data."""

    cfg: JobConfig
    teacher: TeacherPlan
    examples: dict[str, Examples] | None  # the splits, read once; None: the Hub's MNLI, fetched when the job runs

    def data(self) -> dict[str, Examples]:
        return self.examples if self.examples is not None else load_job_data(self.cfg)

    def named(self, run_name: str) -> JobPlan:
        """The same plan with the run name a runner chose for it (a timestamp: a valid name by construction)."""
        cfg = copy.copy(self.cfg)  # not `replace`, which would check every setting again
        cfg.run_name = run_name
        return JobPlan(cfg, self.teacher, self.examples)


def plan_job(cfg: JobConfig) -> JobPlan:
    """Check what can be known before a job runs and read it once: its teacher's config (no weights), its layer
    choices and its data (a user's file and the shipped sample are read; the Hub's MNLI needs the network)."""
    teacher = check_teacher_and_layers(cfg)
    with about("data"):
        if cfg.data == HUB_DATA:
            from .data import HUB_DATASET
            from .hub import require_online

            require_online(HUB_DATASET)
            examples = None
        else:
            examples = load_job_data(cfg)
    return JobPlan(cfg, teacher, examples)


def check_teacher_and_layers(cfg: JobConfig) -> TeacherPlan:
    """The teacher's config read and the layer choices checked against it."""
    with about("teacher"):
        source, teacher_config = load_model_config(cfg.teacher)
        already_classifier = is_mnli_classifier(teacher_config)  # three labels in another order are refused here
    if already_classifier:  # used as is: one draw of the teacher, and no pre-trained encoder beside it
        if len(cfg.teachers) > 1:
            raise ConfigError(
                f"teacher {cfg.teacher} already classifies MNLI and is used as is, so there is one teacher: "
                "teacher_seeds need a teacher that the job fine-tunes",
                "teacher_seeds",
            )
        pretrained = [s for s in cfg.strategies if s in PRETRAINED_LAYERS]
        if pretrained:
            raise ConfigError(
                f"{pretrained[0]} copies layers from the pre-trained encoder, but teacher {cfg.teacher} is already "
                "fine-tuned: give the pre-trained model as the teacher",
                "strategies",
            )
    n_teacher = teacher_config.num_hidden_layers
    n_student = cfg.student_layers or max(1, n_teacher // 2)
    with about("strategies"):
        check_strategies(cfg.strategies, n_teacher, n_student)
    return TeacherPlan(source, teacher_config, n_student)


def check_strategies(specs: list[str], n_teacher: int, n_student: int) -> None:
    """Reject unknown strategies and bad layer lists before any work starts."""

    def placeholder() -> list[float]:
        return [0.0] * n_teacher  # the data-driven scores are not known yet; only the shape is checked here

    for spec in specs:  # an explicit list's faults are the layer list's (a form's own field), a name's the strategies'
        with about("strategies" if parse_layer_list(spec) is None else "layer_list"):
            resolve_layers(spec, StrategyContext(n_teacher, n_student, placeholder))
