"""The ZeroGPU path on CPU, as far as it goes without Hugging Face's GPU scheduler: the `spaces` package is
installed, slices are `spaces.GPU` generators whose arguments and yields pickle, each asks for a duration
computed from the slice, and a refused call is one line that keeps the finished models.

Not verified here: a real ZeroGPU call (the scheduler grants the GPU), and progress as it arrives there."""

import json
import os
import pickle
import subprocess
import sys

import gradio as gr
import pytest
from tiny import TINY, copy_run

from distill.config import JobConfig
from distill.errors import UserError
from distill.plan import plan_job
from distill.progress import Event
from distill.results import Run
from distill.service import JobRunner, StopFile, job_slice
from distill.space import settings, slice_duration


def test_a_slice_asks_for_its_own_length_plus_the_margin_to_save():
    zerogpu = settings()["zerogpu"]
    cap, margin = zerogpu["duration_s"], zerogpu["margin_s"]
    cfg, stop = JobConfig(), StopFile()
    assert slice_duration(cfg, None, None, stop) == cap
    assert slice_duration(cfg, "run", cap - margin, stop) == cap
    assert slice_duration(cfg, "run", 30.0, stop) == 30 + margin, "a slice cut short by the time limit asks less"
    assert slice_duration(cfg, None, 10 * cap, stop) == cap, "never more than the cap"


@pytest.mark.slow
def test_slices_take_and_yield_only_what_pickles(tiny_bert, tmp_path):
    cfg = JobConfig.from_dict({**TINY, "teacher": str(tiny_bert), "strategies": ["top_k", "even"]})
    cfg = cfg.replace(results_dir=str(tmp_path), run_name="sliced")
    stop = StopFile()
    arguments = pickle.loads(pickle.dumps((plan_job(cfg), None, 3.0, stop)))  # what ZeroGPU sends to its worker
    first = list(job_slice(*arguments))
    for item in first:
        assert pickle.loads(pickle.dumps(item)) == item or isinstance(item, Event)
    assert all(isinstance(item, Event) for item in first[:-1]) and first[-1] == str(tmp_path / "sliced")
    states = list(JobRunner().stream(cfg.replace(run_name="in-slices"), poll_seconds=0.1, slice_seconds=4))
    assert states[-1]["state"] == "completed"
    assert [r["model"] for r in Run(tmp_path / "in-slices").summary()] == ["teacher", "top_k-seed0", "even-seed0"]


def test_a_stop_reaches_a_slice_in_another_process(tiny_bert, tmp_path):
    stop = StopFile()
    stop.set()
    cfg = JobConfig.from_dict({**TINY, "teacher": str(tiny_bert), "strategies": ["top_k"]})
    run = list(job_slice(cfg.replace(results_dir=str(tmp_path), run_name="halted"), None, None, stop))[-1]
    assert Run(run).status()["state"] == "stopped"
    stop.clear()
    assert not stop.is_set()


def test_a_quota_refusal_is_one_line_that_keeps_the_finished_models(good_run, tmp_path):
    run = copy_run(good_run, tmp_path, "paused-run")
    summary = json.loads((run.path / "summary.json").read_text())
    (run.path / "summary.json").write_text(json.dumps(summary[:2]))
    status = json.loads((run.path / "status.json").read_text())
    (run.path / "status.json").write_text(json.dumps({**status, "state": "paused"}))

    def refused(*args):  # what spaces raises when the visitor's quota is spent
        raise gr.Error("You have exceeded your GPU quota (60s requested vs. 12s left).", title="ZeroGPU quota exceeded")
        yield

    with pytest.raises(UserError) as error:
        list(JobRunner(refused).stream(run.job_config(), slice_seconds=100, resume=str(run.path)))
    message = str(error.value)
    assert message.startswith("ZeroGPU quota exceeded You have exceeded your GPU quota")
    assert "run paused-run is paused with its finished models" in message and "\n" not in message
    assert Run(run.path).status()["state"] == "paused" and len(Run(run.path).summary()) == 2

    def worker_error(*args):  # any other error from the worker is the job's own, reported as it is
        raise gr.Error("data file not found: x.csv", title="ZeroGPU worker error")
        yield

    with pytest.raises(gr.Error, match="data file not found"):
        list(JobRunner(worker_error).stream(run.job_config(), slice_seconds=100, resume=str(run.path)))


PROBE = """
import spaces  # first, as app.py does
import torch
from distill import space
from distill.service import job_slice
print(space.gpu_task(job_slice) is job_slice, space.hardware(), torch.cuda.is_initialized())
"""


@pytest.mark.slow
def test_off_zerogpu_the_real_spaces_package_leaves_the_slice_as_it_is():
    pytest.importorskip("spaces")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SPACES_", "ZEROGPU"))}
    probe = subprocess.run([sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip().splitlines()[-1] == "True cpu False"


def test_on_zerogpu_the_slice_is_a_gpu_function_asking_for_its_duration(monkeypatch):
    """The real package cannot be imported in ZeroGPU mode on a CPU build of torch (it patches CUDA), so the
    platform's decorator is stood in for by a recorder: what is checked is how the app calls it."""
    import types

    from distill import space

    asked = {}

    def gpu(duration):
        def wrap(fn):
            asked["duration"], asked["fn"] = duration, fn
            return lambda *args: ("on the GPU", args)

        return wrap

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    wrapped = space.gpu_task(job_slice)
    assert asked["duration"] is slice_duration and asked["fn"].__wrapped__ is job_slice
    assert wrapped(1)[0] == "on the GPU"
    # In the worker, the job's own errors cross as gr.Error with their line (spaces drops any other's message).
    with pytest.raises(gr.Error) as crossed:
        list(asked["fn"](JobConfig(seeds=[0]).replace(data="nowhere.csv"), None, None, StopFile()))
    assert crossed.value.message == "data file not found: nowhere.csv"
    assert space.hardware() == "zerogpu"
    assert space.default_job().teacher == "embedded", "a visitor's few GPU minutes: the small embedded job"
    assert space.slice_seconds() == settings()["zerogpu"]["duration_s"] - settings()["zerogpu"]["margin_s"]
