"""Launching on Hugging Face Jobs, offline: the real client against a local stand-in of the Jobs API, the price
count against the bench's, and the exact command a job would run, run here."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants
from tiny import TINY

from distill import hf_jobs
from distill.cli import build_parser, job_config, main
from distill.config import JobConfig
from distill.errors import UserError
from distill.results import Run

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_" + "J0bsT0kenA1b2C3d4E5f6G7h8"
NAMESPACE = "tester"
JOB_ID = "687fb701029421ae5549d998"


class JobsHub:
    """A stand-in for the Hub's Jobs API on a local port: whoami, run, inspect and cancel, answered as the Hub
    answers them (huggingface_hub 2.4.0's routes), every request recorded with its headers and body."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.stage = ("SCHEDULING", None)
        self.failure: tuple[int, str] | None = None  # (status, message) for the next run_job
        self.job: dict = {}
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hub.answer(self)

            def do_POST(self):
                hub.answer(self)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"null")
        self.requests.append(
            {
                "method": handler.command,
                "path": handler.path,
                "headers": {k.lower(): v for k, v in handler.headers.items()},
            }
        )
        self.requests[-1]["body"] = body
        path = handler.path.split("?")[0]
        if path == "/api/whoami-v2":
            return self.send(handler, 200, {"type": "user", "name": NAMESPACE, "auth": {"type": "access_token"}})
        if handler.command == "POST" and path == f"/api/jobs/{NAMESPACE}":
            if self.failure:
                status, message = self.failure
                return self.send(handler, status, {"error": message})
            self.job = {
                "id": JOB_ID,
                "createdAt": "2026-12-05T10:00:00.000Z",
                "dockerImage": body.get("dockerImage"),
                "command": body["command"],
                "arguments": body["arguments"],
                "environment": body["environment"],
                "secrets": dict.fromkeys(body.get("secrets", {})),  # the Hub never sends a secret's value back
                "flavor": body["flavor"],
                "labels": body.get("labels"),
                "volumes": body.get("volumes"),
                "owner": {"id": "5e9ecfc04957053f60648a3e", "name": NAMESPACE, "type": "user"},
                "initiator": {"type": "user", "id": "5e9ecfc04957053f60648a3e", "name": NAMESPACE},
            }
            return self.send(handler, 200, self.info())
        if handler.command == "GET" and path == f"/api/jobs/{NAMESPACE}/{JOB_ID}":
            return self.send(handler, 200, self.info())
        if handler.command == "POST" and path == f"/api/jobs/{NAMESPACE}/{JOB_ID}/cancel":
            self.stage = ("CANCELED", None)
            return self.send(handler, 200, {})
        return self.send(handler, 404, {"error": "Not found"})

    def info(self) -> dict:
        stage, message = self.stage
        return {**self.job, "status": {"stage": stage, "message": message}}

    @staticmethod
    def send(handler, status: int, value) -> None:
        data = json.dumps(value).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def runs(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == f"/api/jobs/{NAMESPACE}"]


@pytest.fixture
def hub(monkeypatch):
    """The stand-in, with huggingface_hub (in this process) pointed at it and allowed online."""
    stand_in = JobsHub()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", stand_in.url)
    yield stand_in
    stand_in.server.shutdown()


def tiny_job(**changes) -> JobConfig:
    """A job of a few training steps on the embedded teacher (which a job on Jobs may use: it is packaged)."""
    return JobConfig.from_dict({**TINY, "strategies": ["top_k"], "max_length": 64, "run_name": "tiny-job", **changes})


