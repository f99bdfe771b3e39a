"""Each speed change of the student's training, its effect on time and on accuracy, side by side in one run.

    python -m bench.speedups            # prints the table, writes bench/speedups.json
    python -m bench.speedups --from "+ last layer for [CLS] only"   # that row and the ones after it

The same students (`odd`, 3 seeds, the issue's settings: 5,000 training pairs, 2 epochs, lr 1e-4, T=1) are
distilled from one fine-tuned teacher (fine-tuned once, then reused from the cache) six times, each change
added to the one before:

1. as before: every weight trained, dropout 0.1, every validation split evaluated after every epoch;
2. the word-embedding matrix frozen (`freeze_word_embeddings`);
3. no dropout (`dropout: 0`), so attention trains through the plain kernel without a dropout mask;
4. evaluation after the last epoch only (`eval_every_epoch: false`);
5. the last layer computed for the [CLS] position only, in training and evaluation (`cls_only_last_layer`);
6. compiled by torch.compile (`torch_compile`, not a default);
7. eager again, two students trained at once, a core each (`students_at_once: 2`, not a default).

`--from` measures one variant and the ones after it again and keeps the rows before it from the file: those
rows then come from an earlier run, and the file says which rows each run measured (`runs`).

Per variant: seconds per student (training and its evaluations, from the run's summary) and accuracy on both
validation splits (1,000 pairs each), mean and spread over the 3 seeds. Students trained at once each take longer
than alone, sharing the CPU: for that row the seconds per student are the students' wall time (from the first
one's start to the last one saved) divided by their number, which every row measured records as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from bench.machine import machine
from distill.config import JobConfig
from distill.job import run_job
from distill.progress import Event
from distill.results import write_json
from distill.summary import metric

from .peer import SETTINGS as PEER_SETTINGS

OUT = Path(__file__).resolve().parent / "speedups.json"
# The peer bench's, one strategy, with the teacher and passes as they were when the table was measured.
SETTINGS = {
    **PEER_SETTINGS,
    "strategies": ["odd"],
    "latency_examples": 8,
    "max_tokens_per_pass": 1024,
    "teacher_freeze_word_embeddings": False,
    "teacher_dropout": None,
}
BEFORE = dict(freeze_word_embeddings=False, dropout=None, eval_every_epoch=True, cls_only_last_layer=False)
SPEEDUPS = dict(freeze_word_embeddings=True, dropout=0.0, eval_every_epoch=False, cls_only_last_layer=True)
VARIANTS = {
    "as before": BEFORE,
    "+ word embeddings frozen": {**BEFORE, "freeze_word_embeddings": True},
    "+ no dropout": {**BEFORE, "freeze_word_embeddings": True, "dropout": 0.0},
    "+ evaluation after the last epoch only": {
        **BEFORE,
        "freeze_word_embeddings": True,
        "dropout": 0.0,
        "eval_every_epoch": False,
    },
    "+ last layer for [CLS] only": (DEFAULTS := {**BEFORE, **SPEEDUPS}),
    "+ torch.compile": {**DEFAULTS, "torch_compile": True},
    "+ two students at once (not compiled)": {**DEFAULTS, "students_at_once": 2},
}
SPLITS = ("validation_matched", "validation_mismatched")


def mean_sd(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def print_variants(title: str, first: str, seconds_column: str, results: dict, seconds_key: str, digits: int) -> None:
    """The variants as a table: seconds (mean ± sd; for students trained at once, their wall time ÷ their number),
    speed against the first variant, accuracy on each split."""
    base = next(iter(results.values()))[seconds_key][0]
    print(f"\n{title}, on {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}\n")
    print(f"| {first} | {seconds_column} | vs before | validation_matched | validation_mismatched |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        seconds, sd = r[seconds_key]
        shown = f"{seconds:.{digits}f} ± {sd:.{digits}f}"
        if r.get("settings", {}).get("students_at_once", 1) > 1:
            seconds = r["wall_per_student"]
            shown = f"{seconds:.{digits}f} (wall time ÷ students)"
        accuracy = " | ".join(f"{r[s][0]:.1%} ± {r[s][1]:.1%}" for s in SPLITS)
        print(f"| {name} | {shown} | {base / seconds:.2f}x | {accuracy} |")


def students_wall_seconds(events: list[tuple[float, Event]], students: list[str]) -> float:
    """From the first student's first event to the last student's "model" event (it is saved and recorded)."""
    times = [t for t, e in events if e.stage in students]
    return max(t for t, e in events if e.stage in students and e.kind == "model") - min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", choices=VARIANTS, help="measure this variant and the ones after it")
    args = parser.parse_args()
    names = list(VARIANTS)[list(VARIANTS).index(args.first) :] if args.first else list(VARIANTS)
    kept = json.loads(OUT.read_text()) if args.first and OUT.exists() else {"variants": {}, "runs": []}
    results = {name: r for name, r in kept["variants"].items() if name in VARIANTS and name not in names}
    results |= dict.fromkeys(names)  # in the table's order
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            changes = VARIANTS[name]
            started, events = time.perf_counter(), []
            run = run_job(
                JobConfig(**{**SETTINGS, **changes}, results_dir=folder),
                lambda event, keep=events.append: keep((time.perf_counter(), event)),
            )
            wall = time.perf_counter() - started
            students = [r for r in run.summary() if r["role"] == "student"]
            results[name] = {
                "settings": changes,
                "run_seconds": wall,
                "wall_per_student": students_wall_seconds(events, [r["model"] for r in students]) / len(students),
                "student_seconds": mean_sd([r["train_seconds"] for r in students]),
                "each_student_seconds": {r["model"]: r["train_seconds"] for r in students},
                **{split: mean_sd([metric(r, split) for r in students]) for split in SPLITS},
            }
            print(name, results[name], flush=True)
    print_variants("`odd`, 3 seeds, 5,000 pairs x 2 epochs", "variant", "s per student", results, "student_seconds", 1)
    on = machine()
    runs = kept.get("runs") or [{"variants": [n for n in results if n not in names], "machine": kept.get("machine")}]
    runs = [{**r, "variants": [n for n in r["variants"] if n not in names]} for r in runs]
    runs = [r for r in runs if r["variants"]] + [{"variants": names, "machine": on}]
    write_json(OUT, {"machine": on, "settings": SETTINGS, "variants": results, "runs": runs})


if __name__ == "__main__":
    main()
