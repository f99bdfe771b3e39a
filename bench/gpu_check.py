"""What `bench/gpu_estimate.py` guesses, measured on a lent GPU: bert-base epochs through the pipeline's own loop.

    bash bench/gpu_check.sh                  # under 8 minutes on one H200; prints a table, writes $OUT or bench/
    python -m bench.gpu_check --device cpu --rows 256 --max-seconds 20   # the same code path, as a smoke test

No network: the teacher is bert-base-uncased's architecture (`BertConfig()`, random weights: throughput does
not depend on them) and the data a GLUE-sized stream (392,702 pairs) of random token ids whose lengths follow
the shipped MNLI sample. One teacher epoch (`training.fit`, cross-entropy), one 6-layer student epoch
(distillation loss on cached teacher logits), each with a job's default settings (dropout, frozen word
embeddings, passes), each cut at --max-seconds and extrapolated to the epoch when it
runs longer; achieved TFLOP/s from the same FLOP count as the roofline, against the card's peak; peak memory;
then the 8-bit options side by side with their full-precision counterparts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification

from distill.config import JobConfig
from distill.data import Encoded, encode, load_job_data, make_loader
from distill.evaluation import forward_all
from distill.job import distillation_step
from distill.models import build_student, for_training, load_classifier, load_tokenizer, trained_with
from distill.plan import check_teacher_and_layers
from distill.progress import JobPaused
from distill.teacher import TeacherOutputs
from distill.training import Runtime, cross_entropy_step, fit

from .gpu_estimate import CARDS, GLUE_MNLI_ROWS
from .roofline import forward_flops

TEACHER_LAYERS = 12  # bert-base
PEAKS = {"T4": CARDS["T4"][0], "A10G": CARDS["A10G"][0], "H200": CARDS["H200"][0], "H100": 989, "A100": 312, "L4": 121}


def synthetic_mnli(rows: int, vocab: int, seed: int = 0) -> Encoded:
    """`rows` pairs of random token ids, [CLS] ... [SEP] ... [SEP], with lengths drawn from the MNLI sample."""
    source = check_teacher_and_layers(JobConfig()).source
    sample = encode(load_job_data(JobConfig(train_size=0))["train"], load_tokenizer(source), 128)
    lengths, rng = sample.lengths, random.Random(seed)
    ids, types = [], []
    for _ in range(rows):
        n = rng.choice(lengths)
        first = rng.randint(1, n - 2)
        ids.append([101] + [rng.randrange(1000, vocab) for _ in range(n - 2)] + [102])
        types.append([0] * (first + 1) + [1] * (n - first - 1))
    return Encoded(ids, types, np.array([rng.randrange(3) for _ in range(rows)]))


def epoch(model, data: Encoded, step_loss, cfg: JobConfig, layers: int, max_seconds: float, label: str) -> dict:
    """One epoch of `model` through `training.fit`, cut at `max_seconds`: seconds (extrapolated), TFLOP/s, memory."""
    loader = make_loader(data, 0, cfg.batch_size, 0, train=True)
    flops_per_step = np.mean(
        [
            3 * forward_flops(model.config, b, layers, cfg.cls_only_last_layer)
            for _, b in zip(range(50), loader, strict=False)
        ]
    )
    runtime = Runtime.create(cfg.precision)
    if runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    runtime.deadline = time.monotonic() + max_seconds
    started = time.perf_counter()
    try:
        fit(
            model,
            loader,
            step_loss,
            epochs=1,
            learning_rate=1e-4,
            cfg=cfg,
            runtime=runtime,
            stage=label,
            seed=0,
            max_tokens=cfg.pass_tokens(TEACHER_LAYERS, layers),  # as a job splits its batches
        )
        complete = True
    except JobPaused:
        complete = False
    seconds = time.perf_counter() - started
    steps = runtime.steps.done
    result = {
        "steps": steps,
        "epoch_steps": len(loader),
        "epoch_seconds": seconds * len(loader) / max(steps, 1),
        "extrapolated": not complete,
        "tflops": flops_per_step * steps / seconds / 1e12,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if runtime.device.type == "cuda" else None,
        "precision": runtime.precision,
    }
    print(label, json.dumps(result), flush=True)
    return result


def job_student(teacher, layers: list[int], cfg: JobConfig):
    """A student as a job trains it (frozen word embeddings, its dropout)."""
    return for_training(build_student(teacher, layers), freeze_words=cfg.freeze_word_embeddings, dropout=cfg.dropout)


def eight_bit(teacher, data: Encoded, cfg: JobConfig, device: torch.device, max_seconds: float) -> dict:
    """The 8-bit teacher's output pass and 8-bit AdamW steps, each beside its full-precision counterpart."""
    rows = data.subset(list(range(min(2048, len(data)))))
    loader = make_loader(rows, 0, 64, train=False)
    result = {}
    with tempfile.TemporaryDirectory() as folder:
        teacher.save_pretrained(folder)
        for name, eight in (("teacher outputs, bf16", False), ("teacher outputs, 8-bit", True)):
            model = load_classifier(folder, eight_bit=eight)
            model = model if eight else model.to(device)
            started = time.perf_counter()
            forward_all(model, loader, len(rows), "bf16" if device.type == "cuda" else "fp32")
            result[name] = {"seconds": time.perf_counter() - started}
            del model
    logits = torch.randn(len(data), 3)
    for name, eight in (("student AdamW", False), ("student AdamW8bit", True)):
        layers = list(range(0, teacher.config.num_hidden_layers, 2))
        student = job_student(teacher, layers, cfg)
        step = distillation_step(cfg, None, TeacherOutputs(logits.to(device), None), layers)
        result[name] = epoch(
            student, rows, step, cfg.replace(optimizer_8bit=eight), student.config.num_hidden_layers, max_seconds, name
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=GLUE_MNLI_ROWS["train"])
    parser.add_argument("--max-seconds", type=float, default=150, help="per epoch; longer epochs are extrapolated")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=os.environ.get("OUT", str(Path(__file__).resolve().parent)))
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    peak = next((tflops for card, tflops in PEAKS.items() if card in name), None)
    cfg = JobConfig(batch_size=32, precision="auto", checkpoints=False)
    teacher = BertForSequenceClassification(BertConfig(num_labels=3))
    data = synthetic_mnli(args.rows, teacher.config.vocab_size)
    result = {"device": name, "peak_tflops": peak, "rows": args.rows}
    with trained_with(teacher, freeze_words=cfg.teacher_freeze_word_embeddings, dropout=cfg.teacher_dropout):
        result["teacher epoch"] = epoch(
            teacher, data, cross_entropy_step, cfg, TEACHER_LAYERS, args.max_seconds, "teacher epoch"
        )
    teacher = teacher.to(device).eval()
    logits = torch.randn(len(data), 3, device=device)
    layers = list(range(0, TEACHER_LAYERS, 2))
    step = distillation_step(cfg, None, TeacherOutputs(logits, None), layers)
    result["student epoch"] = epoch(
        job_student(teacher, layers, cfg), data, step, cfg, len(layers), args.max_seconds, "student epoch"
    )
    result["8-bit"] = eight_bit(teacher.cpu(), data, cfg, device, min(60.0, args.max_seconds))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu_check.json").write_text(json.dumps(result, indent=1))
    print(f"\n{name}; peak {peak} TFLOP/s (data sheet, dense bf16/fp16)\n")
    print("| phase | epoch time | achieved TFLOP/s | of peak | peak memory |")
    print("|---|---|---|---|---|")
    for phase in ("teacher epoch", "student epoch"):
        r = result[phase]
        share = f"{r['tflops'] / peak:.0%}" if peak else "-"
        memory = f"{r['peak_memory_gib']:.1f} GiB" if r["peak_memory_gib"] is not None else "-"
        cut = " (extrapolated)" if r["extrapolated"] else ""
        print(f"| {phase} | {r['epoch_seconds'] / 60:.1f} min{cut} | {r['tflops']:.1f} | {share} | {memory} |")
    for label, r in result["8-bit"].items():
        print(f"{label}: {json.dumps(r)}")


if __name__ == "__main__":
    main()
