"""One job's settings: a single dataclass, loadable from YAML and checked before any work starts.

Layer indices are 0-based everywhere: layer 0 is the encoder layer closest to the embeddings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError, echo

EMBEDDED_TEACHER = "embedded"
SAMPLE_DATA = "mnli-sample"
HUB_DATA = "glue"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
HIDDEN_LOSSES = ("mse", "cosine")
MAX_SEARCH_POINTS = 64
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


MAX_SEED = 2**32 - 1  # numpy's seeds: 0 to 2^32 - 1
MAX_AT_ONCE = 16  # students trained side by side, each on at least one thread
MAX_ROWS = 10_000_000  # a training or validation size above any dataset's (MNLI has 392,702 training pairs)


class ConfigError(UserError, ValueError):
    """A setting that cannot work; the message is meant for the user as it is. `setting` names the setting
    at fault, when there is one, so a form can show the message next to it."""

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.setting = setting


@contextlib.contextmanager
def about(setting: str) -> Iterator[None]:
    """Name `setting` as the one at fault for a UserError raised in the block (a teacher that cannot be fetched,
    a data file that cannot be read), unless it names one."""
    try:
        yield
    except ConfigError as err:
        err.setting = err.setting or setting
        raise
    except UserError as err:
        raise ConfigError(str(err), setting) from err


def default_results_dir() -> str:
    return os.environ.get("DISTILL_RESULTS_DIR", "runs")


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass
class JobConfig:
    """Everything a distillation job needs. Defaults are the embedded offline job."""

    run_name: str | None = _help("name of the run folder (letters, digits, . _ -); default: a timestamp", default=None)
    teacher: str = _help(
        f"Hub id or local folder of an encoder; '{EMBEDDED_TEACHER}' is the packaged all-MiniLM-L6-v2",
        default=EMBEDDED_TEACHER,
    )
    data: str = _help(
        f"'{SAMPLE_DATA}' (shipped real MNLI), '{HUB_DATA}' (nyu-mll/glue mnli from the Hub) "
        "or a CSV/TSV/JSONL file with premise, hypothesis, label",
        default=SAMPLE_DATA,
    )
    eval_data: list[str] = _help(
        "extra validation files for a user's own data (default: hold out part of the file)", default_factory=list
    )
    train_size: int | None = _help("training examples (0 or none: all)", default=5000)
    student_train_size: int | None = _help(
        "training examples each student distils on: a fixed random subset of the job's training examples, "
        "which the teacher fine-tunes on in full (0 or none: all of them)",
        default=2500,
    )
    eval_size: int | None = _help("validation examples per split (0 or none: all)", default=1000)
    data_seed: int = _help("seed of the subset draw", default=0)
    max_length: int = _help("token limit of a premise-hypothesis pair", default=128)
    strategies: list[str] = _help(
        "layer strategies by name, or explicit 0-based layer lists such as 0,2,4",
        default_factory=lambda: ["top_k", "bottom_k", "odd", "even"],
    )
    student_layers: int | None = _help("encoder layers of each student (default: half the teacher's)", default=None)
    epochs: int = _help("distillation epochs per student", default=1)
    batch_size: int = _help("examples per training step", default=32)
    learning_rate: float = _help("student learning rate (AdamW)", default=3e-4)
    teacher_epochs: int = _help(
        "fine-tuning epochs of the teacher (skipped when it already is an MNLI classifier)", default=2
    )
    teacher_learning_rate: float = _help("teacher fine-tuning learning rate", default=1e-4)
    warmup_ratio: float = _help("share of steps with a linear learning-rate warm-up", default=0.1)
    weight_decay: float = _help("AdamW weight decay", default=0.01)
    max_grad_norm: float = _help("gradient clipping norm", default=1.0)
    max_tokens_per_pass: int = _help(
        "a teacher batch of more padded tokens than this trains in several forward/backward passes whose "
        "gradients add up to the batch's: the same step with less memory (0: never split); a student with half "
        "the teacher's layers holds half the activations per token, so its passes take twice as many tokens",
        default=2048,
    )
    freeze_word_embeddings: bool = _help(
        "students keep the teacher's word-embedding matrix frozen (about half of a small BERT's weights; "
        "its dense gradient and AdamW update cost a pass over it every step)",
        default=True,
    )
    dropout: float | None = _help(
        "dropout of the students, hidden and attention (none: the teacher's own, 0.1 for BERT)", default=0.0
    )
    teacher_freeze_word_embeddings: bool = _help(
        "the teacher's fine-tuning keeps its word-embedding matrix frozen too", default=True
    )
    teacher_dropout: float | None = _help(
        "dropout of the teacher's fine-tuning (none: its own, 0.1 for BERT)", default=0.0
    )
    cls_only_last_layer: bool = _help(
        "in training and evaluation, the last encoder layer computes the [CLS] position only, the one position "
        "the classifier reads: the same logits and gradients up to rounding, for about a quarter less work in a "
        "3-layer student (BERT, RoBERTa, XLM-R and ELECTRA; other models run in full)",
        default=True,
    )
    torch_compile: bool = _help(
        "train through torch.compile (Inductor, dynamic shapes): on a 2-core CPU a student step ran 1.12x and a "
        "teacher step 1.21x faster after 13 s and 44 s of compiling, once per job, so it pays for long jobs only "
        "(docs/performance.md); refused on ZeroGPU, which does not support torch.compile",
        default=False,
    )
    students_at_once: int = _help(
        "students trained at the same time, each on its share of the CPU's threads: on a 2-core CPU two at once "
        "made the default job 1.1x faster and its peak memory 0.7 GiB larger (docs/performance.md); students with "
        "dropout then draw from one random generator, so their results are not reproducible",
        default=1,
    )
    eval_every_epoch: bool = _help(
        "evaluate every validation split after every epoch (default: after the last epoch only; a student's "
        "epoch 0, before training, is always measured)",
        default=False,
    )
    temperature: float = _help("softmax temperature of the KL term", default=2.0)
    weight_ce: float = _help("weight of the hard-label cross-entropy", default=1 / 3)
    weight_kl: float = _help("weight of the KL divergence on softened logits (times T^2)", default=1 / 3)
    weight_cos: float = _help("weight of the cosine embedding loss on logits", default=1 / 3)
    weight_hidden: float = _help("weight of the hidden-state loss (0: off)", default=0.0)
    hidden_loss: str = _help("hidden-state loss: mse or cosine, on each layer's [CLS] vector", default="mse")
    seeds: list[int] = _help(
        "seeds; each strategy is distilled once per seed (fewer than 3 give a difference but no verdict)",
        default_factory=lambda: [0, 1, 2],
    )
    teacher_seeds: list[int] = _help(
        "seeds of the teacher's fine-tuning; with several, each strategy's students are spread over the teachers "
        "(the i-th seed learns from teacher i mod their number) and the tests count a teacher's luck "
        "(empty: one teacher, fine-tuned with the first seed)",
        default_factory=list,
    )
    search: bool = _help(
        "hyperparameter search: distil the job's one strategy once per combination of the search_* values "
        "(and seed) instead of once per strategy",
        default=False,
    )
    search_temperatures: list[float] = _help("search: temperatures to try", default_factory=lambda: [1.0, 2.0, 4.0])
    search_learning_rates: list[float] = _help(
        "search: student learning rates to try", default_factory=lambda: [5e-5, 1e-4, 2e-4]
    )
    search_loss_weights: list[str] = _help(
        "search: loss weights to try, each 'ce:kl:cos' (scaled to sum to 1), e.g. 1:1:1 1:2:0",
        default_factory=lambda: ["1:1:1"],
    )
    precision: str = _help("fp32, bf16, fp16 or auto (bf16 where supported, fp16 on older GPUs)", default="auto")
    teacher_8bit: bool = _help("compute the teacher's outputs with an 8-bit teacher (bitsandbytes)", default=False)
    optimizer_8bit: bool = _help("8-bit AdamW (bitsandbytes)", default=False)
    cache_teacher_outputs: bool = _help("compute teacher outputs once per job and reuse them", default=True)
    group_by_length: bool = _help("batch examples of similar length to keep padding small", default=True)
    pad_to_max_length: bool = _help(
        "pad every batch to max_length (as the experiment this project grew from did)", default=False
    )
    checkpoints: bool = _help(
        "save the training state after every epoch, so a resumed run continues a model mid-way", default=True
    )
    latency_examples: int = _help("examples timed per model for the latency columns", default=32)
    results_dir: str = _help("folder holding one sub-folder per run", default_factory=default_results_dir)

    def __post_init__(self) -> None:
        self.validated()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> JobConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> JobConfig:
        return cls.from_dict(read_job_file(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def teachers(self) -> list[int]:
        """The teachers' seeds: one teacher, fine-tuned with the first seed, unless teacher_seeds names several."""
        return self.teacher_seeds or self.seeds[:1]

    def teacher_of(self, seed: int) -> int:
        """The seed of the teacher that the student of `seed` learns from."""
        return self.teachers[self.seeds.index(seed) % len(self.teachers)]

    def replace(self, **changes: Any) -> JobConfig:
        return dataclasses.replace(self, **changes)

    def pass_tokens(self, teacher_layers: int, layers: int) -> int:
        """Padded tokens per forward/backward pass of a model with `layers` layers: `max_tokens_per_pass` is the
        teacher's, and activation memory grows with layers times tokens (0: never split)."""
        return self.max_tokens_per_pass * teacher_layers // layers

    def validated(self) -> JobConfig:
        """Coerce types and reject values that cannot work; returns self."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), setting_types()[f.name]))
        if self.run_name is not None and not RUN_NAME.match(self.run_name):
            raise ConfigError(
                f"run_name {echo(self.run_name)} is not allowed: use letters, digits, '.', '_' and '-' only "
                "(no path separators or '..'), at most 80 characters",
                "run_name",
            )
        if self.run_name and ".." in self.run_name:
            raise ConfigError(f"run_name {echo(self.run_name)} must not contain '..'", "run_name")
        _choice("precision", self.precision, PRECISIONS)
        _choice("hidden_loss", self.hidden_loss, HIDDEN_LOSSES)
        for name in ("epochs", "batch_size", "teacher_epochs", "max_length", "latency_examples"):
            _positive(name, getattr(self, name))
        for name in ("learning_rate", "teacher_learning_rate", "temperature", "max_grad_norm"):
            _positive(name, getattr(self, name))
        for name in ("learning_rate", "teacher_learning_rate", "temperature"):
            _at_most(name, getattr(self, name))
        for name in ("epochs", "teacher_epochs", "batch_size"):
            _at_most(name, getattr(self, name))
        if self.max_length > 512 or self.max_length < 8:
            raise ConfigError("max_length must be between 8 and 512 tokens", "max_length")
        if not 1 <= self.students_at_once <= MAX_AT_ONCE:
            raise ConfigError(f"students_at_once must be a whole number from 1 to {MAX_AT_ONCE}", "students_at_once")
        if self.students_at_once > 1 and self.torch_compile:
            raise ConfigError(
                "torch_compile trains one student at a time: set students_at_once to 1", "students_at_once"
            )
        if self.max_tokens_per_pass < 0:
            raise ConfigError("max_tokens_per_pass must be 0 (never split) or a positive number", "max_tokens_per_pass")
        for name in ("dropout", "teacher_dropout"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ConfigError(f"{name} must be in [0, 1)", name)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError("warmup_ratio must be in [0, 1)", "warmup_ratio")
        for name in ("weight_ce", "weight_kl", "weight_cos", "weight_hidden", "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative", name)
            if name != "weight_decay":
                _at_most(name, getattr(self, name))
        if self.weight_ce + self.weight_kl + self.weight_cos + self.weight_hidden <= 0:
            raise ConfigError("at least one loss weight must be positive", "weight_ce")
        for name in ("train_size", "student_train_size", "eval_size"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= MAX_ROWS:
                raise ConfigError(f"{name} must be a whole number from 0 (all) to {MAX_ROWS:,}", name)
            if value == 0:
                setattr(self, name, None)
        if self.student_layers is not None and self.student_layers < 1:
            raise ConfigError("student_layers must be at least 1 (or 0: half the teacher's)", "student_layers")
        if not self.strategies:
            raise ConfigError("choose at least one strategy", "strategies")
        if len(set(self.strategies)) != len(self.strategies):
            raise ConfigError("a strategy is listed twice", "strategies")
        if not self.seeds:
            raise ConfigError("give at least one seed", "seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("a seed is listed twice", "seeds")
        if len(set(self.teacher_seeds)) != len(self.teacher_seeds):
            raise ConfigError("a teacher seed is listed twice", "teacher_seeds")
        if self.teacher_seeds and len(self.seeds) % len(self.teacher_seeds):
            raise ConfigError(
                f"give a number of seeds that is a multiple of the {len(self.teacher_seeds)} teacher seeds, so that "
                "every teacher teaches as many students of each strategy",
                "teacher_seeds",
            )
        checked = (("seeds", self.seeds), ("teacher_seeds", self.teacher_seeds), ("data_seed", [self.data_seed]))
        for name, values in checked:
            if any(not 0 <= seed <= MAX_SEED for seed in values):
                raise ConfigError(f"{name} must be whole numbers from 0 to {MAX_SEED}", name)
        if not self.teacher.strip():
            raise ConfigError("teacher must not be empty", "teacher")
        if not self.data.strip():
            raise ConfigError("data must not be empty", "data")
        if self.search:
            self._check_search()
        return self

    def _check_search(self) -> None:
        for name in ("search_temperatures", "search_learning_rates"):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"{name} needs at least one value", name)
            for value in values:
                _positive(name, value)
                _at_most(name, value)
        if not self.search_loss_weights:
            raise ConfigError("search_loss_weights needs at least one 'ce:kl:cos' value", "search_loss_weights")
        for spec in self.search_loss_weights:
            with about("search_loss_weights"):
                parse_loss_weights(spec)
        points = len(self.search_temperatures) * len(self.search_learning_rates) * len(self.search_loss_weights)
        if points > MAX_SEARCH_POINTS:
            raise ConfigError(
                f"the search grid has {points} settings; at most {MAX_SEARCH_POINTS} are allowed", "search_temperatures"
            )
        if len(self.strategies) > 1:
            raise ConfigError(
                f"a search tunes the settings of one strategy; choose one, not {len(self.strategies)}", "strategies"
            )


def read_job_file(path: str | Path) -> dict[str, Any]:
    """A YAML job file's settings, as written (checked when a JobConfig is made of them)."""
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"cannot read job file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"job file {path} is not UTF-8 text") from None
    except yaml.YAMLError as err:  # one line: the problem and where, not PyYAML's quoted excerpt
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"job file {path} is not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"job file {path} must be a mapping of settings")
    return values