def test_estimate_is_the_benchs_count_priced_from_the_table(capsys):
    from bench.gpu_estimate import CARDS, STEP_FLOOR_S
    from bench.gpu_estimate import estimate as bench_estimate
    from distill.estimate import gpu_seconds

    cfg = JobConfig.from_yaml(ROOT / "examples/jobs/bert-base-mnli.yaml")
    one_gpu = gpu_seconds(cfg, CARDS["A10G"][0], STEP_FLOOR_S["A10G"])
    bench_estimate(cfg)
    a10g_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| A10G"))
    assert a10g_row.split("|")[-3].strip() == f"{one_gpu / 3600:.1f} h"  # the bench prints the same count

    table = hf_jobs.settings()
    setup_h = table["setup_minutes"] / 60
    single, quad = hf_jobs.estimate(cfg, "a10g-large"), hf_jobs.estimate(cfg, "a10g-largex4")
    assert single["compute_hours"] == pytest.approx(one_gpu / 3600)  # the table's A10G is the bench's card
    assert quad["compute_hours"] == pytest.approx(one_gpu / 3600 / 4)  # four GPUs: a quarter of the time
    for est, price, gpus in ((single, 1.50, 1), (quad, 5.00, 4)):
        assert est["usd_per_hour"] == price == table["flavors"][est["flavor"]]["usd_per_hour"]
        assert est["wall_hours"] == pytest.approx(est["compute_hours"] + setup_h)
        assert est["cost_usd"] == pytest.approx(est["wall_hours"] * price)
        assert est["gpu_hours"] == pytest.approx(est["wall_hours"] * gpus)
        limit = est["wall_hours"] * 60 * table["timeout"]["factor"] + table["timeout"]["extra_minutes"]
        assert est["timeout_s"] // 60 == -(-limit // 1)
        assert est["fits"] and est["price_source"].startswith("https://huggingface.co/docs/hub/jobs-pricing")
    assert hf_jobs.estimate(cfg, "h200")["compute_hours"] < single["compute_hours"]


def test_flavors_jobs_does_not_offer_are_refused_by_name():
    with pytest.raises(UserError, match=r"not a Jobs flavor.*use h200"):
        hf_jobs.flavor_info("h100")
    with pytest.raises(UserError, match="unknown Jobs flavor 'a10g-huge'; choose one of cpu-basic"):
        hf_jobs.flavor_info("a10g-huge")
    every = hf_jobs.settings()["flavors"]
    wanted = {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "a10g-small", "a10g-large"}
    wanted |= {"a10g-largex2", "a10g-largex4", "a100-large", "h100", "h100x8"}
    assert wanted <= set(every)
    for name, row in every.items():
        assert {"gpus", "gpu", "usd_per_hour", "tflops", "memory_gib"} <= set(row), name
        assert row.get("unavailable") or row["usd_per_hour"] > 0, name


def test_the_flags_a_job_is_sent_give_back_the_same_settings():
    cfg = JobConfig.from_dict(
        {
            **TINY,
            "run_name": "flags",
            "strategies": ["0,2,4"],
            "student_train_size": 0,  # none: all
            "dropout": None,
            "freeze_word_embeddings": False,
            "eval_every_epoch": True,
            "weight_ce": 0.5,
            "learning_rate": 1 / 3 * 1e-3,
            "search": True,
            "search_temperatures": [1.5, 3],
            "search_loss_weights": ["1:1:1", "1:0:0"],
            "results_dir": "somewhere/else",
        }
    )
    flags = hf_jobs.run_flags(cfg)
    assert "--run-name" not in flags and "--results-dir" not in flags  # the job's own
    assert "--no-freeze-word-embeddings" in flags and "--eval-every-epoch" in flags
    args = build_parser().parse_args(["run", "--run-name", "flags", "--results-dir", "somewhere/else", *flags])
    assert job_config(args) == cfg
    assert hf_jobs.run_flags(JobConfig(run_name="x")) == []  # the defaults need no flag


def test_what_another_machine_cannot_read_is_refused(tiny_bert, tmp_path):
    data = tmp_path / "mine.csv"
    data.write_text("premise,hypothesis,label\na,b,entailment\n")
    for cfg, message in (
        (JobConfig(teacher=str(tiny_bert)), "is a path on this machine"),
        (JobConfig(data=str(data)), "data file 'mine.csv' is on this machine"),
        (JobConfig(eval_data=[str(data)]), "data file 'mine.csv' is on this machine"),
    ):
        with pytest.raises(UserError, match=message) as refused:
            hf_jobs.job_spec(cfg, "a10g-large", code_repo="me/space", revision="main", bucket="me/bucket")
        assert str(tmp_path) not in str(refused.value)
    with pytest.raises(UserError, match="bucket must be a Hub bucket id"):
        hf_jobs.job_spec(JobConfig(), "t4-small", code_repo="me/space", revision="main", bucket="../x")
    with pytest.raises(UserError, match=r"give a bucket \(--bucket.* or a model repo \(--publish-repo"):
        hf_jobs.launch(JobConfig(), "t4-small", TOKEN, code_repo="me/space", revision="main")


