"""Guards multi-process runs (`accelerate launch --num_processes 2`): a real job split over two CPU processes must
train and evaluate each model once, score every validation row exactly once, and agree with a single-process
re-evaluation of the models it saved.

How the two processes are started matters. With accelerate 1.x, `accelerate launch --cpu --num_processes 2` and no
config file silently runs ONE process (its plain launcher only forks several through mpirun); two CPU processes
need the torch.distributed launcher (`--multi_gpu`) plus ACCELERATE_USE_CPU=true, or each of them is an
independent single-process job. A probe loaded through sitecustomize records the world size every worker ended
with, so a launch that quietly degrades to one process (or to two unconnected ones) fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.config import JobConfig
from distill.data import load_job_data

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PROCESSES = 2
# 101 validation rows per split: two eval batches of 64 (64 + 37), so the rows really are split between the two
# processes, and 101 does not divide by processes x batch, so a distributed sampler pads the last round with
# duplicates, which must not be counted.
EVAL_SIZE = 101
STUDENTS = ("top_k-seed0", "even-seed0")

# A hermetic accelerate config: a user's default_config.yaml must not change how the job is launched.
ACCELERATE_CONFIG = """\
compute_environment: LOCAL_MACHINE
distributed_type: MULTI_GPU
num_machines: 1
machine_rank: 0
num_processes: 2
mixed_precision: 'no'
use_cpu: true
debug: false
"""

# Loaded at start-up by every Python process of the launch; each worker (it has RANK set) records, as it exits,
# the world size its accelerate state ended with.
PROBE = """\
import atexit, json, os, sys


def _record():
    state = sys.modules.get("accelerate.state")
    if state is None or not state.PartialState._shared_state:
        return
    s = state.PartialState()
    with open(os.environ["DISTILL_TEST_PROBE"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"rank": os.environ["RANK"], "index": s.process_index, "processes": s.num_processes,
                            "type": str(s.distributed_type)}) + "\\n")


if "RANK" in os.environ and "DISTILL_TEST_PROBE" in os.environ:
    atexit.register(_record)
"""


def launch(tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path, Path]:
    results = tmp_path / "runs"
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "sitecustomize.py").write_text(PROBE, encoding="utf-8")
    config = tmp_path / "accelerate.yaml"
    config.write_text(ACCELERATE_CONFIG, encoding="utf-8")
    probe_log = tmp_path / "probe.jsonl"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ACCELERATE_USE_CPU": "true",  # the workers run on the CPU (gloo), even on a machine with GPUs
        "DISTILL_TEST_PROBE": str(probe_log),
        "PYTHONPATH": os.pathsep.join([str(probe_dir), str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "--multi_gpu",  # the torch.distributed launcher; with ACCELERATE_USE_CPU it starts CPU workers
        "--num_processes",
        str(PROCESSES),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "distill",
        "run",
        "--teacher",
        "embedded",
        "--data",
        "mnli-sample",
        "--train-size",
        "64",
        "--eval-size",
        str(EVAL_SIZE),
        "--epochs",
        "1",
        "--teacher-epochs",
        "1",
        "--learning-rate",
        "5e-5",  # 3e-4 on two steps tends to collapse a student to one class, which hides missing rows
        "--seeds",
        "0",
        "--strategies",
        "top_k",
        "even",
        "--latency-examples",
        "8",
        "--precision",
        "fp32",
        "--results-dir",
        str(results),
        "--run-name",
        "mp",
        "--quiet",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    return done, results / "mp", probe_log


@torch.inference_mode()
def reevaluate(folder: Path, premises: list[str], hypotheses: list[str], max_length: int) -> np.ndarray:
    """Class probabilities of a saved model folder, computed here in one process, in fp32."""
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    out = []
    for start in range(0, len(premises), 32):
        enc = tokenizer(
            premises[start : start + 32],
            hypotheses[start : start + 32],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        out.append(torch.softmax(model(**enc).logits.float(), dim=-1).numpy())
    return np.concatenate(out)


def check_run(path: Path) -> None:
    """Everything a finished two-process run folder must satisfy (kept separate so it can be run on a copy)."""
    status = json.loads((path / "status.json").read_text())
    assert status["state"] == "completed", status

    summary = json.loads((path / "summary.json").read_text())
    models = [row["model"] for row in summary]
    assert sorted(models) == sorted(["teacher", *STUDENTS]), models  # one row per model: each trained once
    assert {p.name for p in (path / "models").iterdir()} >= set(models)

    metrics = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    keys = [(row["model"], row["epoch"]) for row in metrics]
    assert len(keys) == len(set(keys)), f"duplicated metrics rows: {keys}"
    epochs = {m: sorted(e for n, e in keys if n == m) for m in models}
    assert epochs == {"teacher": [1], **{s: [0, 1] for s in STUDENTS}}, epochs  # 0: each student before training

    cfg = JobConfig.from_dict(json.loads((path / "config.json").read_text()))
    data = load_job_data(cfg)
    labels = {split: np.asarray(values) for split, values in json.loads((path / "labels.json").read_text()).items()}
    assert set(labels) == {"validation_matched", "validation_mismatched"}, set(labels)
    predictions = json.loads((path / "predictions.json").read_text())
    assert set(predictions) == set(models), set(predictions)

    for row in summary:
        name = row["model"]
        saved = np.load(path / "probabilities" / f"{name}.npz")
        for split, truth in labels.items():
            assert len(truth) == EVAL_SIZE, (split, len(truth))
            np.testing.assert_array_equal(truth, data[split].labels)  # the rows the job scored are these rows
            predicted = np.asarray(predictions[name][split])
            assert predicted.shape == truth.shape, (name, split, predicted.shape)  # every row exactly once
            accuracy = float((predicted == truth).mean())
            assert row["splits"][split]["accuracy"] == accuracy, (name, split, row["splits"][split], accuracy)
            if split == row["eval_split"]:
                assert row["accuracy"] == accuracy and row["eval_rows"] == len(truth), (name, split)

            examples = data[split]
            again = reevaluate(path / "models" / name, examples.premises, examples.hypotheses, cfg.max_length)
            mismatched = np.flatnonzero(again.argmax(axis=1) != predicted)
            assert mismatched.size == 0, f"{name} {split}: rows {mismatched.tolist()} differ from a re-evaluation"
            # Probabilities too: a row no process scored keeps zero logits (uniform 1/3, argmax 0), which an
            # argmax alone can miss when the model predicts class 0 there anyway.
            np.testing.assert_allclose(saved[split], again, atol=1e-4, err_msg=f"{name} {split}")


def test_two_process_run_scores_every_row_once_and_matches_a_single_process_reevaluation(tmp_path):
    done, run, probe_log = launch(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "run mp: completed" in done.stdout, done.stdout[-3000:]

    records = probe_log.read_text().splitlines() if probe_log.exists() else []  # none: no worker had a RANK
    workers = sorted((json.loads(line) for line in records), key=lambda w: w["index"])
    assert [(w["index"], w["processes"]) for w in workers] == [(0, PROCESSES), (1, PROCESSES)], workers
    assert all(w["type"] == "DistributedType.MULTI_CPU" for w in workers), workers

    check_run(run)