def parse_loss_weights(spec: str) -> tuple[float, float, float]:
    """'ce:kl:cos' ratios (such as 1:1:1 or 2:1:0), scaled to sum to 1."""
    try:
        values = [float(part) for part in spec.split(":")]
    except ValueError:
        values = []
    if len(values) != 3 or any(v < 0 or not math.isfinite(v) for v in values) or sum(values) <= 0:
        raise ConfigError(f"loss weights {echo(spec)} must be three non-negative numbers ce:kl:cos, such as 1:1:1")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {echo(value)}", name)


# The largest value each bounded setting takes: a larger one is a typo (1e30) that would train nothing useful.
UPPER_BOUNDS = {
    "learning_rate": 1.0,
    "teacher_learning_rate": 1.0,
    "search_learning_rates": 1.0,
    "temperature": 100.0,
    "search_temperatures": 100.0,
    "weight_ce": 100.0,
    "weight_kl": 100.0,
    "weight_cos": 100.0,
    "weight_hidden": 100.0,
    "epochs": 100,
    "teacher_epochs": 100,
    "batch_size": 4096,
}


def _at_most(name: str, value: float) -> None:
    """`value` within its setting's range; NaN and infinity were refused before (`_positive`, negative weights)."""
    top = UPPER_BOUNDS[name]
    if not value <= top:
        allowed = f"from 0 to {top:g}" if name.startswith("weight_") else f"above 0 and at most {top:g}"
        if isinstance(value, int):
            allowed = f"a whole number from 1 to {top}"
        raise ConfigError(f"{name} must be {allowed}, not {value:g}", name)


