"""Benchmark (not a test): bf16 against fp32 matmuls on this CPU, at MiniLM's training shapes.

    python -m bench.precision

`--precision auto` trains in bf16 only on a CPU with avx512_bf16. On an x86 CPU without AVX-512, PyTorch has no
oneDNN path for bf16 and multiplies it in plain loops, so an explicit `--precision bf16` is refused there. This
prints both rates and what `auto` picks, and keeps one entry per CPU in bench/precision.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bench.machine import cpu_facts, describe
from bench.roofline import PEAK_SHAPES, matmul_gflops
from distill.results import write_json
from distill.training import bf16_is_emulated, resolve_precision

OUT = Path(__file__).with_suffix(".json")


def measure(seconds: float) -> dict:
    """This CPU's facts, its GFLOP/s in each dtype at each shape, and what the job's precision would be."""
    rates = {
        name: {"x".join(map(str, s)): matmul_gflops(dtype, *s, seconds, reps=2) for s in PEAK_SHAPES}
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    return {
        "cpu": cpu_facts(),
        "gflops": rates,
        "bf16_is_emulated": bf16_is_emulated(),
        "auto": resolve_precision("auto", torch.device("cpu")),
    }


def summary(entry: dict) -> str:
    """One line per CPU: '<CPU>: fp32 158 GFLOP/s, bf16 2.81 GFLOP/s (0.0178x); auto picks fp32'."""
    fp32, bf16 = (max(entry["gflops"][name].values()) for name in ("fp32", "bf16"))
    return (
        f"{describe(entry['cpu'])}: fp32 {fp32:.0f} GFLOP/s, bf16 {bf16:.3g} GFLOP/s ({bf16 / fp32:.3g}x); "
        f"auto picks {entry['auto']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed bursts per shape and dtype")
    args = parser.parse_args()
    entry = measure(args.seconds)
    recorded = json.loads(OUT.read_text())["machines"] if OUT.exists() else []
    machines = [*(e for e in recorded if e["cpu"] != entry["cpu"]), entry]  # this CPU's entry replaced
    write_json(OUT, {"machines": machines})
    for machine in machines:
        print(summary(machine))


if __name__ == "__main__":
    main()
