"""This pipeline against the Hugging Face Trainer recipe, side by side in one run, on the same comparison.

    python -m bench.peer            # about 35 minutes on 2 cores; prints the tables, writes bench/peer.json
    python -m bench.peer --show     # prints them again from bench/peer.json
    python -m bench.peer --out bench/amx/peer.json   # another CPU's figures, beside these

Both fine-tune the MiniLM teacher and distil four 3-layer students (top_k, bottom_k, odd, even) with 3 seeds
each, on the same 5,000 training pairs (2 epochs, lr 1e-4, T=1) and the same 1,000 + 1,000 validation pairs,
each in its own process, one after the other on an otherwise idle machine. The peer is `bench/trainer_recipe.py`;
this pipeline is `python -m distill run` with its defaults for everything not set here. Wall time and peak
resident memory are the child process's own (`os.wait4`); accuracy is per student, compared seed by seed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from scipy import stats

from bench import recorded
from bench.machine import machine
from distill.results import Run, write_json
from distill.summary import metric

OUT = Path(__file__).resolve().parent / "peer.json"
SETTINGS = dict(
    train_size=5000,
    student_train_size=0,
    eval_size=1000,
    teacher_epochs=2,
    teacher_learning_rate=1e-4,
    epochs=2,
    learning_rate=1e-4,
    temperature=1.0,
    strategies=["top_k", "bottom_k", "odd", "even"],
    seeds=[0, 1, 2],
)
SPLITS = ("validation_matched", "validation_mismatched")


def timed(command: list[str]) -> dict:
    """Run `command`; its wall seconds and its own peak resident memory in GiB."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed with status {status}")
    return {"seconds": time.perf_counter() - started, "peak_gib": usage.ru_maxrss / 2**20}


def run_pipeline(folder: Path) -> dict:
    job = folder / "job.yaml"
    job.write_text(yaml.safe_dump({**SETTINGS, "run_name": "peer", "results_dir": str(folder / "runs")}))
    result = timed([sys.executable, "-m", "distill", "run", "--config", str(job)])
    summary = Run(folder / "runs" / "peer").summary()
    models = [
        {"model": r["model"], "seconds": r["train_seconds"], **{s: metric(r, s) for s in SPLITS}} for r in summary
    ]
    return {**result, "models": models}


def run_trainer(folder: Path) -> dict:
    out = folder / "trainer.json"
    result = timed([sys.executable, "-m", "bench.trainer_recipe", "--out", str(out), json.dumps(SETTINGS)])
    return {**result, **json.loads(out.read_text())}


def students(result: dict) -> dict[str, dict]:
    return {m["model"]: m for m in result["models"] if m["model"] != "teacher"}


def show(result: dict) -> None:
    pipeline, trainer = result["pipeline"], result["trainer"]
    print(f"\n{result['machine']}; {result['settings']}\n")
    print("| | Trainer recipe | this pipeline | ratio |")
    print("|---|---|---|---|")
    print(
        f"| wall time | {trainer['seconds'] / 60:.1f} min | {pipeline['seconds'] / 60:.1f} min |"
        f" {trainer['seconds'] / pipeline['seconds']:.2f}x faster |"
    )
    print(f"| peak memory | {trainer['peak_gib']:.2f} GiB | {pipeline['peak_gib']:.2f} GiB | |")
    ours, theirs = students(pipeline), students(trainer)
    student_seconds = [np.mean([m["seconds"] for m in s.values()]) for s in (theirs, ours)]
    print(
        f"| seconds per student (training and evaluation) | {student_seconds[0]:.0f} | {student_seconds[1]:.0f} |"
        f" {student_seconds[0] / student_seconds[1]:.2f}x |"
    )
    for side in (trainer, pipeline):
        side["teacher"] = next(m for m in side["models"] if m["model"] == "teacher")
    for split in SPLITS:
        print(
            f"| teacher, {split} | {trainer['teacher'][split]:.1%} | {pipeline['teacher'][split]:.1%} |"
            f" {100 * (pipeline['teacher'][split] - trainer['teacher'][split]):+.1f} points |"
        )
    for strategy in SETTINGS["strategies"]:
        for split in SPLITS:
            a = [theirs[f"{strategy}-seed{s}"][split] for s in SETTINGS["seeds"]]
            b = [ours[f"{strategy}-seed{s}"][split] for s in SETTINGS["seeds"]]
            print(
                f"| {strategy}, {split} (mean ± sd of 3 seeds) | {np.mean(a):.1%} ± {np.std(a, ddof=1):.1%} |"
                f" {np.mean(b):.1%} ± {np.std(b, ddof=1):.1%} | {100 * (np.mean(b) - np.mean(a)):+.1f} points |"
            )
    for split in SPLITS:
        diffs = np.array([ours[name][split] - theirs[name][split] for name in theirs])
        low, high = stats.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=stats.sem(diffs))
        print(
            f"\nall {len(diffs)} students, {split}: this pipeline minus the recipe {100 * diffs.mean():+.2f} points,"
            f" 95% CI [{100 * low:+.2f}, {100 * high:+.2f}] over the (strategy, seed) pairs"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print the last result again")
    parser.add_argument("--out", type=Path, default=OUT, help="the file to write or show (another CPU's: bench/<cpu>/)")
    args = parser.parse_args()
    if args.show:
        show(recorded(args.out))
        return
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        result = {
            "machine": machine(),
            "settings": SETTINGS,
            "trainer": run_trainer(folder),
            "pipeline": run_pipeline(folder),
        }
    write_json(args.out, result)
    show(result)


if __name__ == "__main__":
    main()
