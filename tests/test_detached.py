"""Jobs that outlive their client, through the real app's API as a Python user meets it: a client that goes away
leaves its job running, and any client watches it with /watch_job, live or after the end."""

from __future__ import annotations

import json
import time

import pytest
from gradio_client import Client
from test_app import job_args


@pytest.fixture(scope="module")
def url(app_server):
    return app_server[0]


def _status(results, name: str) -> dict:
    return json.loads((results / name / "status.json").read_text())


def test_a_job_outlives_its_client_and_another_client_watches_it_to_the_end(app_server, url):
    results = app_server[1]
    name = "outlives-client"
    starter = Client(url, verbose=False)
    job = starter.submit(**job_args(run_name=name, train_size=640, epochs=3, strategies=["top_k"]), api_name="/run_job")
    deadline = time.monotonic() + 120
    while not (results / name / "status.json").is_file() or not (job.outputs() and job.outputs()[-1]["done"]):
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)
    job.cancel()  # the client goes away mid-training
    starter.close()
    time.sleep(3)
    assert _status(results, name)["state"] == "running", "a client going away must not stop its job"

    watcher = Client(url, verbose=False)
    states = list(watcher.submit(name, api_name="/watch_job"))
    final = states[-1]
    assert final["run"] == name and final["state"] == "completed"
    assert final["done"] == final["total"] > 0
    assert [m["model"] for m in final["models"]] == ["teacher", "top_k-seed0"]
    assert any(f"run {name} completed" in line for line in final["log"])
    assert len(states) >= 2, "the watcher saw the job while it ran"
    status = _status(results, name)
    assert status["state"] == "completed" and "stopped" not in status["message"]

    again = Client(url, verbose=False).predict(name, api_name="/watch_job")  # after the end: its last state
    assert again["state"] == "completed" and again["models"] == final["models"]
    assert again["done"] == final["done"] and again["log"][-1] == final["log"][-1]


def test_watching_a_run_that_does_not_exist_is_one_line(url):
    with pytest.raises(Exception, match="no run named 'nowhere'"):
        Client(url, verbose=False).predict("nowhere", api_name="/watch_job")


def test_a_past_run_is_watched_from_its_folder(app_server, url):
    """A run that this app's worker never ran (the CLI, an earlier start of the app, a Jobs container writing
    the bucket) is watched through its folder: its saved progress and stored state."""
    from distill.config import JobConfig
    from distill.job import run_job

    results = app_server[1]
    cfg = JobConfig.from_dict({**job_args_as_config(), "run_name": "from-the-cli", "results_dir": str(results)})
    run_job(cfg)
    final = Client(url, verbose=False).predict("from-the-cli", api_name="/watch_job")
    assert final["state"] == "completed" and final["done"] == final["total"] > 0
    assert [m["model"] for m in final["models"]] == ["teacher", "top_k-seed0"]
    assert final["curve"] and any("completed" in line for line in final["log"])


def test_a_run_without_saved_progress_shows_what_its_models_did(url):
    """A run written before jobs saved their progress (the committed reference run) is watched from its summary."""
    final = Client(url, verbose=False).predict("reference", api_name="/watch_job")
    assert final["state"] == "completed" and final["total"] == 0
    assert any(line.startswith("odd-seed0 (layers [0, 2, 4]): accuracy 0.") for line in final["log"])
    assert {m["model"] for m in final["models"]} >= {"teacher", "top_k-seed0", "odd-seed2"}


def job_args_as_config() -> dict:
    return {"teacher": "embedded", "train_size": 64, "eval_size": 32, "epochs": 1, "teacher_epochs": 1} | {
        "strategies": ["top_k"],
        "seeds": [0],
        "latency_examples": 8,
    }