def test_the_spec_is_one_bash_line_with_the_job_on_every_gpu():
    cfg = tiny_job()
    one = hf_jobs.job_spec(cfg, "a10g-large", code_repo="me/space", revision="0123abc", bucket="me/bucket")
    four = hf_jobs.job_spec(cfg, "a10g-largex4", code_repo="me/space", revision="0123abc", publish_repo="me/out")
    assert one["command"][:2] == ["bash", "-c"] and "\n" not in one["command"][2]
    script = one["command"][2]
    assert "hf download me/space --repo-type space --revision 0123abc --local-dir /tmp/code" in script
    assert "pip install -q huggingface_hub==2.4.0" in script and "pip install -q -r requirements.txt" in script
    assert 'exec python -m distill run --run-name tiny-job --results-dir "$DISTILL_RESULTS_DIR"' in script
    assert "accelerate launch --multi_gpu --num_processes 4" in four["command"][2]
    publish = 'python -m distill publish tiny-job --results-dir "$DISTILL_RESULTS_DIR" --repo me/out'
    assert publish in four["command"][2]
    assert one["env"]["DISTILL_RESULTS_DIR"] == "/data/runs" and one["secrets"] == {"HF_TOKEN": "***"}
    volume = one["volumes"][0]
    assert (volume.type, volume.source, volume.mount_path, volume.read_only) == ("bucket", "me/bucket", "/data", False)
    assert "volumes" not in four
    assert one["labels"] == {"project": "layer-distill", "run": "tiny-job"} and one["name"] == "tiny-job"
    assert re.fullmatch(r"\d+m", one["timeout"])
    nested = hf_jobs.job_spec(cfg, "t4-small", code_repo="me/space", revision="main", bucket="me/bucket/shared/runs")
    assert nested["env"]["DISTILL_RESULTS_DIR"] == "/data/shared/runs" and nested["volumes"][0].source == "me/bucket"


