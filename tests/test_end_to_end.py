"""The whole job on the packaged MiniLM teacher and a small real MNLI sample, checked independently."""

import gzip
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import distill.job
from distill.comparison import comparison
from distill.config import JobConfig
from distill.data import SAMPLE_DIR
from distill.plots import write_plots
from distill.tables import format_table

STRATEGY_LAYERS = {"top_k": [0, 1, 2], "bottom_k": [3, 4, 5], "odd": [0, 2, 4], "even": [1, 3, 5]}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    initial_layers = {}
    real_build = distill.job.build_student

    def recording_build(teacher, layers, **options):
        student = real_build(teacher, layers, **options)
        encoder = student.bert.encoder.layer
        initial_layers[tuple(layers)] = [{k: v.clone() for k, v in layer.state_dict().items()} for layer in encoder]
        return student

    distill.job.build_student = recording_build
    try:
        cfg = JobConfig(
            run_name="e2e",
            results_dir=str(tmp_path_factory.mktemp("runs")),
            train_size=192,
            eval_size=96,
            epochs=1,
            teacher_epochs=1,
            seeds=[0],
            precision="fp32",
            latency_examples=8,
        )
        events = []
        run = distill.job.run_job(cfg, events.append)
    finally:
        distill.job.build_student = real_build
    return cfg, run, initial_layers, events


@pytest.mark.slow
def test_run_completes_with_teacher_and_four_strategies(finished_run):
    _, run, _, events = finished_run
    assert run.status()["state"] == "completed"
    table = comparison(run)
    assert [r["strategy"] for r in table] == ["teacher", "top_k", "bottom_k", "odd", "even"]
    for row in table:
        assert 0.0 <= row["accuracy"] <= 1.0 and row["loss"] > 0 and row["params"] > 0
        assert row["latency_b32_ms"] > 0
    assert {r["strategy"]: r["layers"] for r in table[1:]} == STRATEGY_LAYERS
    # Students of one shape run the same operations: one timing for all of them, not four noisy ones.
    timings = {r["role"]: (r["latency_b1_ms"], r["latency_b32_ms"]) for r in run.summary()}
    assert len({(r["latency_b1_ms"], r["latency_b32_ms"]) for r in run.summary() if r["role"] == "student"}) == 1
    assert timings["teacher"] != timings["student"]  # 6 layers: timed on its own
    text = format_table(table)
    assert "bottom_k" in text and "speed-up" in text
    assert {p.name for p in write_plots(run)} == {"loss_curves.png", "val_accuracy.png", "accuracy_latency.png"}
    steps = [e for e in events if e.kind == "step"]
    assert steps[-1].done == steps[-1].total == 5 * 6  # teacher + 4 students, one epoch of 192 / 32 steps each


def test_students_started_from_the_teacher_layers_they_name(finished_run):
    _, run, initial_layers, _ = finished_run
    teacher_weights = load_file(run.model_dir("teacher") / "model.safetensors")
    assert set(initial_layers) == {tuple(v) for v in STRATEGY_LAYERS.values()}
    for layers, states in initial_layers.items():
        for j, source in enumerate(layers):
            for key, value in states[j].items():
                assert torch.equal(value, teacher_weights[f"bert.encoder.layer.{source}.{key}"]), (layers, j, key)


