"""The teacher's fine-tuning with and without the students' speed settings, time and accuracy side by side.

    python -m bench.teacher_speedups    # about 17 minutes on 2 cores; prints the table, writes the .json

The MiniLM teacher is fine-tuned on the peer bench's 5,000 training pairs (2 epochs, lr 1e-4, batch 32,
passes of 1,024 tokens) with 3 seeds, as before (every weight trained, the model's own dropout of 0.1) and
with its word-embedding matrix frozen and no dropout (`teacher_freeze_word_embeddings`, `teacher_dropout: 0`),
the variants interleaved seed by seed. Per variant: seconds per fine-tuning (training, its one evaluation and
saving the model) and accuracy on both validation splits (1,000 pairs each), mean and spread over the seeds.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


from bench.machine import machine
from distill.config import JobConfig
from distill.plan import plan_job
from distill.results import Run, write_json
from distill.shared import prepare
from distill.teacher import fine_tune
from distill.training import Runtime

from .peer import SETTINGS as PEER_SETTINGS
from .speedups import SPLITS, mean_sd, print_variants

OUT = Path(__file__).resolve().parent / "teacher_speedups.json"
SEEDS = (0, 1, 2)
VARIANTS = {
    "as before": dict(teacher_freeze_word_embeddings=False, teacher_dropout=None),
    "word embeddings frozen, no dropout": dict(teacher_freeze_word_embeddings=True, teacher_dropout=0.0),
}


def fine_tune_once(folder: Path, seed: int, changes: dict) -> dict:
    """One fine-tuning of the teacher: its seconds and its accuracy on each validation split."""
    # As measured: passes of 1,024 tokens (2,048 since), the last layer in full ([CLS] only since).
    settings = {**PEER_SETTINGS, "seeds": [seed], "max_tokens_per_pass": 1024, "cls_only_last_layer": False}
    cfg = JobConfig(**settings, **changes, results_dir=str(folder), checkpoints=False)
    runtime = Runtime.create(cfg.precision)
    run = Run.create(cfg)
    job = prepare(plan_job(cfg), run, runtime)
    started = time.perf_counter()
    _, _, evaluated = fine_tune(job, run, runtime, run.path / "teacher", seed)
    return {"seconds": time.perf_counter() - started, **{s: evaluated[0][s]["accuracy"] for s in SPLITS}}


def main() -> None:
    rows: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as folder:
        for seed in SEEDS:
            for name, changes in VARIANTS.items():
                rows[name].append(fine_tune_once(Path(folder), seed, changes))
                print(name, seed, rows[name][-1], flush=True)
    results = {
        name: {"settings": VARIANTS[name], "runs": r, **{k: mean_sd([x[k] for x in r]) for k in ("seconds", *SPLITS)}}
        for name, r in rows.items()
    }
    print_variants("teacher fine-tuning, 3 seeds", "teacher fine-tuning", "seconds", results, "seconds", 0)
    write_json(OUT, {"machine": machine(), "seeds": SEEDS, "variants": results})


if __name__ == "__main__":
    main()