def test_launch_sends_the_token_only_as_the_jobs_secret(hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    cfg = tiny_job()
    spec = hf_jobs.job_spec(cfg, "a10g-large", code_repo="me/space", revision="main", bucket="me/bucket")
    launched = hf_jobs.launch(
        cfg, "a10g-large", TOKEN, code_repo="me/space", revision="main", bucket="me/bucket", results_dir=tmp_path
    )
    assert launched["run"] == "tiny-job" and launched["job_id"] == JOB_ID
    assert launched["url"] == f"{hub.url}/jobs/{NAMESPACE}/{JOB_ID}"

    (sent,) = hub.runs()
    body = sent["body"]
    assert body["dockerImage"] == "python:3.12" and body["command"] == spec["command"]
    assert body["flavor"] == "a10g-large" and body["environment"] == spec["env"]
    assert body["timeoutSeconds"] == launched["estimate"]["timeout_s"] == 60 * int(spec["timeout"][:-1])
    assert body["labels"] == {"project": "layer-distill", "run": "tiny-job", "name": "tiny-job"}
    assert body["volumes"] == [{"type": "bucket", "source": "me/bucket", "mountPath": "/data", "readOnly": False}]
    assert body["secrets"] == {"HF_TOKEN": TOKEN}
    assert sent["headers"]["authorization"] == f"Bearer {TOKEN}"  # how the client authenticates: fine
    for request in hub.requests:  # nothing else carries it (huggingface_hub's own registry fetch has no token)
        assert request["headers"].get("authorization") in (None, f"Bearer {TOKEN}"), request["path"]
        headers = {k: v for k, v in request["headers"].items() if k != "authorization"}
        shown = {**(request["body"] or {}), "secrets": None} if isinstance(request["body"], dict) else request["body"]
        assert TOKEN not in json.dumps([request["path"], headers, shown])

    record = hf_jobs.record_path(tmp_path, "tiny-job")
    saved = json.loads(record.read_text())
    assert saved["backend"] == "hf-jobs" and saved["job_id"] == JOB_ID and saved["flavor"] == "a10g-large"
    assert saved["url"] == launched["url"] and saved["estimate"] == launched["estimate"]
    assert TOKEN not in record.read_text() and TOKEN not in json.dumps(launched)
    assert TOKEN not in hf_jobs.describe(spec, launched["estimate"]) and TOKEN not in str(hf_jobs.redacted(spec))
    assert not (tmp_path / "tiny-job").exists()  # the job makes its run folder itself
    out, err = capsys.readouterr()
    assert TOKEN not in out + err

    with pytest.raises(UserError, match="already exists"):  # the same name twice would collide in the bucket
        hf_jobs.launch(cfg, "a10g-large", TOKEN, code_repo="me/space", revision="main", bucket="me/bucket",
                       results_dir=tmp_path)  # fmt: skip


@pytest.mark.parametrize(
    ("stage", "message", "state"),
    [
        ("SCHEDULING", None, "queued"),
        ("RUNNING", None, "running"),
        ("COMPLETED", None, "completed"),
        ("ERROR", "exit code 1", "failed"),
        ("ERROR", "Job timed out after 30m", "interrupted"),
        ("CANCELED", None, "interrupted"),
        ("DELETED", None, "interrupted"),
    ],
)
def test_jobs_stages_read_as_run_states(hub, stage, message, state):
    hub.job = {"id": JOB_ID, "owner": {"id": "1", "name": NAMESPACE, "type": "user"}}
    hub.stage = (stage, message)
    assert hf_jobs.job_state(JOB_ID, TOKEN, namespace=NAMESPACE) == state
    assert hf_jobs.job_state(JOB_ID, TOKEN) == state  # without the namespace: whoami finds it
    job = f"/api/jobs/{NAMESPACE}/{JOB_ID}"
    assert [r["path"] for r in hub.requests] == [job, "/api/whoami-v2", job]


@pytest.mark.parametrize(
    ("status", "message", "said"),
    [
        (401, "Invalid credentials in Authorization header", "the token was refused (401)"),
        (402, "Payment required", "payment required (402): Jobs need a positive credit balance"),
        (400, "Invalid flavor 'a10g-large' for token " + TOKEN, "the Hub refused the request (400): Invalid flavor"),
    ],
)
def test_hub_refusals_are_one_line_without_the_token(hub, tmp_path, status, message, said):
    hub.failure = (status, message)
    with pytest.raises(UserError) as refused:
        hf_jobs.launch(tiny_job(), "a10g-large", TOKEN, code_repo="me/space", revision="main", bucket="me/b",
                       results_dir=tmp_path)  # fmt: skip
    text = str(refused.value)
    assert text.startswith("launching the job failed: ") and said in text
    assert TOKEN not in text and "\n" not in text
    assert not hf_jobs.record_path(tmp_path, "tiny-job").exists()


def test_offline_and_unreachable_hub_are_one_line(monkeypatch, tmp_path):
    args = {"code_repo": "me/space", "revision": "main", "bucket": "me/b"}
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match=r"^launching the job failed: the Hugging Face Hub is offline here"):
        hf_jobs.launch(tiny_job(), "t4-small", TOKEN, **args)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    unreachable = functools.partial(HfApi, endpoint="http://127.0.0.1:9")
    with pytest.raises(UserError, match=r"^reading job x failed: cannot reach the Hugging Face Hub") as failed:
        hf_jobs.job_state("x", TOKEN, namespace=NAMESPACE, api_factory=unreachable)
    assert TOKEN not in str(failed.value)


