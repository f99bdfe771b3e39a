"""Where a job's memory peaks: resident memory sampled every 50 ms, attributed to the job's stage at the time.

    python -m bench.memory                      # the default job, in a fresh results folder
    python -m bench.memory --results-dir runs   # ... kept in runs/ (then `python -m distill report` reads it)
    python -m bench.memory --seeds 0 --train-size 64 --eval-size 64   # any `python -m distill run` flags

Prints the peak resident memory of each stage (data, teacher fine-tuning, teacher outputs, each student,
latency timing) and of the whole job, which `/usr/bin/time -v python -m distill run` reports as its maximum
resident set size.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from distill.cli import build_parser, job_config
from distill.job import run_job
from distill.progress import Event


def resident_gib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib / 2**20


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        cfg = job_config(build_parser().parse_args(["run", *sys.argv[1:]]))
        if "--results-dir" not in sys.argv:  # a fresh folder: no cached teacher, as on a fresh clone
            cfg = cfg.replace(results_dir=folder)
        stage, peaks, done = ["start"], {}, threading.Event()
        started = time.perf_counter()

        def on_event(event: Event) -> None:
            if event.kind == "stage":
                stage[0] = event.stage

        def sample() -> None:
            while not done.is_set():
                peaks[stage[0]] = max(peaks.get(stage[0], 0.0), resident_gib())
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        run = run_job(cfg, on_event)
        seconds, state = time.perf_counter() - started, run.status()["state"]
        done.set()
        sampler.join()
    for name, peak in peaks.items():
        print(f"{name:<24} {peak:.2f} GiB")
    print(f"{'whole job':<24} {max(peaks.values()):.2f} GiB peak resident memory, {seconds / 60:.1f} min wall")
    print(f"run {run.name}: {state}")


if __name__ == "__main__":
    main()
