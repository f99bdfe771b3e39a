"""An estimate, not a measurement: a job's time and memory on one T4, A10G and H200, from counted FLOPs and
the cards' published peak figures.

    python -m bench.gpu_estimate examples/jobs/bert-base-mnli.yaml

FLOPs come from the same per-token count as `bench/roofline.py` (matmuls of every layer, the last one for [CLS]
only as the job runs it, forward x3 for a training step), over the job's rows at the mean padded length of
length-grouped MNLI batches (measured on the shipped sample with the embedded tokenizer, which has
bert-base-uncased's vocabulary). Time assumes the card
sustains ACHIEVED_SHARE of its dense bf16/fp16 tensor peak, and never less than STEP_FLOOR_S per training step
(kernel launches bound a 32-pair batch of ~40 tokens on a fast card). Memory is fp32 weights, gradients and
AdamW's two moments (16 bytes a parameter), bf16 activations of a batch padded to max_length, the teacher kept
for the students' phase, and the CUDA context. `bench/gpu_check.sh` measures what this guesses, on a lent GPU.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import BertConfig

from distill.config import JobConfig
from distill.data import encode, load_job_data, make_loader
from distill.job import check_teacher_and_layers
from distill.models import load_tokenizer

from .roofline import flops_per_token

GLUE_MNLI_ROWS = {"train": 392_702, "validation_matched": 9_815, "validation_mismatched": 9_832}
# Dense tensor-core peaks from the vendors' data sheets (TFLOP/s): T4 has no bf16, so fp16 ("auto" picks it).
CARDS = {"T4": (65, 16), "A10G": (125, 24), "H200": (989, 141)}  # (TFLOP/s, GiB)
ACHIEVED_SHARE = 0.4
STEP_FLOOR_S = {"T4": 0.010, "A10G": 0.008, "H200": 0.006}
CONTEXT_GIB = 0.5


def mean_padded_tokens(batch_size: int, max_length: int) -> float:
    """Mean padded tokens per pair in length-grouped batches of the shipped MNLI sample."""
    cfg = JobConfig(train_size=0, max_length=max_length)
    source = check_teacher_and_layers(JobConfig()).source
    tokenizer = load_tokenizer(source)
    train = encode(load_job_data(cfg)["train"], tokenizer, max_length)
    loader = make_loader(train, tokenizer.pad_token_id, batch_size, 0, train=True)
    padded = sum(batch["input_ids"].numel() for batch in loader)
    return padded / len(train)


def model_shape(cfg: JobConfig):
    if cfg.teacher == "bert-base-uncased":  # no Hub here: bert-base's shapes are BertConfig's defaults
        return BertConfig(num_labels=3)
    config = check_teacher_and_layers(cfg).teacher_config
    return config


def parameters(config, layers: int) -> int:
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    embeddings = (v + config.max_position_embeddings + config.type_vocab_size) * h
    return embeddings + layers * (4 * h * h + 2 * h * i + 9 * h + i) + h * h + 3 * h


def estimate(cfg: JobConfig) -> None:
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
    models = len(cfg.strategies) * len(cfg.seeds)
    phases = {
        "teacher fine-tuning": (
            cfg.teacher_epochs * (3 * teacher_tok * width * rows["train"]) + teacher_tok * eval_tokens,
            cfg.teacher_epochs * rows["train"] / cfg.batch_size,
        ),
        "teacher outputs": (teacher_tok * width * students_rows, 0),
        f"{models} students": (
            models * (cfg.epochs * 3 * student_tok * width * students_rows + 2 * student_tok * eval_tokens),
            models * cfg.epochs * students_rows / cfg.batch_size,
        ),
    }
    p_teacher, p_student = parameters(config, n_teacher), parameters(config, n_student)

    def activations(
        layers: int,
    ) -> float:  # bf16 activations kept for backward: ~34 bytes per token, hidden unit, layer
        return cfg.batch_size * cfg.max_length * config.hidden_size * layers * 34

    memory = {
        "teacher fine-tuning": 16 * p_teacher + activations(n_teacher),
        "students": 16 * p_student + activations(n_student) + 4 * p_teacher,
    }
    total_flops = sum(f for f, _ in phases.values())
    print(
        f"ESTIMATE for {cfg.teacher}, {n_student}-layer students, {models} students, {rows['train']:,} training pairs"
        f" at {width:.1f} padded tokens a pair: {total_flops / 1e15:.0f} PFLOP in all"
    )
    print("| card | peak TFLOP/s | " + " | ".join(phases) + " | total | peak memory |")
    print("|---|---|" + "---|" * (len(phases) + 2))
    for card, (tflops, gib) in CARDS.items():
        times = [max(f / (tflops * 1e12 * ACHIEVED_SHARE), steps * STEP_FLOOR_S[card]) for f, steps in phases.values()]
        peak_gib = max(memory.values()) / 2**30 + CONTEXT_GIB
        cells = " | ".join(f"{t / 3600:.1f} h" for t in times)
        fits = "" if peak_gib < gib else " (does not fit)"
        print(f"| {card} | {tflops} | {cells} | {sum(times) / 3600:.1f} h | {peak_gib:.1f} of {gib} GiB{fits} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", nargs="?", default="examples/jobs/bert-base-mnli.yaml")
    estimate(JobConfig.from_yaml(parser.parse_args().job))


if __name__ == "__main__":
    main()