def _positive(name: str, value: float) -> None:
    if not value > 0 or not math.isfinite(value):
        raise ConfigError(f"{name} must be a positive number, not {value:g}", name)


@dataclass(frozen=True)
class SettingType:
    """A setting's type, from its annotation: `base` (str, int, float, bool or list), a list's `item` type, and
    whether None is allowed."""

    base: type
    item: type | None = None
    optional: bool = False


@functools.cache
def setting_types() -> dict[str, SettingType]:
    """Every JobConfig setting's type, by name."""
    types = {}
    for name, hint in typing.get_type_hints(JobConfig).items():
        optional = type(None) in typing.get_args(hint)
        if optional:
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        if typing.get_origin(hint) is list:
            types[name] = SettingType(list, typing.get_args(hint)[0], optional)
        else:
            types[name] = SettingType(hint, None, optional)
    return types


def _coerce(name: str, value: Any, kind: SettingType) -> Any:
    """Turn a YAML/CLI/API value into the setting's type, with a readable error."""
    if value is None:
        if kind.optional:
            return None
        raise ConfigError(f"{name} must be set", name)
    try:
        if kind.base is list:
            if kind.item is str:
                items = value.split(";") if isinstance(value, str) else list(value)
                return [str(item).strip() for item in items if str(item).strip()]
            if isinstance(value, str):
                items = value.replace(",", " ").split()
            else:  # a single number, as YAML reads `seeds: 0`, is a list of one, as a single strategy's name is
                items = [value] if isinstance(value, int | float) and not isinstance(value, bool) else list(value)
            return [SCALARS[kind.item](item) for item in items]
        return SCALARS[kind.base](value)
    except (TypeError, ValueError):
        wanted = LIST_WANTED[kind.item] if kind.base is list else WANTED[kind.base]
        raise ConfigError(f"{name} must be {wanted}, not {echo(value)}", name) from None


# What a value of each type must be, in words.
WANTED = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
LIST_WANTED = {str: "a list of names", float: "numbers separated by spaces", int: "whole numbers separated by spaces"}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise TypeError


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value.strip()


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError
    return float(value)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, float) and not value.is_integer():
        raise ValueError
    return int(value)


SCALARS = {bool: _bool, int: _int, float: _float, str: _str}
