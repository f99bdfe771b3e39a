"""Faults: a job killed with SIGKILL, a job stopped mid-way, a job cut into time slices; all resume cleanly."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from distill.config import ConfigError, JobConfig
from distill.errors import UserError
from distill.job import resume_job, run_job
from distill.results import Run, list_runs, open_run
from distill.service import JobRunner

pytestmark = pytest.mark.slow

TINY = {"train_size": 64, "eval_size": 32, "epochs": 1, "teacher_epochs": 1, "latency_examples": 8, "seeds": "0"}


def cli(*args, results):
    return [sys.executable, "-m", "distill", *args, "--results-dir", str(results)]


def every_json_parses(folder, killed_mid_write_allowed: bool = False):
    """Every result file parses; no temporary file is left, except the hidden one a kill can catch mid-write (its
    writer never got to rename or delete it), which the resume removes."""
    for path in folder.rglob("*.json"):
        json.loads(path.read_text())
    for path in folder.rglob("*.jsonl"):
        [json.loads(line) for line in path.read_text().splitlines()]
    left = list(folder.rglob("*.tmp"))
    assert all(p.name.startswith(".") for p in left), "a temporary file is hidden from every reader"
    assert killed_mid_write_allowed or not left, "no temporary files are left behind"


def test_sigkill_leaves_earlier_runs_intact_and_the_run_resumable(tmp_path):
    results = tmp_path / "runs"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    earlier = subprocess.run(
        cli("run", *flags, "--strategies", "top_k", "--run-name", "earlier", "--quiet", results=results),
        capture_output=True,
        text=True,
    )
    assert earlier.returncode == 0, earlier.stderr
    earlier_summary = (results / "earlier" / "summary.json").read_text()

    job = subprocess.Popen(
        cli("run", *flags, "--strategies", "top_k", "even", "--run-name", "killed", "--quiet", results=results),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    summary = results / "killed" / "summary.json"
    deadline = time.time() + 240
    while time.time() < deadline and job.poll() is None:
        if summary.exists() and len(json.loads(summary.read_text())) >= 2:  # teacher and top_k are saved
            break
        time.sleep(0.2)
    assert job.poll() is None, "the job must still be running when it is killed"
    os.kill(job.pid, signal.SIGKILL)
    job.wait()

    states = {r["run"]: r["state"] for r in list_runs(results)}
    assert states == {"earlier": "completed", "killed": "interrupted"}
    assert (results / "earlier" / "summary.json").read_text() == earlier_summary
    every_json_parses(results, killed_mid_write_allowed=True)
    leftover = results / "killed" / ".progress.json.killed-mid-write.tmp"  # as a kill during a write leaves one
    leftover.write_text('{"half": ')

    resumed = subprocess.run(cli("resume", "killed", "--quiet", results=results), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    run = open_run("killed", results)
    assert run.status()["state"] == "completed"
    assert [r["model"] for r in run.summary()] == ["teacher", "top_k-seed0", "even-seed0"]
    trained = [m["model"] for m in run.metrics if m["epoch"] > 0]  # epoch 0 is the measurement before training
    assert trained.count("top_k-seed0") == 1, "top_k was kept, not trained again"
    assert not leftover.exists(), "the resume removes what the killed writer left"
    every_json_parses(results)


def test_a_killed_model_continues_from_its_last_epoch_checkpoint(tmp_path):
    import torch

    results = tmp_path / "runs"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**TINY, "train_size": 256, "epochs": 3}.items()]
    job = subprocess.Popen(
        cli("run", *flags, "--strategies", "top_k", "--run-name", "mid-model", "--quiet", results=results),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = results / "mid-model" / "checkpoints" / "top_k-seed0.pt"
    deadline = time.time() + 240
    while time.time() < deadline and job.poll() is None and not checkpoint.exists():
        time.sleep(0.02)
    assert checkpoint.exists() and job.poll() is None, "killed between two epochs of the student"
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    saved = json.loads(torch.load(checkpoint, weights_only=True)["history"])
    assert saved[0]["epoch"] == 0, "the measurement before training is kept with the checkpoint"
    saved = saved[1:]
    assert 1 <= len(saved) < 3

    events = []
    run = resume_job(open_run("mid-model", results), events.append)
    assert run.status()["state"] == "completed"
    steps = [e for e in events if e.kind == "step" and e.stage == "top_k-seed0"]
    assert len(steps) == (3 - len(saved)) * 8, "only the epochs after the checkpoint are trained again"
    assert any("continuing from its checkpoint" in e.message for e in events)
    history = [m for m in run.metrics if m["model"] == "top_k-seed0" and m["epoch"] > 0]
    assert [m["epoch"] for m in history] == [1, 2, 3]
    assert history[0]["train_loss"] == saved[0]["train_loss"]
    assert steps[-1].done == steps[-1].total, "the progress bar still ends at its total"
    assert not checkpoint.exists(), "the checkpoint goes once the model is saved"


@pytest.fixture
def tiny_cfg(tmp_path):
    return JobConfig.from_dict({**TINY, "strategies": ["top_k", "even"], "results_dir": str(tmp_path / "runs")})


def test_stopped_run_resumes_without_retraining_finished_models(tiny_cfg):
    import threading

    stop = threading.Event()

    def stop_after_first_student(event):
        if event.kind == "model" and event.stage == "top_k-seed0":
            stop.set()

    run = run_job(tiny_cfg.replace(run_name="halted"), stop_after_first_student, stop)
    assert run.status()["state"] == "stopped"
    assert [r["model"] for r in run.summary()] == ["teacher", "top_k-seed0"]
    events = []
    run = resume_job(Run(run.path), events.append)
    assert run.status()["state"] == "completed"
    assert [r["model"] for r in run.summary()] == ["teacher", "top_k-seed0", "even-seed0"]
    stages = {e.stage for e in events if e.kind == "step"}
    assert stages == {"even-seed0"}
    status = run.status()
    assert 0 < status["busy_seconds"] < status["time"] - status["started"] + 1e-6  # time stopped is not counted
    with pytest.raises(ConfigError, match="completed"):
        resume_job(run)


def test_a_passed_deadline_pauses_and_a_resume_finishes(tiny_cfg):
    run = run_job(tiny_cfg.replace(run_name="sliced"), deadline=time.monotonic())
    assert run.status()["state"] == "paused"
    assert "python -m distill resume sliced" in run.status()["message"]
    run = resume_job(Run(run.path))
    assert run.status()["state"] == "completed"
    assert len(run.summary()) == 3


def test_job_in_time_slices_completes(tiny_cfg):
    states = list(JobRunner().stream(tiny_cfg.replace(run_name="slices"), poll_seconds=0.2, slice_seconds=25))
    final = states[-1]
    assert final["state"] == "completed"
    assert [m["model"] for m in final["models"]][-2:] == ["top_k-seed0", "even-seed0"]


def test_a_slice_too_short_for_one_model_is_refused(tiny_cfg):
    with pytest.raises(UserError, match="too short to finish one model"):
        list(JobRunner().stream(tiny_cfg.replace(run_name="too-short"), slice_seconds=0.001))


def test_a_job_past_the_time_limit_is_stopped_keeping_its_models(tiny_cfg):
    states = list(JobRunner().stream(tiny_cfg.replace(run_name="over-time"), poll_seconds=0.2, time_limit=1))
    final = states[-1]
    assert final["state"] == "stopped"
    assert "limit of" in final["log"][-1] and "duplicate the Space" in final["log"][-1]
    run = open_run("over-time", tiny_cfg.results_dir)
    assert run.status()["state"] == "stopped" and "limit of" in run.status()["message"]
    assert len(run.summary()) < 3  # it did not run to the end


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MB tmpfs: a real file system that fills up (needs root, as on CI and in containers)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_fails_the_run_clearly_and_keeps_earlier_runs(small_disk, tiny_bert):
    results = small_disk / "runs"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    args = [*flags, "--teacher", str(tiny_bert), "--strategies", "top_k", "--quiet"]
    earlier = subprocess.run(
        cli("run", *args, "--run-name", "earlier", results=results), capture_output=True, text=True
    )
    assert earlier.returncode == 0, earlier.stderr
    earlier_files = {p: p.read_bytes() for p in (results / "earlier").rglob("*") if p.is_file()}

    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * (free - 256 * 1024))  # leave 256 KB: too little for a model
    full = subprocess.run(cli("run", *args, "--run-name", "full", results=results), capture_output=True, text=True)
    assert full.returncode == 2
    assert full.stderr.strip().splitlines()[-1] == "error: cannot write results: No space left on device"
    assert "Traceback" not in full.stderr

    assert {p: p.read_bytes() for p in (results / "earlier").rglob("*") if p.is_file()} == earlier_files
    states = {r["run"]: r["state"] for r in list_runs(results)}
    assert states["earlier"] == "completed" and states["full"] in ("failed", "interrupted")
    (small_disk / "filler").unlink()  # space again: the failed run resumes and completes
    resumed = subprocess.run(cli("resume", "full", "--quiet", results=results), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert open_run("full", results).status()["state"] == "completed"
