"""A job's compute, counted rather than measured: FLOPs per phase, the time a card takes for them, peak memory.

FLOPs are matmul FLOPs per token (`flops_per_token`: every encoder layer, the last one for [CLS] only as the job
runs it; a training step is forward x3), over the job's rows at the mean padded length of length-grouped MNLI
batches (`mean_padded_tokens`, measured on the shipped sample with the embedded tokenizer, which has
bert-base-uncased's vocabulary). Rows are the job's sizes, or GLUE MNLI's full splits where a size is "all".
Time assumes a card sustains ACHIEVED_SHARE of its dense bf16/fp16 tensor peak, and never less than a per-card floor
per training step (kernel launches bound a 32-pair batch of ~40 tokens on a fast card). Memory is fp32 weights,
gradients and AdamW's two moments (16 bytes a parameter), bf16 activations of a batch padded to max_length, the
teacher kept for the students' phase, and CONTEXT_GIB for the CUDA context.

`bench/gpu_estimate.py` prints these for a few cards; `distill/hf_jobs.py` prices them on Hugging Face Jobs.
No teacher is downloaded: bert-base-uncased, distilbert-base-uncased and roberta-base have their shapes written
here (from their config.json on the Hub); the embedded teacher and local folders are read from disk.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .config import JobConfig

GLUE_MNLI_ROWS = {"train": 392_702, "validation_matched": 9_815, "validation_mismatched": 9_832}
ACHIEVED_SHARE = 0.4
CONTEXT_GIB = 0.5
# Shapes of the Hub teachers the public Space offers, so an estimate needs no download (BertConfig's defaults are
# bert-base-uncased's); counted as a BERT encoder of the same size.
KNOWN_SHAPES: dict[str, dict[str, int]] = {
    "bert-base-uncased": {},
    "distilbert-base-uncased": {"num_hidden_layers": 6},
    "roberta-base": {"vocab_size": 50265, "max_position_embeddings": 514, "type_vocab_size": 1},
}


def flops_per_token(config: Any, layers: int, width: float, cls_only: bool = False) -> float:
    """Matmul FLOPs of one token's forward pass through `layers` encoder layers at padded width `width`:
    Q, K, V and output projections 8h^2, feed-forward 4hi, attention scores and weighted sum 4Lh. With
    `cls_only`, the last layer's work per token is its keys and values, 4h^2 (the rest is [CLS]'s alone)."""
    h, i = config.hidden_size, config.intermediate_size
    layer = 8 * h * h + 4 * h * i + 4 * width * h
    return (layers - 1) * layer + 4 * h * h if cls_only else layers * layer


@functools.cache
def mean_padded_tokens(batch_size: int, max_length: int) -> float:
    """Mean padded tokens per pair in length-grouped batches of the shipped MNLI sample (tokenized once per
    batch size and length in a process)."""
    from .data import encode, load_job_data, make_loader
    from .models import load_tokenizer
    from .plan import check_teacher_and_layers

    cfg = JobConfig(train_size=0, max_length=max_length)
    source = check_teacher_and_layers(JobConfig()).source
    tokenizer = load_tokenizer(source)
    train = encode(load_job_data(cfg)["train"], tokenizer, max_length)
    loader = make_loader(train, tokenizer.pad_token_id, batch_size, 0, train=True)
    padded = sum(batch["input_ids"].numel() for batch in loader)
    return padded / len(train)


def model_shape(cfg: JobConfig) -> Any:
    """The teacher's config (its sizes): written here for the known Hub teachers, else read (no weights)."""
    from transformers import BertConfig

    if cfg.teacher in KNOWN_SHAPES:  # no Hub here: the shapes are written above
        return BertConfig(num_labels=3, **KNOWN_SHAPES[cfg.teacher])
    from .plan import check_teacher_and_layers

    return check_teacher_and_layers(cfg).teacher_config


