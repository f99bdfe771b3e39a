"""Benchmark (not a test): what the 8-bit options cost and save on this machine, measured side by side.

    python -m bench.eight_bit                                        # the embedded MiniLM, new head
    python -m bench.eight_bit --teacher results/reference/models/teacher   # a fine-tuned teacher

(a) The teacher-output pass of a job (`teacher_8bit`): the teacher in fp32, in bf16 autocast (the job's
    default on a CPU with native bf16) and loaded in 8 bits (bitsandbytes LLM.int8, classifier head in fp32),
    over the same real MNLI training pairs: time, weight memory, how far the logits move and how many predicted
    labels change against fp32.
(b) Student training steps (`optimizer_8bit`) with AdamW and with bitsandbytes' 8-bit AdamW on the same batches:
    time per step and the optimizer state's size.
Both options exist to save GPU memory; this measures what they cost where they run, and writes
bench/eight_bit.json.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.machine import machine
from distill.config import JobConfig
from distill.data import encode, load_job_data, make_loader
from distill.errors import UserError
from distill.evaluation import forward_all
from distill.hub import resolve_model
from distill.models import build_student, load_classifier, load_tokenizer
from distill.results import write_json
from distill.training import cross_entropy_step, make_optimizer, resolve_precision

ROOT = Path(__file__).resolve().parent.parent


def teacher_pass(source: str, data, pad_id: int, precision: str, eight_bit: bool) -> dict:
    model = load_classifier(source, eight_bit=eight_bit).eval()
    start = time.perf_counter()
    logits, _ = forward_all(model, make_loader(data, pad_id, 64, train=False), len(data), precision)
    return {
        "seconds": time.perf_counter() - start,
        "weights_mb": model.get_memory_footprint() / 2**20,
        "logits": logits,
    }


def optimizer_steps(teacher, batches: list[dict], eight_bit: bool) -> dict:
    torch.manual_seed(0)
    student = build_student(teacher, [0, 2, 4]).train()
    optimizer = make_optimizer(student, 1e-4, 0.01, eight_bit=eight_bit)
    times, losses = [], []
    for batch in batches:
        start = time.perf_counter()
        loss, _ = cross_entropy_step(student, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    tensors = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    state = sum(t.numel() * t.element_size() for t in tensors)
    return {"ms_per_step": 1000 * float(np.median(times[2:])), "state_mb": state / 2**20, "last_loss": losses[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", help="a fine-tuned teacher folder (default: the embedded MiniLM, new head)")
    parser.add_argument("--rows", type=int, default=1024, help="training pairs for the teacher pass (0: all)")
    parser.add_argument("--steps", type=int, default=30, help="student steps per optimizer (batch 32)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # "inputs will be cast": once per layer and batch
    torch.set_num_threads(os.cpu_count() or 1)

    cfg = JobConfig.from_dict({"train_size": args.rows, "eval_size": 32})
    with tempfile.TemporaryDirectory() as tmp:
        source = resolve_model(args.teacher) if args.teacher else None
        if not source:  # a new head is random: save it once so that every variant below shares it
            torch.manual_seed(0)
            source, embedded = tmp, resolve_model(cfg.teacher)
            load_classifier(embedded).save_pretrained(source)
            load_tokenizer(embedded).save_pretrained(source)
        report = measure(source, cfg, args.steps)
    report["teacher"] = args.teacher or cfg.teacher
    write_json(ROOT / "bench" / "eight_bit.json", report)
    print(format_report(report))


def measure(source: str, cfg: JobConfig, steps: int) -> dict:
    tokenizer = load_tokenizer(source)
    data = encode(load_job_data(cfg)["train"], tokenizer, cfg.max_length)
    native = resolve_precision("auto", torch.device("cpu"))

    passes = {
        "fp32": teacher_pass(source, data, tokenizer.pad_token_id, "fp32", eight_bit=False),
        native: teacher_pass(source, data, tokenizer.pad_token_id, native, eight_bit=False),
        f"8-bit ({native})": teacher_pass(source, data, tokenizer.pad_token_id, native, eight_bit=True),
    }
    reference = passes["fp32"]["logits"]
    teacher_rows = {}
    for name, p in passes.items():
        teacher_rows[name] = {
            "seconds": p["seconds"],
            "rows_per_s": len(data) / p["seconds"],
            "weights_mb": p["weights_mb"],
            "max_abs_logit_diff": float(np.abs(p["logits"] - reference).max()),
            "labels_changed": float(np.mean(p["logits"].argmax(1) != reference.argmax(1))),
        }

    teacher = load_classifier(source)
    loader = make_loader(data, tokenizer.pad_token_id, 32, train=True)
    batches = list(itertools.islice(itertools.cycle(loader), steps))
    optimizers = {name: optimizer_steps(teacher, batches, name == "AdamW8bit") for name in ("AdamW", "AdamW8bit")}

    return {
        "rows": len(data),
        "machine": machine(),
        "teacher_pass": teacher_rows,
        "optimizer": optimizers,
    }


def format_report(r: dict) -> str:
    fp32 = r["teacher_pass"]["fp32"]
    lines = [
        f"Teacher-output pass over {r['rows']} MNLI training pairs, teacher {r['teacher']}, {r['machine']}",
        "",
        "| teacher | time | vs fp32 | weights | max abs logit change | labels changed |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in r["teacher_pass"].items():
        lines.append(
            f"| {name} | {t['seconds']:.1f} s | {fp32['seconds'] / t['seconds']:.2f}x | {t['weights_mb']:.0f} MB | "
            f"{t['max_abs_logit_diff']:.3f} | {t['labels_changed']:.1%} |"
        )
    adamw = r["optimizer"]["AdamW"]
    lines += ["", "| student optimizer | ms/step (batch 32) | vs AdamW | optimizer state |", "|---|---|---|---|"]
    for name, o in r["optimizer"].items():
        lines.append(
            f"| {name} | {o['ms_per_step']:.0f} | {adamw['ms_per_step'] / o['ms_per_step']:.2f}x | "
            f"{o['state_mb']:.1f} MB |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        main()
    except UserError as err:  # a bad --teacher: one line, not a traceback
        sys.exit(f"error: {err}")
