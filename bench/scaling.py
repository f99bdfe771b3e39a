"""How a job's cost grows: time and peak memory on this machine as its parts double, and the full-size job projected
onto Hugging Face Jobs hardware.

    python -m bench.scaling                 # measures every row (about 50 min on 2 cores), writes bench/scaling.json
    python -m bench.scaling --project-only  # only the projection, from counted FLOPs (seconds)

Measured: the default job (`python -m distill run`: 5,000 teacher pairs, students on half of them, 4 strategies,
3 seeds) with one part changed at a time: training pairs 1k, 2k, 5k, 10k (the students' share halved with them),
strategies 2, 4, 8, seeds 1, 3, 5. Each job runs in its own process from a fresh results folder, teacher
fine-tuning included, so its wall time and peak resident memory (the process's, from the kernel) are a whole
job's, as a user meets them. The FLOP count of each job (`distill.estimate`) stands beside its time, so a row that
grows slower or faster than its work shows.

Projected: the BERT-base 12 -> 6 comparison on the full GLUE MNLI (`examples/jobs/bert-base-mnli.yaml`) on one
A10G, one A100 and the `a10g-largex4` Jobs flavor, by `distill.hf_jobs.estimate`: the function behind the cost
that `python -m distill launch --backend hf-jobs` shows before it launches, with its assumptions.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from distill.config import JobConfig
from distill.estimate import workload
from distill.hf_jobs import estimate
from distill.results import write_json

from .machine import machine

OUT = Path(__file__).resolve().parent / "scaling.json"
ROOT = Path(__file__).resolve().parent.parent
FULL_SIZE_JOB = ROOT / "examples/jobs/bert-base-mnli.yaml"
PROJECTED_FLAVORS = ("a10g-large", "a100-large", "a10g-largex4")
# Eight that a 6-layer teacher and 3-layer students admit (distilbert needs 12 -> 6): an explicit list is the eighth.
EIGHT_STRATEGIES = ["top_k", "bottom_k", "odd", "even", "uniform", "importance", "random", "0,3,5"]
# One part of the default job changed at a time: (axis, value shown, flags for `python -m distill run`).
GRID = [
    *[("training pairs", n, ["--train-size", str(n), "--student-train-size", str(n // 2)]) for n in (1000, 2000)],
    ("training pairs", 5000, []),
    ("training pairs", 10000, ["--train-size", "10000", "--student-train-size", "5000"]),
    ("strategies", 2, ["--strategies", "top_k", "bottom_k"]),
    ("strategies", 4, []),
    ("strategies", 8, ["--strategies", *EIGHT_STRATEGIES]),
    ("seeds", 1, ["--seeds", "0"]),
    ("seeds", 3, []),
    ("seeds", 5, ["--seeds", "0", "1", "2", "3", "4"]),
]


def run_measured(flags: list[str], results_dir: str) -> tuple[float, float]:
    """Wall seconds and peak resident GiB of `python -m distill run FLAGS` in a process of its own."""
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a job's progress bars would fill a pipe and stall it
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "distill", "run", *flags, "--results-dir", results_dir],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage: its peak, not the largest child's
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            raise SystemExit(f"distill run {' '.join(flags)} failed: {log.read().decode()[-500:]}")
    return seconds, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def planned_flops(flags: list[str]) -> float:
    """The FLOPs `distill.estimate` counts for the job these flags describe, once the job is checked as
    `distill run` checks it (a row that would fail does so here, in seconds, not after the rows before it)."""
    from distill.cli import build_parser, job_config
    from distill.plan import check_teacher_and_layers

    cfg = job_config(build_parser().parse_args(["run", *flags]), writes=False)
    check_teacher_and_layers(cfg)
    return workload(cfg).flops


def measure(machine: str, projected: dict) -> list[dict]:
    """Every row of GRID, written to OUT as each is measured: a rerun on the same machine measures only the rows
    that file lacks, so an interrupted grid (50 minutes) loses one row at most."""
    flops = {tuple(flags): planned_flops(flags) for _, _, flags in GRID}
    kept = json.loads(OUT.read_text()) if OUT.is_file() else {}
    done = {tuple(r["flags"]): r for r in kept.get("measured", [])} if kept.get("machine") == machine else {}
    rows = []
    for axis, value, flags in GRID:
        key = tuple(flags)
        if key not in done:  # the default job is one row of every axis: run once
            with tempfile.TemporaryDirectory() as folder:
                seconds, gib = run_measured(flags, folder)
            done[key] = {"flags": flags, "seconds": seconds, "peak_gib": gib, "flops": flops[key]}
        rows.append({"axis": axis, "value": value, **done[key]})
        print(f"{axis} {value}: {rows[-1]['seconds'] / 60:.1f} min, {rows[-1]['peak_gib']:.2f} GiB", flush=True)
        write_json(OUT, {"machine": machine, "measured": rows, "projected": projected})
    return rows


def project() -> dict:
    """The full-size job, its counted work, and its estimate on each projected flavor."""
    cfg = JobConfig.from_yaml(FULL_SIZE_JOB)
    work = workload(cfg)
    job = {"teacher": cfg.teacher, "n_teacher": work.n_teacher, "n_student": work.n_student, "models": work.models}
    job |= {"train_rows": work.train_rows, "flops": work.flops}
    return {"job": job, "flavors": [estimate(cfg, flavor) for flavor in PROJECTED_FLAVORS]}


def print_measured(rows: list[dict], machine: str) -> None:
    print(f"\nThe default job with one part changed, on {machine}, each in a fresh process and folder:\n")
    print("| changed | value | wall time | vs the default job | counted work vs the default | peak memory |")
    print("|---|---|---|---|---|---|")
    default = next(r for r in rows if r["axis"] == "seeds" and r["value"] == 3)
    for r in rows:
        print(
            f"| {r['axis']} | {r['value']:,} | {r['seconds'] / 60:.1f} min | {r['seconds'] / default['seconds']:.2f}x"
            f" | {r['flops'] / default['flops']:.2f}x | {r['peak_gib']:.2f} GiB |"
        )


def print_projected(projection: dict) -> None:
    job, rows = projection["job"], projection["flavors"]
    print(
        f"\nPROJECTED, not measured: {FULL_SIZE_JOB.relative_to(ROOT)} ({job['teacher']} {job['n_teacher']} -> "
        f"{job['n_student']} layers, {job['models']} students, {job['train_rows']:,} pairs, "
        f"{job['flops'] / 1e15:.0f} PFLOP), by the estimate `python -m distill launch --backend hf-jobs` shows:\n"
    )
    print("| Jobs flavor | GPUs | compute | wall, setup included | cost | peak memory of a GPU |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['flavor']} | {r['gpus']} x {r['gpu']} | {r['compute_hours']:.1f} h | {r['wall_hours']:.1f} h |"
            f" ${r['cost_usd']:.2f} | {r['peak_memory_gib']:.1f} of {r['memory_gib']} GiB |"
        )
    print("\nassumptions: " + "; ".join(dict.fromkeys(r["assumptions"] for r in rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-only", action="store_true", help="skip the measured jobs")
    args = parser.parse_args()
    projected = project()
    print_projected(projected)
    if args.project_only:
        return
    on = machine()
    print_measured(measure(on, projected), on)


if __name__ == "__main__":
    main()