def test_cli_dry_run_prints_the_estimate_and_the_call_without_the_token(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    flags = ["--train-size", "100", "--eval-size", "50", "--run-name", "dry", "--results-dir", str(tmp_path)]
    assert main(["launch", "--backend", "hf-jobs", "--dry-run", "--flavor", "a10g-large", *flags]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("estimate for a10g-large (1x A10G, $1.50/h): ") and "about $" in out
    assert "HfApi().run_job(" in out and "secrets={'HF_TOKEN': '***'}" in out and "--train-size 100" in out
    assert "note: a launch needs --bucket or --publish-repo" in out
    assert TOKEN not in out + err
    assert not any(tmp_path.iterdir())  # nothing launched, nothing recorded


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--flavor", "a10g-huge", "--bucket", "me/b"], "unknown Jobs flavor 'a10g-huge'"),
        (["--flavor", "h100", "--bucket", "me/b"], "h100 is not a Jobs flavor"),
        ([], "give a bucket (--bucket: the run is written there as it goes) or a model repo"),
        (["--bucket", "not a bucket"], "the bucket must be a Hub bucket id"),
        (["--publish-repo", "nope"], "--repo must be a Hub repo id"),
        (["--bucket", "me/b", "--epochs", "0"], "epochs must be a positive number"),
    ],
)
def test_cli_refuses_bad_launches_in_one_line(flags, message, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["launch", "--backend", "hf-jobs", "--yes", "--results-dir", str(tmp_path), *flags]) == 2
    out, err = capsys.readouterr()
    err = err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1 and TOKEN not in out + err
    assert not any(tmp_path.iterdir())


def test_local_backend_is_the_run_command(capsys, results_dir):
    assert main(["launch", "--backend", "local", "--epochs", "0", "--flavor", "ignored"]) == 2
    assert capsys.readouterr().err.strip() == "error: epochs must be a positive number, not 0"
    assert not results_dir.exists()