@pytest.mark.slow
def test_saved_models_reload_and_their_accuracy_matches_an_independent_recomputation(finished_run):
    cfg, run, _, _ = finished_run
    with gzip.open(SAMPLE_DIR / "validation_matched.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    rng_rows = np.sort(np.random.default_rng(cfg.data_seed).permutation(len(rows))[: cfg.eval_size])
    sample = [rows[i] for i in rng_rows]
    labels = torch.tensor([r["label"] for r in sample])
    for row in run.summary():
        folder = run.model_dir(row["model"])
        model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert model.config.num_hidden_layers == len(row["layers"])
        correct = 0
        with torch.no_grad():
            for r, label in zip(sample, labels, strict=True):  # one at a time: no padding at all
                enc = tokenizer(
                    r["premise"], r["hypothesis"], truncation=True, max_length=cfg.max_length, return_tensors="pt"
                )
                correct += int(model(**enc).logits.argmax(-1).item() == label)
        recorded = row["splits"]["validation_matched"]["accuracy"]
        assert abs(correct / len(sample) - recorded) <= 1 / len(sample), row["model"]


@pytest.mark.slow
def test_second_job_reuses_the_cached_teacher(finished_run):
    cfg, first, _, _ = finished_run
    events = []
    run = distill.job.run_job(cfg.replace(run_name="e2e-again", strategies=["top_k"]), events.append)
    assert any("reusing the fine-tuned teacher" in e.message for e in events)
    assert not any(e.stage == "teacher" and e.kind == "step" for e in events)
    assert run.summary()[0]["accuracy"] == first.summary()[0]["accuracy"]


@pytest.mark.slow
def test_a_teacher_cached_meanwhile_by_another_job_still_ends_the_progress_at_its_total(finished_run, monkeypatch):
    """Another job (the app's quick student, a second app on the same disk) may cache this job's teacher between
    its planning and its fine-tuning: the teacher's planned steps then count as done, so a completed job never
    shows 6 of 8 steps."""
    cfg, _, _, _ = finished_run
    monkeypatch.setattr(distill.job, "teachers_to_fine_tune", lambda job, *_: set(job.cfg.teachers))  # not cached yet
    events = []
    distill.job.run_job(cfg.replace(run_name="e2e-raced", strategies=["top_k"]), events.append)
    assert any("reusing the fine-tuned teacher" in e.message for e in events)
    assert events[-1].stage == "done" and events[-1].done == events[-1].total > 0


@pytest.mark.slow
def test_accelerate_launch_runs_the_same_command_line(finished_run):
    import subprocess
    import sys

    cfg, first, _, _ = finished_run
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "distill",
        "run",
        "--train-size",
        "192",
        "--eval-size",
        "96",
        "--epochs",
        "1",
        "--teacher-epochs",
        "1",
        "--precision",
        "fp32",
        "--latency-examples",
        "8",
        "--seeds",
        "0",
        "--strategies",
        "top_k",
        "--results-dir",
        cfg.results_dir,
        "--run-name",
        "accelerated",
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "run accelerated: completed" in done.stdout
    rows = json.loads((first.path.parent / "accelerated" / "summary.json").read_text())
    assert [r["model"] for r in rows] == ["teacher", "top_k-seed0"]
    assert rows[0]["accuracy"] == first.summary()[0]["accuracy"]  # the cached teacher was reused


def test_report_pairwise_and_ensemble_from_the_command_line(finished_run, capsys):
    from distill.cli import main
    from distill.comparison import pairwise

    _, run, _, _ = finished_run
    pairs = pairwise(run)
    assert len(pairs) == 6  # four strategies: every pair once, better one first
    assert all(p["difference"] >= 0 for p in pairs)
    # one seed: the difference is shown, but nothing that looks like a verdict
    assert all(p["test"] == "fewer than 3 seeds: untested" and p["p_value"] is None and p["low"] is None for p in pairs)
    by_pair = {(p["better"], p["worse"]): p for p in pairs}
    accuracy = {r["strategy"]: r["accuracy"] for r in comparison(run)}
    for (better, worse), p in by_pair.items():
        assert p["difference"] == pytest.approx(accuracy[better] - accuracy[worse], abs=1e-9)
    assert main(["report", str(run.path), "--no-plots", "--pairwise", "--ensemble", "top_k", "even"]) == 0
    out = capsys.readouterr().out
    assert "ensemble(top_k+even)" in out and "every pair of strategies on validation_matched" in out
    assert "fewer than 3 seeds: untested" in out and "(n.s.)" not in out and "[" not in out  # no interval, no mark
    assert main(["report", str(run.path), "--no-plots", "--pairwise", "no_such_split"]) == 2
    assert "no validation split 'no_such_split'" in capsys.readouterr().err


def test_one_seed_comparison_has_no_verdict_on_any_split(finished_run):
    _, run, _, _ = finished_run
    students = [r for r in comparison(run) if r["role"] == "student"]
    assert sum(bool(r.get("best")) for r in students) == 1
    for r in students:
        if not r.get("best"):
            assert r["diff_vs_best"] is not None and r["other_diff_vs_best"] is not None
            assert r["p_value"] is r["significant"] is r["diff_low"] is r["other_p_value"] is None
            assert r["test"] == r["other_test"] == "fewer than 3 seeds: untested"


def test_each_student_is_measured_before_its_first_step(finished_run):
    _, run, _, _ = finished_run
    starts = {r["model"]: r for r in run.metrics if r["epoch"] == 0}
    assert set(starts) == {f"{s}-seed0" for s in STRATEGY_LAYERS}  # students only: the teacher's head starts random
    for row in starts.values():
        assert 0 <= row["validation_matched_accuracy"] <= 1 and "train_loss" not in row
    from distill.plots import curves

    assert {c["epoch"] for c in curves(run) if c["curve"] == "val_accuracy" and c["strategy"] == "odd"} == {0, 1}
