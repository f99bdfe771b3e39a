"""oneDNN's primitive cache: memory against speed, the same short job and chat in child processes side by side.

    python -m bench.onednn_cache              # about 8 minutes on 2 cores; writes bench/onednn_cache.json
    python -m bench.onednn_cache --show       # prints the table again
    python -m bench.onednn_cache --out bench/amx/onednn_cache.json   # another CPU's figures, beside these

PyTorch runs bf16 matmuls on CPU through oneDNN, which keeps one compiled primitive per shape in a cache of up to
1,024 (its default). Length-grouped batches, split into passes, have hundreds of shapes. Each child process runs
one short job (`SETTINGS`: the teacher's fine-tuning and one student, with this project's defaults otherwise) and
then classifies `CHAT_PAIRS` validation pairs one at a time with the student, as Chat does; arms alternate over
`--rounds`. Wall time and peak resident memory are the child's own (`os.wait4`); the primitives it compiled, and
the time that took, are counted from oneDNN's own log (`ONEDNN_VERBOSE=profile_create`): that time is what a
larger cache can save, measured without the machine's drift in the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import recorded

OUT = Path(__file__).resolve().parent / "onednn_cache.json"
SETTINGS = dict(seeds=[0], strategies=["odd"], teacher_epochs=1, train_size=2000, eval_size=500, epochs=2)
CHAT_PAIRS = 200
ARMS = {"oneDNN's default (1,024)": "1024", "256": "256", "64": "64", "16": "16"}
COMPILED = ",create:cache_miss,"  # ONEDNN_VERBOSE=profile_create's line for a primitive compiled; its last field: ms


def child(out: Path) -> None:
    """One arm: the job, then Chat's predictions; writes their seconds to `out`."""
    from distill.config import JobConfig
    from distill.data import load_job_data
    from distill.inference import predict
    from distill.job import run_job

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        run = run_job(JobConfig(**SETTINGS, results_dir=folder))
        job_seconds = time.perf_counter() - started
        pairs = load_job_data(JobConfig(**SETTINGS))["validation_matched"]
        student = [run.model_dir("odd-seed0")]
        times = []
        for premise, hypothesis in list(zip(pairs.premises, pairs.hypotheses, strict=True))[:CHAT_PAIRS]:
            started = time.perf_counter()
            predict(student, hypothesis, premise)
            times.append(time.perf_counter() - started)
    out.write_text(json.dumps({"job_seconds": job_seconds, "chat_p50_ms": 1000 * statistics.median(times)}))


def run_arm(capacity: str, folder: Path) -> dict:
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "ONEDNN_VERBOSE": "profile_create",
        "ONEDNN_PRIMITIVE_CACHE_CAPACITY": capacity,
    }
    out, verbose = folder / "arm.json", folder / "onednn.log"
    with verbose.open("w") as log:
        command = [sys.executable, "-m", "bench.onednn_cache", "--child", str(out)]
        process = subprocess.Popen(command, env=env, stdout=log)
        _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"the child for capacity {capacity} failed with status {status}")
    compiled = [float(line.rsplit(",", 1)[1]) for line in verbose.open() if COMPILED in line]
    return {
        **json.loads(out.read_text()),
        "peak_gib": usage.ru_maxrss / 2**20,
        "compiles": len(compiled),
        "compile_seconds": sum(compiled) / 1000,
    }


def show(result: dict) -> None:
    print(f"\n{result['machine']}; {result['settings']}; {result['rounds']} rounds, arms alternated\n")
    print(
        "| oneDNN primitive cache | primitives compiled | compiling (median) | job wall (median) | vs oneDNN's default"
        " | peak memory (max) | chat p50 |"
    )
    print("|---|---|---|---|---|---|---|")
    base = statistics.median(r["job_seconds"] for r in result["arms"][next(iter(ARMS))])
    for arm, runs in result["arms"].items():
        wall = statistics.median(r["job_seconds"] for r in runs)
        print(
            f"| {arm} | {statistics.median(r['compiles'] for r in runs):,.0f} |"
            f" {statistics.median(r['compile_seconds'] for r in runs):.1f} s | {wall:.1f} s | {base / wall:.2f}x |"
            f" {max(r['peak_gib'] for r in runs):.2f} GiB |"
            f" {statistics.median(r['chat_p50_ms'] for r in runs):.1f} ms |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--show", action="store_true", help="print the last result again")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT, help="the file to write or show (another CPU's: bench/<cpu>/)")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.show:
        show(recorded(args.out))
        return
    from bench.machine import machine
    from bench.roofline import require_native_bf16
    from distill.results import write_json

    require_native_bf16("bench.onednn_cache")
    arms: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as name:
        for _ in range(args.rounds):
            for arm, capacity in ARMS.items():
                arms[arm].append(run_arm(capacity, Path(name)))
                print(arm, arms[arm][-1], flush=True)
    result = {
        "machine": machine(),
        "settings": SETTINGS,
        "rounds": args.rounds,
        "arms": arms,
    }
    write_json(args.out, result)
    show(result)


if __name__ == "__main__":
    main()