def test_cli_needs_a_token_and_a_yes(monkeypatch, capsys, tmp_path):
    launch = ["launch", "--backend", "hf-jobs", "--bucket", "me/b", "--results-dir", str(tmp_path)]
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-token"))
    assert main([*launch, "--yes"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no Hugging Face token: set HF_TOKEN or log in")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no answer: no
    assert main(launch) == 1
    out, err = capsys.readouterr()
    assert out.rstrip().endswith("Launch? [y/N]") and err.strip() == "error: not launched"
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_launch_then_status_then_cancel(hub, tmp_path, capsys, monkeypatch):
    """`launch` in a process of its own, as a user runs it (huggingface_hub reads HF_ENDPOINT as it is imported);
    then `jobs status` and `jobs cancel` on what it recorded."""
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": TOKEN}
    command = [sys.executable, "-m", "distill", "launch", "--backend", "hf-jobs", "--yes", "--bucket", "me/b"]
    command += ["--code-repo", "me/space", "--revision", "main", "--run-name", "cli-run"]
    command += ["--results-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"launched run cli-run: job {JOB_ID}, {hub.url}/jobs/{NAMESPACE}/{JOB_ID}" in done.stdout
    assert "python -m distill jobs status cli-run" in done.stdout and "?run=cli-run" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    assert hub.runs()[0]["body"]["secrets"] == {"HF_TOKEN": TOKEN}

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.stage = ("RUNNING", None)
    status = ["jobs", "status", "cli-run", "--results-dir", str(tmp_path)]
    assert main(status) == 0
    assert capsys.readouterr().out.startswith("run cli-run: running (Jobs stage RUNNING)")
    assert main(["jobs", "cancel", "cli-run", "--results-dir", str(tmp_path)]) == 0
    assert f"cancelled job {JOB_ID}" in capsys.readouterr().out
    cancel = hub.requests[-1]
    assert (cancel["method"], cancel["path"]) == ("POST", f"/api/jobs/{NAMESPACE}/{JOB_ID}/cancel")
    assert main(status) == 0
    assert capsys.readouterr().out.startswith("run cli-run: interrupted (Jobs stage CANCELED)")
    assert not any(r["path"] == "/api/whoami-v2" for r in hub.requests[2:])  # the record names the namespace
    assert main(["jobs", "status", "other", "--results-dir", str(tmp_path)]) == 2
    assert "no launched run named 'other'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_jobs_command_runs_here_and_completes_the_run(tmp_path):
    """The exact command the backend sends, run in this checkout (so it skips the download): it installs the
    requirements (all present: pip needs no index) and runs the job into DISTILL_RESULTS_DIR."""
    spec = hf_jobs.job_spec(tiny_job(), "a10g-large", code_repo="me/space", revision="main", bucket="me/bucket")
    env = {**os.environ, **spec["env"], "DISTILL_RESULTS_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env["PIP_NO_INDEX"] = "1"  # offline: the install must be satisfied from what is installed
    env.pop("HF_TOKEN", None)
    done = subprocess.run(spec["command"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = Run(tmp_path / "tiny-job")
    assert run.status()["state"] == "completed"
    assert [r["model"] for r in run.summary()] == ["teacher", "top_k-seed0"]
    assert "run tiny-job: completed" in done.stdout


@pytest.mark.slow
def test_the_distill_tab_launches_lists_watches_and_cancels_a_jobs_run(hub, tmp_path, monkeypatch):
    """The app's side: Launch (after the cost is accepted) records the run; the run list and a ?run= watcher show
    it from Jobs' state until the job writes its folder to the bucket, then from the folder; Stop cancels it."""
    import gradio as gr
    from test_app import job_args

    import app
    from distill.job import run_job

    monkeypatch.setenv("DISTILL_RESULTS_DIR", str(tmp_path))
    monkeypatch.setattr(app, "roots", lambda: [str(tmp_path)])  # as if the app had started on this bucket
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hf_jobs, "_STATUS_CACHE", {})
    form = job_args(run_name="jobs-run", strategies=["top_k"])
    values = {**form, "flavor": "a10g-large", "bucket": "tester/runs", "publish_repo": "", "token": TOKEN}
    assert "estimate for a10g-large" in app.estimate_jobs({**values, "confirm": False})
    with pytest.raises(gr.Error, match="tick 'I accept the estimated cost' first"):
        app.launch_on_jobs({**values, "confirm": False})
    with pytest.raises(gr.Error, match="paste your Hugging Face token"):
        app.launch_on_jobs({**values, "token": "", "confirm": True})
    assert not hub.runs(), "nothing is launched before the cost is accepted"

    state = app.launch_on_jobs({**values, "confirm": True})
    assert state["run"] == "jobs-run" and state["state"] == "launched" and state["job_url"]
    sent = hub.runs()[-1]["body"]
    assert sent["flavor"] == "a10g-large" and sent["secrets"] == {"HF_TOKEN": TOKEN}
    assert TOKEN not in json.dumps(state) and TOKEN not in json.dumps(app.runs())
    assert all(TOKEN not in p.read_text() for p in tmp_path.rglob("*.json"))
    with pytest.raises(gr.Error, match="already exists"):
        app.launch_on_jobs({**values, "confirm": True})
    listed = {r["run"]: r for r in app.runs()}["jobs-run"]
    assert listed["state"] == "launched" and "Hugging Face Jobs (a10g-large)" in listed["message"]

    monkeypatch.setenv("HF_TOKEN", TOKEN)  # a duplicate's owner: the Space's token reads its own jobs
    hub.stage = ("RUNNING", None)
    watcher = app.watch_job("jobs-run")
    assert next(watcher)["state"] == "running"
    run_job(tiny_job(run_name="jobs-run", results_dir=str(tmp_path)))  # the job writes its run to the bucket
    final = list(watcher)[-1]
    assert final["state"] == "completed" and [m["model"] for m in final["models"]] == ["teacher", "top_k-seed0"]
    assert {r["run"]: r for r in app.runs()}["jobs-run"]["state"] == "completed"

    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(gr.Error, match="give the token that launched it"):
        app.stop_job("jobs-run")
    assert app.stop_job("jobs-run", TOKEN) == {"stopped": True, "cancelled_job": JOB_ID}
    assert hub.requests[-1]["path"] == f"/api/jobs/{NAMESPACE}/{JOB_ID}/cancel"