def parameters(config: Any, layers: int) -> int:
    """Parameters of a BERT-style classifier with `layers` encoder layers of `config`'s sizes."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    embeddings = (v + config.max_position_embeddings + config.type_vocab_size) * h
    return embeddings + layers * (4 * h * h + 2 * h * i + 9 * h + i) + h * h + 3 * h


@dataclass(frozen=True)
class Workload:
    """What a job computes: FLOPs and training steps per phase, and peak bytes per phase."""

    teacher: str
    n_teacher: int
    n_student: int
    models: int
    train_rows: int
    width: float
    phases: dict[str, tuple[float, float]]  # phase: (FLOPs, training steps)
    memory: dict[str, float]  # phase: bytes

    @property
    def flops(self) -> float:
        return sum(f for f, _ in self.phases.values())

    @property
    def peak_gib(self) -> float:
        return max(self.memory.values()) / 2**30 + CONTEXT_GIB


def workload(cfg: JobConfig) -> Workload:
    """Count the job's FLOPs, steps and memory (see the module's docstring for what is counted)."""
    from .search import variants

    config = model_shape(cfg)
    n_teacher = config.num_hidden_layers
    n_student = cfg.student_layers or n_teacher // 2
    rows = {k: (cfg.train_size or v) if k == "train" else (cfg.eval_size or v) for k, v in GLUE_MNLI_ROWS.items()}
    students_rows = cfg.student_train_size or rows["train"]
    width = mean_padded_tokens(cfg.batch_size, cfg.max_length)
    eval_tokens = width * (rows["validation_matched"] + rows["validation_mismatched"])
    # The [CLS]-only last layer's per-sequence rest (about one token's full layer) is left out: under 1%.
    teacher_tok = flops_per_token(config, n_teacher, width, cfg.cls_only_last_layer)
    student_tok = flops_per_token(config, n_student, width, cfg.cls_only_last_layer)
    models = len(variants(cfg)) * len(cfg.seeds)  # a search distils each setting once per seed
    teachers = len(cfg.teachers)  # each fine-tuned, evaluated and run over the students' rows once
    phases = {
        "teacher fine-tuning": (
            teachers * (cfg.teacher_epochs * (3 * teacher_tok * width * rows["train"]) + teacher_tok * eval_tokens),
            teachers * cfg.teacher_epochs * rows["train"] / cfg.batch_size,
        ),
        "teacher outputs": (teachers * teacher_tok * width * students_rows, 0),
        f"{models} students": (
            models * (cfg.epochs * 3 * student_tok * width * students_rows + 2 * student_tok * eval_tokens),
            models * cfg.epochs * students_rows / cfg.batch_size,
        ),
    }
    p_teacher, p_student = parameters(config, n_teacher), parameters(config, n_student)

    def activations(layers: int) -> float:  # bf16 activations kept for backward: ~34 bytes per token, unit, layer
        return cfg.batch_size * cfg.max_length * config.hidden_size * layers * 34

    memory = {
        "teacher fine-tuning": 16 * p_teacher + activations(n_teacher),
        "students": 16 * p_student + activations(n_student) + 4 * p_teacher,
    }
    return Workload(cfg.teacher, n_teacher, n_student, models, rows["train"], width, phases, memory)


def phase_seconds(work: Workload, tflops: float, step_floor_s: float) -> list[float]:
    """Seconds of each phase on one card of `tflops` dense peak TFLOP/s, at least `step_floor_s` a training step."""
    return [max(f / (tflops * 1e12 * ACHIEVED_SHARE), steps * step_floor_s) for f, steps in work.phases.values()]


def gpu_seconds(cfg: JobConfig, tflops: float, step_floor_s: float) -> float:
    """The job's seconds on one card of `tflops` dense peak TFLOP/s (bf16/fp16 tensor cores), every phase counted."""
    return sum(phase_seconds(workload(cfg), tflops, step_floor_s))
