"""One writer per run: a job holds its run's lease; another process refuses the run while the lease is alive,
takes it over only once it is stale (one taker only), and asks the holder to stop through the run folder."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from test_space import start_app
from tiny import copy_run

from distill import lease
from distill.job import resume_job
from distill.lease import Lease, RunBusy, StopEither, read_lease, request_stop
from distill.results import Run


def stale_lease(folder: Path, **changes) -> None:
    record = {"by": "app.py", "host": "gone-container", "pid": 7, "token": "old", "since": 0.0, "time": 0.0}
    (folder / "heartbeat.json").write_text(json.dumps({**record, **changes}))


def test_a_live_lease_refuses_a_second_writer_and_names_its_holder(tmp_path):
    with Lease(tmp_path, by="app.py"):
        held = read_lease(tmp_path)
        assert held["pid"] > 0 and held["host"] == socket.gethostname() and held["by"] == "app.py"
        with pytest.raises(RunBusy, match=rf"being trained by app.py \(process {held['pid']} on host "):
            Lease(tmp_path, by="cli").take()
    assert read_lease(tmp_path) is None, "the lease is given back at the end"
    with Lease(tmp_path, by="cli"):  # and can then be taken again
        assert read_lease(tmp_path)["by"] == "cli"


@pytest.mark.parametrize(
    "beat",
    [
        pytest.param(time.time() - 3600, id="an-hour-old"),
        pytest.param(time.time() + 10**9, id="far-future"),
        pytest.param(math.nan, id="nan"),
        pytest.param("yesterday", id="text"),
        pytest.param(None, id="null"),
    ],
)
def test_a_stale_or_damaged_lease_is_taken_over_by_exactly_one_of_many(tmp_path, beat):
    stale_lease(tmp_path, time=beat)
    if isinstance(beat, float) and math.isnan(beat):  # json.dumps writes NaN, as a damaged file may hold
        assert "NaN" in (tmp_path / "heartbeat.json").read_text()
    outcomes: list[str] = []
    start = threading.Barrier(8)
    leases = [Lease(tmp_path, by=f"taker-{i}") for i in range(8)]

    def take(held: Lease) -> None:
        start.wait()
        try:
            held.take()
            outcomes.append(held.by)
        except RunBusy:
            outcomes.append("refused")

    threads = [threading.Thread(target=take, args=(held,)) for held in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o != "refused"]
    assert len(winners) == 1 and Counter(outcomes)["refused"] == 7
    assert read_lease(tmp_path)["by"] == winners[0]
    assert not list(tmp_path.glob(".lease-takeover-*")), "no takeover marker is left behind"


def test_a_lease_with_garbage_in_it_holds_nothing_once_it_is_not_being_written(tmp_path):
    (tmp_path / "heartbeat.json").write_text("{not json")
    taken = time.monotonic()
    with Lease(tmp_path, by="cli"):  # garbage just written may be a lease being written: it waits a moment
        assert read_lease(tmp_path)["by"] == "cli"
    assert 1.5 < time.monotonic() - taken < 10
    (tmp_path / "heartbeat.json").write_text("")
    os.utime(tmp_path / "heartbeat.json", (0, 0))
    taken = time.monotonic()
    with Lease(tmp_path, by="cli"):
        assert read_lease(tmp_path)["by"] == "cli"
    assert time.monotonic() - taken < 1.0
    assert not list(tmp_path.glob(".heartbeat.json.*")), "no temporary file is left behind"


def test_a_stop_request_reaches_the_holder_at_its_next_beat(tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "BEAT_SECONDS", 0.1)
    own = threading.Event()
    with Lease(tmp_path, by="app.py") as held:
        signal = StopEither(own, held)
        assert not signal.is_set()
        holder = request_stop(tmp_path, "stopped from the other container")
        assert holder["by"] == "app.py"
        deadline = time.monotonic() + 5
        while not signal.is_set():
            assert time.monotonic() < deadline, "the holder never saw the stop request"
            time.sleep(0.05)
        assert signal.reason() == "stopped from the other container" and not signal.pausing()
    assert not (tmp_path / "stop-request.json").exists(), "the request ends with the lease"
    assert request_stop(tmp_path, "nobody holds it") is None
    assert not (tmp_path / "stop-request.json").exists()


def test_a_resume_refused_by_the_lease_writes_nothing_into_the_run(good_run, tmp_path):
    run = copy_run(good_run, tmp_path, "held")
    status = json.loads((run.path / "status.json").read_text())
    (run.path / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    with Lease(run.path, by="another-app"):
        # the other process resumed it a moment ago: this one read "stopped" before the lease was taken
        with pytest.raises(RunBusy, match="being trained by another-app"):
            resume_job(run)
        after = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file() and p.name != "heartbeat.json"}
    assert after == {k: v for k, v in before.items() if k != "heartbeat.json"}, "the refused side wrote nothing"


def stopped_run(good_run, root: Path, name: str, train_size: int) -> Run:
    """A copy of the tiny finished run with only its teacher finished and a longer student job to do."""
    run = copy_run(good_run, root, name)
    run.write_summary(run.summary()[:1])
    metrics = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    (run.path / "metrics.jsonl").write_text(
        "".join(json.dumps(m) + "\n" for m in metrics if m.get("model") == "teacher")
    )
    for model in ("top_k-seed0", "even-seed0"):
        shutil.rmtree(run.path / "models" / model, ignore_errors=True)
        (run.path / "probabilities" / f"{model}.npz").unlink(missing_ok=True)
    predictions = json.loads((run.path / "predictions.json").read_text())
    (run.path / "predictions.json").write_text(json.dumps({"teacher": predictions["teacher"]}))
    config = json.loads((run.path / "config.json").read_text())
    (run.path / "config.json").write_text(json.dumps({**config, "train_size": train_size, "epochs": 3}))
    status = json.loads((run.path / "status.json").read_text())
    (run.path / "status.json").write_text(json.dumps({**status, "state": "stopped", "message": "stopped"}))
    return run


@pytest.fixture
def two_apps(tmp_path):
    """Two app processes on one results folder, as overlapping containers on one bucket during a restart."""
    results = tmp_path / "bucket"
    results.mkdir()
    first, first_client = start_app(results)
    second, second_client = start_app(results)
    yield results, first_client, second_client
    for app in (first, second):
        app.terminate()
        app.wait(timeout=30)


@pytest.mark.slow
def test_two_apps_racing_to_resume_one_run_train_it_once(two_apps, good_run):
    results, first, second = two_apps
    run = stopped_run(good_run, results, "raced", train_size=2000)
    outcomes: dict[str, object] = {}

    def resume(name: str, client) -> None:
        try:
            outcomes[name] = list(client.submit("raced", api_name="/resume_job"))[-1]
        except Exception as err:  # the refusal, as the client sees it
            outcomes[name] = str(err)

    threads = [threading.Thread(target=resume, args=pair) for pair in (("first", first), ("second", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    finals = [o for o in outcomes.values() if isinstance(o, dict)]
    refusals = [o for o in outcomes.values() if isinstance(o, str)] + [
        "; ".join(f["log"][-1:]) for f in finals if f["state"] != "completed"
    ]
    assert [f["state"] for f in finals].count("completed") == 1, outcomes
    assert len(refusals) == 1 and "being trained by" in refusals[0], outcomes
    assert "Traceback" not in refusals[0] and str(results) not in refusals[0]
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    per_epoch = Counter((r["model"], r["epoch"]) for r in rows)
    assert per_epoch and max(per_epoch.values()) == 1, "every model and epoch is written once"
    assert set(per_epoch) == {(m, e) for m in ("top_k-seed0", "even-seed0") for e in range(4)}  # epoch 0: before
    assert run.status()["state"] == "completed"
    assert read_lease(run.path) is None


@pytest.mark.slow
def test_a_stop_sent_to_the_other_app_stops_the_run_through_its_folder(two_apps, good_run):
    results, first, second = two_apps
    run = stopped_run(good_run, results, "stopped-elsewhere", train_size=20000)
    job = first.submit("stopped-elsewhere", api_name="/resume_job")
    deadline = time.monotonic() + 120
    while not (job.outputs() and job.outputs()[-1]["done"]):
        assert time.monotonic() < deadline and not job.done(), job.outputs()[-1:]
        time.sleep(0.2)
    with pytest.raises(Exception, match=r"is being trained by app\.py"):  # no second writer through this app
        second.predict("stopped-elsewhere", api_name="/resume_job")
    answer = second.predict("stopped-elsewhere", "", api_name="/stop_job")
    assert answer["stopped"] is True and "not in this app: asked it to stop" in answer["message"]
    asked = time.monotonic()
    while not job.done():
        assert time.monotonic() - asked < 30, "the holder stops within a beat or two"
        time.sleep(0.2)
    assert job.outputs()[-1]["state"] == "stopped", job.outputs()[-1]
    assert "stopped by a request from another process" in run.status()["message"]
