"""An estimate, not a measurement: a job's time and memory on one T4, A10G and H200, from counted FLOPs and
the cards' published peak figures.

    python -m bench.gpu_estimate examples/jobs/bert-base-mnli.yaml

The counting is `distill/estimate.py`'s (the same that prices a job on Hugging Face Jobs, `distill/hf_jobs.py`):
FLOPs from the per-token count the roofline checks against torch's counter (matmuls of every layer, the last one
for [CLS] only as the job runs it, forward x3 for a training step), over the job's rows at the mean padded length
of length-grouped MNLI batches (measured on the shipped sample with the embedded tokenizer, which has
bert-base-uncased's vocabulary). Time assumes the card sustains ACHIEVED_SHARE of its dense bf16/fp16 tensor peak,
and never less than STEP_FLOOR_S per training step (kernel launches bound a 32-pair batch of ~40 tokens on a fast
card). Memory is fp32 weights, gradients and AdamW's two moments (16 bytes a parameter), bf16 activations of a
batch padded to max_length, the teacher kept for the students' phase, and the CUDA context.
`bench/gpu_check.sh` measures what this guesses, on a lent GPU.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from distill.config import JobConfig
from distill.estimate import GLUE_MNLI_ROWS, phase_seconds, workload

__all__ = ["CARDS", "GLUE_MNLI_ROWS", "STEP_FLOOR_S", "estimate"]  # bench/gpu_check.py reads the first two

# Dense tensor-core peaks from the vendors' data sheets (TFLOP/s): T4 has no bf16, so fp16 ("auto" picks it).
CARDS = {"T4": (65, 16), "A10G": (125, 24), "H200": (989, 141)}  # (TFLOP/s, GiB)
STEP_FLOOR_S = {"T4": 0.010, "A10G": 0.008, "H200": 0.006}


def estimate(cfg: JobConfig) -> None:
    """Print the job's FLOPs and, per card, each phase's time and the peak memory (`distill.estimate` counts)."""
    work = workload(cfg)
    print(
        f"ESTIMATE for {cfg.teacher}, {work.n_student}-layer students, {work.models} students, "
        f"{work.train_rows:,} training pairs at {work.width:.1f} padded tokens a pair: "
        f"{work.flops / 1e15:.0f} PFLOP in all"
    )
    print("| card | peak TFLOP/s | " + " | ".join(work.phases) + " | total | peak memory |")
    print("|---|---|" + "---|" * (len(work.phases) + 2))
    for card, (tflops, gib) in CARDS.items():
        times = phase_seconds(work, tflops, STEP_FLOOR_S[card])
        cells = " | ".join(f"{t / 3600:.1f} h" for t in times)
        fits = "" if work.peak_gib < gib else " (does not fit)"
        print(f"| {card} | {tflops} | {cells} | {sum(times) / 3600:.1f} h | {work.peak_gib:.1f} of {gib} GiB{fits} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", nargs="?", default="examples/jobs/bert-base-mnli.yaml")
    estimate(JobConfig.from_yaml(parser.parse_args().job))


if __name__ == "__main__":
    main()
