"""The app as a real Space runs it: a restart onto damaged runs in a mounted bucket, visitors who collide on the
public Space, settings refused before the queue, a Hub upload that fails. Driven with gradio_client."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from test_app import job_args
from tiny import copy_run, cut

from distill import space

REPO = Path(__file__).resolve().parent.parent
SERVER_DETAILS = ("pid", "host", "folder")


@pytest.fixture
def bucket(good_run):
    """A results folder outside the working folder and the temp folder, as a Space's mounted bucket is, holding
    a finished run and two damaged ones."""
    root = Path(tempfile.mkdtemp(prefix="distill-bucket-", dir=Path.home()))
    copy_run(good_run, root, "fine")
    cut(copy_run(good_run, root, "cut-metrics").path / "metrics.jsonl")
    (copy_run(good_run, root, "garbled-config").path / "config.json").write_bytes(b"\x00\x9c garbage")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def start_app(results: Path, **env: str):
    """`python app.py` started afresh, as a Space container is after a restart; returns (process, client)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **env, "DISTILL_RESULTS_DIR": str(results), "GRADIO_SERVER_PORT": str(port)}
    app = subprocess.Popen(
        [sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        assert app.poll() is None, f"the app died on start:\n{app.stdout.read()[-3000:]}"
        try:
            client = Client(url, verbose=False)
            break
        except Exception:
            time.sleep(1)
    else:
        pytest.fail("the app did not start within 180 s")
    return app, client


@pytest.fixture
def restarted_app(bucket):
    """The app started afresh on that bucket."""
    app, client = start_app(bucket)
    yield client, bucket
    app.terminate()
    app.wait(timeout=30)


@pytest.mark.slow
def test_chat_opens_on_the_best_published_reference_student(good_run, tmp_path):
    from distill.publish import publish_tree

    tree = tmp_path / "published" / "layer-distill-reference"
    publish_tree(copy_run(good_run, tmp_path / "runs", "reference-source"), tree)
    empty = tmp_path / "no-runs-yet"
    app, client = start_app(empty, DISTILL_REFERENCE_MODELS=str(tree))
    try:
        models = client.predict(api_name="/models")
        assert "layer-distill-reference/top_k-seed0" in models
        best = next(r for r in client.predict(api_name="/list_runs") if r["run"] == "layer-distill-reference")
        opened = client.predict(api_name="/refresh_models")[0]  # the Chat tab's model picker, as the page loads
        assert opened["value"] == f"layer-distill-reference/{best['best_student']}"
        reply = client.predict(
            f"layer-distill-reference/{best['best_student']}",
            "A man sleeps.",
            "A man is in bed.",
            1.0,
            64,
            False,
            api_name="/chat",
        )
        assert reply["label"] in ("entailment", "neutral", "contradiction")
    finally:
        app.terminate()
        app.wait(timeout=30)


def test_the_mcp_schema_lists_the_reading_tools_and_no_jobs(app_server):
    schema = httpx.get(app_server[0] + "gradio_api/mcp/schema", timeout=60).json()
    tools = {tool["name"]: tool for tool in schema}
    assert set(tools) == {"chat", "comparison", "models", "list_runs"}, "the job endpoints are not tools"
    chat = tools["chat"]
    assert "entailment, neutral or contradiction" in chat["description"]
    assert set(chat["inputSchema"]["properties"]) == {
        "model",
        "query",
        "context",
        "temperature",
        "max_length",
        "every_model",
    }
    assert set(tools["comparison"]["inputSchema"]["properties"]) == {"run", "ensemble"}


@pytest.mark.slow
def test_a_restart_onto_damaged_runs_serves_everything_else(restarted_app):
    client, bucket = restarted_app
    runs = {r["run"]: r for r in client.predict(api_name="/list_runs")}
    assert runs["fine"]["state"] == "completed" and runs["fine"]["best_student"]
    assert runs["cut-metrics"]["state"] == "damaged" and "metrics.jsonl line" in runs["cut-metrics"]["message"]
    assert runs["garbled-config"]["state"] == "damaged" and "config.json" in runs["garbled-config"]["message"]
    assert runs["reference"]["state"] == "completed", "the committed runs are listed too"
    text = json.dumps(runs)
    assert str(bucket) not in text and str(REPO) not in text
    assert not any(key in r for r in runs.values() for key in SERVER_DETAILS)

    models = client.predict(api_name="/models")
    assert "fine/top_k-seed0" in models and not any(m.startswith(("cut-metrics/", "garbled-config/")) for m in models)
    reply = client.predict("fine/even-seed0", "A dog runs.", "An animal moves.", 1.0, 64, False, api_name="/chat")
    assert reply["label"] in ("entailment", "neutral", "contradiction")

    with pytest.raises(Exception, match=r"run cut-metrics is damaged: metrics\.jsonl line") as refused:
        client.predict("cut-metrics", api_name="/comparison")
    assert str(bucket) not in str(refused.value)
    result = client.predict("fine", api_name="/comparison")
    assert [r["strategy"] for r in result["table"]] == ["teacher", "top_k", "even"]
    assert set(result["status"]) == {"state", "message", "busy_seconds"}
    tools = httpx.get(client.src + "gradio_api/mcp/schema", timeout=60).json()  # as `python app.py` serves it
    assert {tool["name"] for tool in tools} == {"chat", "comparison", "models", "list_runs"}

    header = client.predict("cut-metrics", api_name="/show_comparison")[0]  # the Compare tab: no error overlay
    assert "damaged" in header and "metrics.jsonl line" in header and str(bucket) not in header

    # The Compare tab's downloads, from a bucket outside the working and temp folders.
    header, *_, files, _, _, _ = client.predict("fine", api_name="/show_comparison")
    assert "fine" in header and len(files) == 2
    summary = next(Path(f) for f in files if f.endswith("summary.json"))
    assert json.loads(summary.read_text()) == json.loads((bucket / "fine" / "summary.json").read_text())


@pytest.fixture(scope="module")
def visitors(app_server):
    """Two visitors, each from an address of their own (a Space's proxy appends it to X-Forwarded-For)."""
    return tuple(
        Client(app_server[0], verbose=False, headers={"X-Forwarded-For": address})
        for address in ("10.1.0.1", "10.1.0.2")
    )


def wait_for(job, predicate, seconds=240):
    deadline = time.time() + seconds
    while time.time() < deadline and not job.done():
        outputs = job.outputs()
        if outputs and predicate(outputs[-1]):
            return outputs[-1]
        time.sleep(0.3)
    raise AssertionError(f"the job never reached the state wanted; last: {job.outputs()[-1:]}")


def test_on_the_public_space_visitors_cannot_stop_or_resume_each_others_jobs(app_server, visitors, public_space):
    first, second = visitors
    job = first.submit(
        **job_args(run_name="owned", train_size=320, epochs=3, strategies=["top_k", "even"]), api_name="/run_job"
    )
    wait_for(job, lambda s: any(m["model"] == "teacher" for m in s["models"]))

    # While the job runs, bad settings are refused at once, not after the job ahead of them.
    for changes, message in [
        ({"epochs": -1}, "epochs must be a positive"),
        ({"seeds": "-1"}, "Seeds must be whole numbers"),
        ({"teacher": str(REPO)}, "the teacher is one of"),
        ({"batch_size": 1024}, "Batch size is limited to 64"),
    ]:
        asked = time.time()
        with pytest.raises(Exception, match=message) as refused:
            second.predict(**job_args(**changes), api_name="/run_job")
        assert time.time() - asked < 20 and not job.done(), "refused before joining the queue"
        assert str(REPO) not in str(refused.value) and "Error:" not in str(refused.value)

    with pytest.raises(Exception, match="started by another visitor; only they can stop it"):
        second.predict(api_name="/stop_job")
    assert not job.done(), "the job of the first visitor runs on"
    assert first.predict(api_name="/stop_job") == {"stopped": True}
    while not job.done():
        time.sleep(0.3)
    assert job.outputs()[-1]["state"] == "stopped"

    with pytest.raises(Exception, match="run owned was started by another visitor; only they can resume it"):
        second.predict("owned", api_name="/resume_job")
    final = list(first.submit("owned", api_name="/resume_job"))[-1]
    assert final["state"] == "completed" and final["run"] == "owned"


def test_on_the_public_space_resumes_keep_to_the_limits(app_server, visitors, public_space, good_run):
    first, other = visitors
    results = app_server[1]
    big = copy_run(good_run, results, "big-stopped")
    big.set_owner(f"session:{first.session_hash}")
    config = json.loads((big.path / "config.json").read_text())
    (big.path / "config.json").write_text(
        json.dumps({**config, "teacher": "embedded", "train_size": 10772, "epochs": 50, "seeds": list(range(10))})
    )
    status = json.loads((big.path / "status.json").read_text())
    (big.path / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    with pytest.raises(Exception, match="is limited to"):
        first.predict("big-stopped", api_name="/resume_job")

    spent = copy_run(good_run, results, "spent")
    spent.set_owner(f"session:{first.session_hash}")
    (spent.path / "config.json").write_text(json.dumps({**config, "teacher": "embedded"}))
    minutes = space.settings()["public_limits"]["max_job_minutes"]
    spent_status = {"state": "stopped", "busy_seconds": minutes * 60, "started": status["time"] - 2 * minutes * 60}
    (spent.path / "status.json").write_text(json.dumps({**status, **spent_status}))
    with pytest.raises(Exception, match=f"has used this Space's {minutes} min per job"):
        first.predict("spent", api_name="/resume_job")

    ownerless = copy_run(good_run, results, "ownerless")  # made before owners were kept, or by the owner's CLI
    (ownerless.path / "config.json").write_text(json.dumps({**config, "teacher": "embedded"}))
    (ownerless.path / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    for visitor in (first, other):
        with pytest.raises(Exception, match="started by another visitor"):
            visitor.predict("ownerless", api_name="/resume_job")
    for name in ("reference", "search", "ownerless"):  # a new run must not shadow a listed one
        with pytest.raises(Exception, match="already exists"):
            first.predict(**job_args(run_name=name), api_name="/run_job")
    with pytest.raises(Exception, match="Data must be one of"):
        first.predict(**job_args(data=str(results / "ownerless" / "config.json")), api_name="/run_job")


def test_a_failed_hub_upload_leaves_the_job_completed_and_resumed_runs_are_uploaded_too(
    app_server, visitors, monkeypatch, good_run
):
    token = "hf_" + "Q" * 32
    monkeypatch.setenv("DISTILL_UPLOAD_REPO", "someone/students")
    monkeypatch.setenv("HF_TOKEN", token)
    first, _ = visitors
    final = list(first.submit(**job_args(run_name="upload-fails", strategies=["top_k"]), api_name="/run_job"))[-1]
    assert final["state"] == "completed"
    assert "upload to someone/students failed" in final["upload_error"] and token not in json.dumps(final)
    assert final["log"][-1] == final["upload_error"]

    halted = copy_run(good_run, app_server[1], "resumed-upload")
    summary = json.loads((halted.path / "summary.json").read_text())
    (halted.path / "summary.json").write_text(json.dumps(summary[:2]))  # even-seed0 is still to do
    status = json.loads((halted.path / "status.json").read_text())
    (halted.path / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    resumed = list(first.submit("resumed-upload", api_name="/resume_job"))[-1]
    assert resumed["state"] == "completed" and [m["model"] for m in resumed["models"]] == ["even-seed0"]
    assert "upload to someone/students failed" in resumed["upload_error"]


def test_the_quick_student_button_trains_a_student_that_answers(app_server, visitors):
    """Chat's button when there is no model (bench/quick_student.py times it: the 3-minute budget)."""
    first, _ = visitors
    before = set(first.predict(api_name="/models"))
    final = list(first.submit(True, api_name="/quick_student"))[-1]  # own: the session may have students
    assert final.startswith("**completed**")
    new = [m for m in first.predict(api_name="/models") if m not in before and m.endswith("/top_k-seed0")]
    assert len(new) == 1
    reply = first.predict(new[0], "A dog runs in a park.", "An animal is outside.", 1.0, 128, False, api_name="/chat")
    assert reply["label"] in ("entailment", "neutral", "contradiction")


def test_importing_the_app_builds_its_ui_and_fetches_nothing():
    """`import app` (as gradio's reload, a test or a notebook does) builds the UI only: the published reference
    runs are fetched when Chat or a listing first needs them, not on import."""
    probe = (
        "from distill import space\n"
        "def refused():\n"
        "    raise AssertionError('fetched on import')\n"
        "space.reference_runs = refused\n"
        "import app\n"
        "print(type(app.demo).__name__, app.RUNNER.running())\n"
    )
    env = {**os.environ, "DISTILL_REFERENCE_MODELS": "someone/published-run", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["Blocks", "None"]
