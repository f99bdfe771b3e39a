"""A job is a process, not a request: the app's worker runs it whether or not anyone watches, any number may watch
it by its run's name, a queued job can be dropped alone, and on ZeroGPU a job nobody watches pauses."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from distill.config import JobConfig
from distill.errors import UserError
from distill.job import run_job
from distill.results import Run
from distill.service import JobRunner, watch_folder


def longer(cfg: JobConfig, name: str) -> JobConfig:
    """A job of a few seconds (20 steps a model), long enough to leave and come back."""
    return cfg.replace(run_name=name, train_size=320, epochs=2, strategies=["top_k"])


def wait_until(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_job_goes_on_when_its_watcher_leaves_and_another_watches_it_to_the_end(tiny_cfg):
    runner = JobRunner()
    job = runner.submit(longer(tiny_cfg, "left-alone"))
    first = runner.watch(job, poll_seconds=0.1)
    seen = next(first)
    assert seen["run"] == "left-alone" and seen["state"] in ("queued", "running")
    wait_until(lambda: job.snapshot()["done"] > 0)
    first.close()  # the client went away
    time.sleep(1.0)
    assert runner.live("left-alone") is not None, "the job still runs with nobody watching"
    states = list(runner.watch(runner.job("left-alone"), poll_seconds=0.1))  # a second watcher, from the middle
    final = states[-1]
    assert final["state"] == "completed" and final["done"] == final["total"] > 0
    assert [m["model"] for m in final["models"]] == ["teacher", "top_k-seed0"]
    status = Run(Path(tiny_cfg.results_dir) / "left-alone").status()
    assert status["state"] == "completed" and "stopped" not in status["message"]
    again = list(runner.watch(runner.job("left-alone")))  # coming back after the end gives the same last state
    assert again == [final]


@pytest.mark.slow
def test_a_queued_job_waits_its_turn_and_is_dropped_alone(tiny_cfg):
    runner = JobRunner()
    first = runner.submit(longer(tiny_cfg, "first"))
    second = runner.submit(tiny_cfg.replace(run_name="second"))
    third = runner.submit(tiny_cfg.replace(run_name="third"))
    assert second.snapshot()["state"] == "queued" and second.snapshot()["queue_position"] == 1
    assert third.snapshot()["queue_position"] == 2
    with pytest.raises(UserError, match="already queued or running"):
        runner.submit(tiny_cfg.replace(run_name="second"))
    assert runner.stop(run="second") is True  # the queued one, not the running one
    assert list(runner.watch(second))[-1]["state"] == "cancelled"
    assert third.snapshot()["queue_position"] == 1, "the jobs behind it move up"
    final_first = list(runner.watch(first))[-1]
    final_third = list(runner.watch(third))[-1]
    assert final_first["state"] == final_third["state"] == "completed"
    root = Path(tiny_cfg.results_dir)
    assert not (root / "second").exists(), "a dropped job creates no run"


@pytest.mark.slow
def test_runs_without_a_name_are_named_when_submitted_and_never_collide(tiny_cfg):
    runner = JobRunner()
    jobs = [runner.submit(tiny_cfg.replace(run_name=None)) for _ in range(2)]
    names = [j.run for j in jobs]
    assert len(set(names)) == 2 and all(n[:8].isdigit() for n in names)
    for job in jobs:
        assert list(runner.watch(job))[-1]["state"] == "completed"
        assert Run(Path(tiny_cfg.results_dir) / job.run).status()["state"] == "completed"


def test_stop_of_a_running_job_keeps_its_models_and_says_who_may(tiny_cfg):
    runner = JobRunner()
    job = runner.submit(longer(tiny_cfg, "stopped").replace(strategies=["top_k", "even"]), owner="session:a")
    wait_until(lambda: any(m["model"] == "teacher" for m in job.snapshot()["models"]))
    with pytest.raises(UserError, match="only they can stop it"):
        runner.stop("session:b", "stopped")
    assert runner.stop("session:a", "stopped") is True
    final = list(runner.watch(job))[-1]
    assert final["state"] == "stopped"
    assert runner.stop(run="stopped") is False, "nothing left to stop"


@pytest.mark.slow
def test_on_zerogpu_a_job_nobody_watches_pauses_and_resumes_from_there(tiny_cfg):
    runner = JobRunner()
    job = runner.submit(longer(tiny_cfg, "attached").replace(strategies=["top_k", "even"]), attached=True)
    watcher = runner.watch(job, poll_seconds=0.1, starter=True)
    other = runner.watch(job, poll_seconds=0.1)  # someone else watching does not keep the visitor's GPU busy
    next(other)
    for state in watcher:
        if any(m["model"] == "teacher" for m in state["models"]):
            break
    watcher.close()  # the visitor closed the tab
    final = list(other)[-1]
    assert final["state"] == "paused"
    run = Run(Path(tiny_cfg.results_dir) / "attached")
    assert run.status()["state"] == "paused" and "visitor left" in run.status()["message"]
    kept = len(run.summary())
    assert kept >= 1
    resumed = list(runner.stream(run.job_config(), resume=str(run.path)))[-1]
    assert resumed["state"] == "completed" and len(run.summary()) == 3


@pytest.mark.slow
def test_an_attached_job_still_queued_when_its_visitor_leaves_is_dropped(tiny_cfg):
    runner = JobRunner()
    first = runner.submit(longer(tiny_cfg, "ahead"))
    queued = runner.submit(tiny_cfg.replace(run_name="behind"), attached=True)
    watcher = runner.watch(queued, poll_seconds=0.1, starter=True)
    next(watcher)
    watcher.close()
    assert queued.snapshot()["state"] == "cancelled"
    assert list(runner.watch(first))[-1]["state"] == "completed"
    assert not (Path(tiny_cfg.results_dir) / "behind").exists()


def test_a_job_nobody_watches_is_stopped_when_the_setting_asks(tiny_cfg):
    runner = JobRunner(unwatched_seconds=0.5)
    job = runner.submit(longer(tiny_cfg, "unwatched").replace(epochs=20))
    wait_until(lambda: job.over)
    final = job.snapshot()
    assert final["state"] == "stopped"
    run = Run(Path(tiny_cfg.results_dir) / "unwatched")
    assert "nobody watched it for" in run.status()["message"]


@pytest.mark.slow
def test_a_failed_job_is_raised_to_every_watcher_and_the_worker_goes_on(tiny_cfg, tiny_bert, tmp_path):
    runner = JobRunner()
    with pytest.raises(UserError, match="data file not found"):  # what planning can tell is refused at once
        runner.submit(tiny_cfg.replace(run_name="refused", data="nowhere.csv"))
    teacher = tmp_path / "no-weights"  # a config that reads, weights that fail only once the job loads them
    shutil.copytree(tiny_bert, teacher)
    (teacher / "model.safetensors").write_bytes(b"not weights")
    bad = runner.submit(tiny_cfg.replace(run_name="bad", teacher=str(teacher)))
    with pytest.raises(Exception, match="header") as first:  # safetensors' own error
        list(runner.watch(bad))
    with pytest.raises(Exception) as second:
        list(runner.watch(bad))
    assert second.value is first.value
    assert bad.snapshot()["state"] == "failed"
    assert list(runner.stream(tiny_cfg.replace(run_name="after")))[-1]["state"] == "completed"


def test_a_run_written_by_another_process_is_watched_through_its_folder(tiny_cfg):
    cfg = longer(tiny_cfg, "elsewhere")
    worker = threading.Thread(target=run_job, args=(cfg,))  # stands for another process writing the folder
    worker.start()
    folder = Path(cfg.results_dir) / "elsewhere"
    wait_until(lambda: (folder / "progress.json").is_file())
    states = list(watch_folder(Run(folder), poll_seconds=0.2))
    worker.join()
    final = states[-1]
    assert final["state"] == "completed" and final["done"] == final["total"] > 0
    assert [m["model"] for m in final["models"]] == ["teacher", "top_k-seed0"]
    assert any("completed" in line for line in final["log"]) and final["curve"]
    assert len(states) >= 2, "it saw the job while it ran"


def test_the_distill_tab_says_where_a_job_runs_before_it_starts(monkeypatch):
    from distill import space

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert "you can close this tab" in space.where_jobs_run()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    said = space.where_jobs_run()
    assert "runs only while this page is open" in said and "*pauses*" in said and "resume" in said


@pytest.mark.slow
def test_a_watcher_of_a_waiting_job_hears_from_it_every_few_seconds(tiny_cfg):
    """Gradio ends a cancelled or vanished watcher only between two states: one that waits behind another job
    still gets its (unchanged) state every few seconds, so its thread is freed soon after it leaves."""
    from distill.service import KEEPALIVE_SECONDS

    runner = JobRunner()
    first = runner.submit(longer(tiny_cfg, "busy").replace(epochs=4))
    queued = runner.submit(tiny_cfg.replace(run_name="waiting"))
    watcher = runner.watch(queued, poll_seconds=0.1)
    assert next(watcher)["state"] == "queued"
    asked = time.monotonic()
    again = next(watcher)
    assert again["state"] == "queued" and time.monotonic() - asked < KEEPALIVE_SECONDS + 1.5
    watcher.close()
    assert runner.stop(run="waiting")
    dropped = {**again, "state": "cancelled", "stage": "cancelled"}
    del dropped["queue_position"]  # a job out of the queue has no place in it
    assert list(runner.watch(queued))[-1] == dropped
    assert list(runner.watch(first))[-1]["state"] == "completed"


def test_callers_without_a_session_are_nobody_on_the_public_space(tiny_cfg, monkeypatch):
    from distill import space

    monkeypatch.setenv("SPACE_ID", space.settings()["original_space"])
    starter, other = space.visitor(None, None), space.visitor(None, None)
    assert starter != other and starter.startswith("anonymous:")
    assert space.visitor(None, "abc") == space.visitor(None, "abc") == "session:abc"
    runner = JobRunner()
    job = runner.submit(longer(tiny_cfg, "anonymous"), owner=starter)
    with pytest.raises(UserError, match="run anonymous was started by another visitor; only they can stop it"):
        runner.stop(other, "anonymous")
    with pytest.raises(UserError, match="the running job was started by another visitor"):
        wait_until(lambda: runner.running() == "anonymous")
        runner.stop(other)
    assert list(runner.watch(job))[-1]["state"] == "completed"
