"""The benches that the README quotes still run: each one's smallest form, on this CPU, checked for its numbers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def test_gpu_estimate_prints_an_estimate_for_each_card():
    out = subprocess.run(
        [sys.executable, "-m", "bench.gpu_estimate", "examples/jobs/bert-base-mnli.yaml"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("ESTIMATE for bert-base-uncased, 6-layer students, 15 students, 392,702 training pairs")
    rows = [line for line in out.splitlines() if line.startswith("| T4") or line.startswith("| H200")]
    assert len(rows) == 2
    t4, h200 = (float(row.split("|")[-3].strip().removesuffix(" h")) for row in rows)
    assert 0 < h200 < t4  # the faster card takes less time


@pytest.mark.slow
def test_gpu_check_runs_its_whole_path_on_a_cpu(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_check",
            "--device",
            "cpu",
            "--rows",
            "128",
            "--max-seconds",
            "4",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=ENV,
        check=True,
        timeout=600,
    )
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    for phase in ("teacher epoch", "student epoch"):
        assert result[phase]["steps"] >= 1 and result[phase]["tflops"] > 0
        assert result[phase]["epoch_steps"] == 4  # 128 rows in batches of 32
    assert set(result["8-bit"]) == {
        "teacher outputs, bf16",
        "teacher outputs, 8-bit",
        "student AdamW",
        "student AdamW8bit",
    }


@pytest.mark.parametrize("cls_only", [False, True])
def test_the_roofline_flop_formula_agrees_with_torchs_counter(cls_only):
    """The per-token FLOP count behind the roofline, the GPU estimate and the GPU check, against torch's own count
    of a real student step (forward and backward), with the last layer in full and for [CLS] only."""
    import torch

    from bench.roofline import counted_flops, forward_flops
    from distill.config import JobConfig
    from distill.hub import embedded_teacher_path
    from distill.job import distillation_step
    from distill.models import build_student, cls_only_last_layer, load_classifier
    from distill.teacher import TeacherOutputs

    student = build_student(load_classifier(embedded_teacher_path()), [0, 2, 4])
    batch = {
        "input_ids": torch.randint(1000, 2000, (8, 40)),
        "attention_mask": torch.ones(8, 40, dtype=torch.long),
        "labels": torch.randint(0, 3, (8,)),
        "rows": torch.arange(8),
    }
    step = distillation_step(JobConfig(), None, TeacherOutputs(torch.randn(8, 3), None), [0, 2, 4])
    with cls_only_last_layer(student, cls_only):
        counted = counted_flops(student, batch, step)
    assert 3 * forward_flops(student.config, batch, 3, cls_only) == pytest.approx(counted, rel=0.03)
