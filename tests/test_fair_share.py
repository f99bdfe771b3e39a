"""One visitor cannot take the shared Space, every refusal arrives before the queue, and cancel means this job:
the real app, driven by gradio_client clients as visitors would."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from test_app import job_args
from test_jobs import longer, wait_until
from tiny import copy_run

from distill import space
from distill.errors import UserError
from distill.service import JobRunner

LONG = {"train_size": 640, "epochs": 3, "strategies": ["top_k"]}  # a minute or so on the embedded teacher


def visitor(url: str, address: str) -> Client:
    """A visitor from their own address (a Space's proxy appends it to X-Forwarded-For; the app reads the last)."""
    return Client(url, verbose=False, headers={"X-Forwarded-For": address})


def started(job, timeout: float = 180) -> dict:
    """The job's first state with a finished step."""
    deadline = time.monotonic() + timeout
    while not (job.outputs() and job.outputs()[-1]["done"]):
        assert time.monotonic() < deadline and not job.done(), f"the job did not start: {job.outputs()[-1:]}"
        time.sleep(0.2)
    return job.outputs()[-1]


def ended(job, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while not job.done():
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.3)
    return job.outputs()[-1]


def owned_stopped_run(good_run, results: Path, name: str, owner: str | None, **settings) -> None:
    run = copy_run(good_run, results, name)
    if owner:
        run.set_owner(owner)
    config = json.loads((run.path / "config.json").read_text())
    (run.path / "config.json").write_text(json.dumps({**config, "teacher": "embedded", **settings}))
    status = json.loads((run.path / "status.json").read_text())
    (run.path / "status.json").write_text(json.dumps({**status, "state": "stopped"}))


def test_on_the_public_space_every_refusal_arrives_within_two_seconds_while_a_job_trains(
    app_server, public_space, good_run
):
    url, results = app_server
    owner, other = visitor(url, "10.0.0.1"), visitor(url, "10.0.0.2")
    job = owner.submit(**job_args(run_name="fair-long", **LONG), api_name="/run_job")
    started(job)
    minutes = space.settings()["public_limits"]["max_job_minutes"]
    owned_stopped_run(good_run, results, "fair-mine", f"session:{owner.session_hash}")
    owned_stopped_run(good_run, results, "fair-spent", f"session:{other.session_hash}")
    status = json.loads((results / "fair-spent" / "status.json").read_text())
    spent = {"busy_seconds": minutes * 60, "started": status["time"] - 2 * minutes * 60}
    (results / "fair-spent" / "status.json").write_text(json.dumps({**status, **spent}))
    mine = "you already have a job on this shared Space \\(run fair-long, running\\)"
    cases = [
        (owner, "/run_job", job_args(run_name="fair-second"), mine),
        (owner, "/quick_student", {"own": True}, mine),
        (owner, "/resume_job", {"run": "fair-mine"}, mine),
        (other, "/resume_job", {"run": "nowhere"}, "no run named 'nowhere'"),
        (other, "/resume_job", {"run": "fair-mine"}, "run fair-mine was started by another visitor"),
        (other, "/resume_job", {"run": "fair-long"}, "run fair-long is already queued or running; watch it"),
        (other, "/resume_job", {"run": "fair-spent"}, f"has used this Space's {minutes} min per job"),
        (other, "/run_job", job_args(epochs=-1), "epochs must be a positive"),
        (other, "/run_job", job_args(run_name="fair-mine"), "a run named 'fair-mine' already exists"),
        (other, "/quick_student", {}, "a student to chat with exists already"),
        (other, "/stop_job", {"run": "fair-long"}, "run fair-long was started by another visitor"),
    ]
    for client, api, arguments, message in cases:
        asked = time.monotonic()
        with pytest.raises(Exception, match=message) as refused:
            client.predict(**arguments, api_name=api)
        took = time.monotonic() - asked
        assert took < 2.0, f"{api} {arguments.get('run', '')} was refused after {took:.1f} s"
        text = str(refused.value)  # a refused input is Gradio's "1 parameter(s) failed validation:" and its line
        lines = [line for line in text.strip().splitlines() if not line.endswith("failed validation:")]
        assert len(lines) == 1 and "Traceback" not in text and str(results) not in text, text
    assert not job.done(), "the owner's job trains on"
    assert not (results / "fair-second").exists() and not (results / "nowhere").exists()

    # Another visitor has a share of their own: they may queue a job behind the first, and drop it.
    queued = other.submit(**job_args(run_name="fair-other"), api_name="/run_job")
    wait_until(lambda: queued.outputs() and queued.outputs()[-1]["state"] == "queued", 30)
    queued.cancel()
    watched = Client(url, verbose=False).predict("fair-other", api_name="/watch_job")
    assert watched["state"] == "cancelled"
    assert owner.predict("fair-long", "", api_name="/stop_job") == {"stopped": True}
    assert ended(job)["state"] == "stopped"
    assert not (results / "fair-other").exists(), "a cancelled job creates no run"


def test_cancel_drops_that_queued_job_and_nothing_else(app_server):
    """On a duplicate or a local app (no shares) one client may hold several jobs: cancelling one queued job
    drops it alone; the client's running job and its other queued job go on (Gradio ends the client's streams of
    that endpoint, so they are watched again by name)."""
    url, results = app_server
    client = Client(url, verbose=False)
    running = client.submit(**job_args(run_name="cancel-x", **LONG), api_name="/run_job")
    started(running)
    dropped = client.submit(**job_args(run_name="cancel-y"), api_name="/run_job")
    kept = client.submit(**job_args(run_name="cancel-z"), api_name="/run_job")
    for job in (dropped, kept):
        wait_until(lambda job=job: job.outputs() and job.outputs()[-1]["state"] == "queued", 30)
    dropped.cancel()
    watcher = Client(url, verbose=False)
    assert watcher.predict("cancel-y", api_name="/watch_job")["state"] == "cancelled"
    assert (results / "cancel-x" / "status.json").is_file()
    assert json.loads((results / "cancel-x" / "status.json").read_text())["state"] == "running"
    final_x = list(watcher.submit("cancel-x", api_name="/watch_job"))[-1]
    final_z = list(watcher.submit("cancel-z", api_name="/watch_job"))[-1]
    assert final_x["state"] == final_z["state"] == "completed", (final_x["log"][-1:], final_z["log"][-1:])
    assert not (results / "cancel-y").exists(), "a cancelled job creates no run"

    # Two clients: one cancels its queued job; the other's running job is untouched.
    first, second = Client(url, verbose=False), Client(url, verbose=False)
    running = first.submit(**job_args(run_name="cancel-a", **LONG), api_name="/run_job")
    started(running)
    queued = second.submit(**job_args(run_name="cancel-b"), api_name="/run_job")
    wait_until(lambda: queued.outputs() and queued.outputs()[-1]["state"] == "queued", 30)
    queued.cancel()
    assert ended(running)["state"] == "completed"
    assert not (results / "cancel-b").exists()


@pytest.mark.slow
def test_a_visitor_has_one_job_at_a_time_on_the_public_space_and_any_number_elsewhere(tiny_cfg):
    limit = {"value": 1}
    runner = JobRunner(jobs_per_visitor=lambda: limit["value"])
    a = ("session:a", "address:1.2.3.4")
    first = runner.submit(longer(tiny_cfg, "share-1"), owner="session:a", share=a)
    with pytest.raises(UserError, match=r"you already have a job on this shared Space \(run share-1"):
        runner.submit(tiny_cfg.replace(run_name="share-2"), owner="session:a", share=a)
    with pytest.raises(UserError, match="you already have a job"):  # a new session from the same address
        runner.submit(tiny_cfg.replace(run_name="share-3"), owner="session:new", share=("session:new", a[1]))
    b = ("session:b", "address:5.6.7.8")
    other = runner.submit(tiny_cfg.replace(run_name="share-4"), owner="session:b", share=b)  # their own share
    assert runner.stop("session:a") is True, "with no run named, a visitor's stop is of their own job"
    assert list(runner.watch(first))[-1]["state"] in ("stopped", "cancelled")  # running yet, or still queued
    assert runner.live("share-4") is other, "the other visitor's job was not the one stopped"
    again = runner.submit(tiny_cfg.replace(run_name="share-5"), owner="session:a", share=a)  # room again
    limit["value"] = None  # a duplicate or a local app: no limit
    extra = [runner.submit(tiny_cfg.replace(run_name=f"share-{i}"), owner="session:a", share=a) for i in (6, 7)]
    for job in (other, again, *extra):
        assert list(runner.watch(job))[-1]["state"] == "completed"


def test_the_share_of_a_caller_is_its_login_else_its_session_and_its_address(monkeypatch):
    assert space.share_of("ann", "s1", "10.0.0.1") == (), "a duplicate or a local app has no shares"
    monkeypatch.setenv("SPACE_ID", space.settings()["original_space"])
    assert space.share_of("ann", "s1", "10.0.0.1") == ("user:ann",)
    assert space.share_of(None, "s1", "10.0.0.1") == ("session:s1", "address:10.0.0.1")
    assert space.share_of(None, None, "10.0.0.1") == ("address:10.0.0.1",)
    assert space.jobs_per_visitor() == space.settings()["visitor_limits"]["jobs_at_once"] == 1
    kept = space.settings()["visitor_limits"]["runs_kept"]
    assert f"each visitor runs 1 job at a time and keeps their {kept} newest runs" in space.where_jobs_run()


def test_bare_http_calls_without_a_session_share_one_address(app_server, public_space):
    """Gradio makes up a session for a call without one, and any call may name a new one: the address counts."""
    import app

    url, results = app_server
    call = f"{url}gradio_api/call/run_job"

    def submit(name: str, **body) -> str:
        answer = httpx.post(call, json={"data": list(job_args(run_name=name, **LONG).values()), **body}, timeout=30)
        answer.raise_for_status()
        with httpx.stream("GET", f"{call}/{answer.json()['event_id']}", timeout=30) as stream:
            lines = stream.iter_lines()
            for line in lines:  # the first event: a state of the job, or its refusal
                if line.startswith("event:") and "heartbeat" not in line:
                    return line + " " + next(lines)
        raise AssertionError("no event")

    try:
        assert "error" not in submit("bare-1")
        for name, body in [("bare-2", {}), ("bare-3", {"session_hash": "a-new-one"})]:
            asked = time.monotonic()
            refused = submit(name, **body)
            assert refused.startswith("event: error") and "you already have a job" in refused, refused
            assert time.monotonic() - asked < 2.0
        assert not (results / "bare-2").exists() and not (results / "bare-3").exists()
    finally:
        app.RUNNER.stop(run="bare-1")


def test_a_new_job_deletes_the_visitors_oldest_finished_runs_beyond_their_share(good_run, tmp_path, monkeypatch):
    monkeypatch.setenv("SPACE_ID", space.settings()["original_space"])
    monkeypatch.setenv("DISTILL_RESULTS_DIR", str(tmp_path))
    kept = space.settings()["visitor_limits"]["runs_kept"]
    names = [f"mine-{i}" for i in range(kept + 2)]
    for age, name in enumerate(reversed(names)):  # mine-0 is the oldest
        run = copy_run(good_run, tmp_path, name)
        run.set_owner("session:me")
        os.utime(run.path / "config.json", (time.time() - 1000 * age, time.time() - 1000 * age))
    alive = copy_run(good_run, tmp_path, "mine-alive")  # another process trains it: never deleted
    alive.set_owner("session:me")
    status = json.loads((alive.path / "status.json").read_text())
    status.update(state="running", time=time.time(), pid=os.getpid())
    (alive.path / "status.json").write_text(json.dumps(status))
    os.utime(alive.path / "config.json", (0, 0))
    copy_run(good_run, tmp_path, "theirs").set_owner("session:you")
    deleted = space.prune_runs_of("session:me", busy=lambda run: run == names[0])  # mine-0 is queued here
    # The new run, the running one and the busy one leave room for kept - 3 more: the newest finished ones.
    assert sorted(deleted) == sorted(names[1 : len(names) - max(0, kept - 3)])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["theirs", "mine-alive", names[0], *names[len(names) - max(0, kept - 3) :]])
    assert space.prune_runs_of("session:you", busy=lambda run: False) == [], "within their share"
    monkeypatch.delenv("SPACE_ID")
    assert space.prune_runs_of("session:me", busy=lambda run: False) == [], "a duplicate deletes nothing"
