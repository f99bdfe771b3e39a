"""Reliability on a real Space: damaged run files, restarts on a new host, uploads that vanish, diverging models,
late errors. Library and command line; the app's side is in test_space.py."""

import csv
import gzip
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tiny import TINY, copy_run, cut

from distill import config, lease
from distill.cli import main
from distill.comparison import comparison
from distill.config import ConfigError, JobConfig
from distill.data import SAMPLE_DIR
from distill.errors import UserError, strip_paths, user_message
from distill.inference import chat, chat_models
from distill.job import resume_job, run_job
from distill.lease import RunBusy
from distill.plan import plan_job
from distill.results import DAMAGED, DamagedRun, Run, list_runs, open_run, temporary_path, to_json
from distill.tables import display_rows


def flip(path: Path) -> None:
    """Flip bytes in the middle of a file, as a bad disk or transfer would."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


DAMAGE = {
    "metrics cut short": (lambda run: cut(run.path / "metrics.jsonl"), "metrics.jsonl line"),
    "metrics not rows": (lambda run: (run.path / "metrics.jsonl").write_text("[1, 2]\n"), "metrics.jsonl line 1"),
    "summary cut short": (lambda run: cut(run.path / "summary.json"), "summary.json is not valid JSON"),
    "summary not a list": (lambda run: (run.path / "summary.json").write_text("{}"), "summary.json does not hold"),
    "summary row without model": (
        lambda run: (run.path / "summary.json").write_text('[{"role": "teacher"}]'),
        "summary.json row 1 names no model",
    ),
    "summary is a folder": (
        lambda run: ((run.path / "summary.json").unlink(), (run.path / "summary.json").mkdir()),
        "summary.json cannot be read",
    ),
    "config garbage": (lambda run: (run.path / "config.json").write_bytes(b"\x00\xff{"), "config.json cannot be read"),
    "config is a folder": (
        lambda run: ((run.path / "config.json").unlink(), (run.path / "config.json").mkdir()),
        "config.json cannot be read",
    ),
    "config deleted": (lambda run: (run.path / "config.json").unlink(), "config.json is missing"),
    "config empty": (lambda run: (run.path / "config.json").write_text("{}"), "config.json is empty"),
    "config not a mapping": (lambda run: (run.path / "config.json").write_text("[]"), "config.json does not hold"),
    "config unknown setting": (
        lambda run: (run.path / "config.json").write_text('{"teacher": "embedded", "warp_speed": 9}'),
        "unknown setting",
    ),
    "status unknown state": (
        lambda run: (run.path / "status.json").write_text('{"state": "exploded", "time": 1}'),
        "status.json does not hold a known state",
    ),
    "status empty": (lambda run: (run.path / "status.json").write_text(""), "status.json is not valid JSON"),
    "predictions cut short": (lambda run: cut(run.path / "predictions.json"), "predictions.json is not valid JSON"),
    "labels wrong shape": (lambda run: (run.path / "labels.json").write_text('{"validation": 3}'), "labels.json"),
    "probabilities garbage": (
        lambda run: (run.path / "probabilities" / "top_k-seed0.npz").write_bytes(b"PK\x03\x04 not a zip"),
        "probabilities/top_k-seed0.npz cannot be read",
    ),
    "probabilities bit-flipped": (lambda run: flip(run.path / "probabilities" / "even-seed0.npz"), "even-seed0.npz"),
    "status running without busy time": (
        lambda run: (run.path / "status.json").write_text('{"state": "running", "time": 1, "busy_seconds": null}'),
        "status.json field busy_seconds is not a number",
    ),
    "weights cut short": (
        lambda run: cut(run.model_dir("even-seed0") / "model.safetensors", 0.9),
        "models/even-seed0/model.safetensors cannot be read",
    ),
    "weights deleted": (
        lambda run: (run.model_dir("even-seed0") / "model.safetensors").unlink(),
        "models/even-seed0 has no weights file",
    ),
    "model config cut short": (
        lambda run: cut(run.model_dir("top_k-seed0") / "config.json"),
        "models/top_k-seed0/config.json is not valid JSON",
    ),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_run_is_listed_with_its_reason_and_the_others_keep_working(good_run, tmp_path, kind):
    damage, reason = DAMAGE[kind]
    root = tmp_path / "runs"
    copy_run(good_run, root, "fine")
    broken = copy_run(good_run, root, "broken")
    damage(broken)

    listed = {r["run"]: r for r in list_runs(root)}
    assert listed["broken"]["state"] == DAMAGED
    assert "run broken is damaged" in listed["broken"]["message"] and reason in listed["broken"]["message"]
    assert str(root) not in listed["broken"]["message"], "the reason names the file, not the server path"
    assert listed["broken"]["best_student"] is None
    assert listed["fine"]["state"] == "completed" and listed["fine"]["best_student"] in ("top_k-seed0", "even-seed0")

    models = chat_models(root)
    assert "fine/top_k-seed0" in models and not any(m.startswith("broken/") for m in models)
    answer = chat("fine/top_k-seed0", "A man sleeps.", "A man is in bed.", 1.0, 64, False, root)
    assert answer["label"] in ("entailment", "neutral", "contradiction")
    with pytest.raises(DamagedRun, match=reason.split()[0]):
        broken.check()
    with pytest.raises(UserError, match="damaged"):
        chat("broken/top_k-seed0", "A man sleeps.", "", 1.0, 64, False, root)


def test_a_results_folder_that_is_itself_a_run_is_listed_damaged_when_its_settings_are_gone(good_run, tmp_path):
    published = copy_run(good_run, tmp_path, "published")  # a run's tree given as the results folder
    assert [r["state"] for r in list_runs(published.path)] == ["completed"]
    (published.path / "config.json").unlink()
    listed = list_runs(published.path)
    assert [r["state"] for r in listed] == [DAMAGED] and "config.json is missing" in listed[0]["message"]
    assert list_runs(tmp_path / "no-such-folder") == []


def test_a_run_folder_no_name_can_open_is_listed_as_damaged_saying_why(good_run, tmp_path, capsys):
    """Listing and opening agree: a folder named with a space is listed as damaged with the way out, and its
    models are not offered."""
    root = tmp_path / "runs"
    copy_run(good_run, root, "fine")
    copy_run(good_run, root, "odd name")
    listed = {r["run"]: r for r in list_runs(root)}
    assert listed["odd name"]["state"] == DAMAGED and "has a name no command can open" in listed["odd name"]["message"]
    assert listed["fine"]["state"] == "completed"
    assert not any(m.startswith("odd name/") for m in chat_models(root)) and "fine/top_k-seed0" in chat_models(root)
    with pytest.raises(UserError, match="no run named 'odd name'"):
        open_run("odd name", root, allow_paths=False)


def test_a_results_folder_of_saved_models_lists_no_runs_and_a_model_path_is_refused_saying_so(good_run, tmp_path):
    """A run's models/ folder (each model has its own config.json) given as the results folder, or one model's
    folder given as a run, is not a run: nothing is listed as damaged, and the path is refused in one line."""
    run = copy_run(good_run, tmp_path / "runs", "fine")
    models = run.path / "models"
    assert sorted(p.name for p in models.iterdir()) and (models / "top_k-seed0" / "config.json").is_file()
    assert list_runs(models) == []
    assert list_runs(models / "top_k-seed0") == []
    assert chat_models(models) == []
    with pytest.raises(UserError, match=r"is not a run folder \(a saved model's folder\)"):
        open_run(str(models / "top_k-seed0"))
    with pytest.raises(UserError, match=r"is not a run folder \(no config.json, status.json or summary.json\)"):
        open_run(str(models))
    assert open_run(str(run.path)).name == "fine"


def test_leftovers_of_killed_writes_files_and_folders_are_removed_and_nothing_else(good_run, tmp_path):
    """What a writer killed mid-write leaves (a half file, a half-saved model folder, a plot, a lease) goes when
    the next writer takes the run; a write still in flight (newer) and every result stay."""
    run = copy_run(good_run, tmp_path / "runs", "fine")
    before = sorted(p.relative_to(run.path) for p in run.path.rglob("*"))
    left = [
        temporary_path(run.path / "summary.json"),
        temporary_path(run.model_dir("top_k-seed0")),  # save_pretrained's folder, with files in it
        temporary_path(run.path / "plots" / "accuracy.png"),
        temporary_path(run.path / "heartbeat.json", "a1b2c3"),
        run.path / ".metrics.jsonl.k3j4x9.tmp",  # atomic_write's unique name
    ]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    left[1].unlink()
    left[1].mkdir()
    (left[1] / "model.safetensors").write_bytes(b"half")
    (left[1] / "tokenizer").mkdir()
    os.utime(left[1], (1, 1))  # the folder's own time, not its newer contents', says how old the write is
    taken = time.time() + 1
    in_flight = temporary_path(run.path / "progress.json")
    in_flight.write_text("{")
    os.utime(in_flight, (taken + 5, taken + 5))

    run.remove_leftover_temporaries(older_than=taken)
    assert not any(path.exists() for path in left)
    assert in_flight.exists(), "a write newer than the lease is no leftover"
    in_flight.unlink()
    after = sorted(p.relative_to(run.path) for p in run.path.rglob("*"))
    assert [p for p in after if p != Path("plots")] == before, "every result stays (the test made plots/)"
    assert list_runs(run.path.parent)[0]["state"] == "completed"


@pytest.mark.parametrize("kind", ["config deleted", "config is a folder"])
def test_a_run_whose_settings_are_gone_opens_by_path_and_reads_as_damaged_not_as_no_run(good_run, tmp_path, kind):
    """Opening by path and listing agree on what a run folder is: a run whose config.json is gone or became a
    folder is a damaged run, named so, not "not a run folder"."""
    damage, reason = DAMAGE[kind]
    broken = copy_run(good_run, tmp_path / "runs", "broken")
    damage(broken)
    with pytest.raises(DamagedRun, match=reason):
        open_run(str(broken.path)).check()
    assert main(["report", str(broken.path), "--no-plots"]) == 2


@pytest.mark.parametrize("kind", ["metrics cut short", "summary cut short", "predictions cut short", "config garbage"])
def test_reading_a_damaged_run_fails_with_one_line_naming_the_file(good_run, tmp_path, kind, capsys):
    damage, reason = DAMAGE[kind]
    root = tmp_path / "runs"
    copy_run(good_run, root, "fine")
    damage(copy_run(good_run, root, "broken"))
    with pytest.raises(DamagedRun, match=reason.split()[0]):
        run = open_run("broken", root)
        comparison(run)
        run.metrics  # noqa: B018

    assert main(["list", "--results-dir", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("broken") and DAMAGED in line and reason.split()[0] in line for line in lines)
    assert any(line.startswith("fine") and "completed" in line for line in lines)

    assert main(["report", "broken", "--results-dir", str(root), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: run broken is damaged")
    assert main(["resume", "broken", "--results-dir", str(root), "--quiet"]) == 2
    assert "damaged" in capsys.readouterr().err


def test_an_old_summary_with_bare_nan_reads_as_a_failed_model(good_run, tmp_path):
    run = copy_run(good_run, tmp_path, "old")
    rows = json.loads((run.path / "summary.json").read_text())
    rows[1]["accuracy"] = float("nan")
    (run.path / "summary.json").write_text(json.dumps(rows))  # Python writes a bare NaN
    table = comparison(run)
    failed = next(r for r in table if r["strategy"] == rows[1]["strategy"])
    assert failed["failed"] and failed["accuracy"] is None and not failed.get("best")
    assert list_runs(tmp_path)[0]["best_student"] == rows[2]["model"]


# ---------------------------------------------------------------- restarts: liveness by heartbeat


def pretend_running(run: Run, host: str, pid: int, last_seen: float) -> None:
    status = json.loads((run.path / "status.json").read_text())
    status.update(state="running", host=host, pid=pid, time=last_seen - 5, busy_seconds=100.0)
    (run.path / "status.json").write_text(json.dumps(status))
    (run.path / "heartbeat.json").write_text(json.dumps({"time": last_seen}))


def test_a_run_whose_container_restarted_reads_interrupted_and_resumes(good_run, tmp_path):
    run = copy_run(good_run, tmp_path, "restarted")
    summary = json.loads((run.path / "summary.json").read_text())
    (run.path / "summary.json").write_text(json.dumps(summary[:2]))  # even-seed0 was not finished
    # pid 1 is alive on this machine, but the run belongs to a container that is gone (another host name)
    pretend_running(run, host="old-container-7f3a", pid=1, last_seen=time.time() - 600)
    status = run.status()
    assert status["state"] == "interrupted" and "restarted" in status["message"]
    assert run.busy_seconds() == pytest.approx(105.0), "busy time counts up to the last heartbeat"
    resumed = resume_job(run)
    assert resumed.status()["state"] == "completed"
    assert [r["model"] for r in resumed.summary()] == ["teacher", "top_k-seed0", "even-seed0"]
    assert resumed.status()["busy_seconds"] >= 105.0


def test_a_run_alive_on_another_host_reads_running_and_is_not_resumed(good_run, tmp_path):
    run = copy_run(good_run, tmp_path, "elsewhere")
    pretend_running(run, host="another-container", pid=999_999, last_seen=time.time() - 2)
    assert run.status()["state"] == "running"
    with pytest.raises(RunBusy, match="is being trained"):
        resume_job(run)


def test_a_dead_process_on_this_host_reads_interrupted_at_once(good_run, tmp_path):
    run = copy_run(good_run, tmp_path, "dead")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pretend_running(run, host=socket.gethostname(), pid=int(dead.stdout), last_seen=time.time())
    assert run.status()["state"] == "interrupted"


@pytest.mark.slow
def test_the_heartbeat_keeps_a_busy_job_alive_seen_from_another_host(tiny_bert, tmp_path, monkeypatch):
    monkeypatch.setattr(lease, "BEAT_SECONDS", 0.1)
    monkeypatch.setattr(lease, "STALE_SECONDS", 1.0)
    seen = []

    def slow_step(event):  # the job's own thread is busy for 2.5 s, longer than STALE_SECONDS
        if event.kind == "model" and event.stage == "top_k-seed0":
            run = open_run("beating", tmp_path)
            time.sleep(2.5)
            with monkeypatch.context() as m:
                m.setattr(lease.socket, "gethostname", lambda: "a-new-container")
                seen.append(run.status()["state"])

    cfg = JobConfig.from_dict({**TINY, "teacher": str(tiny_bert), "strategies": ["top_k"], "run_name": "beating"})
    run = run_job(cfg.replace(results_dir=str(tmp_path)), slow_step)
    assert seen == ["running"]
    assert run.status()["state"] == "completed"
    assert not (run.path / "heartbeat.json").exists(), "the job gives its lease back as it ends"


# ---------------------------------------------------------------- uploads are kept with the run


@pytest.mark.slow
def test_a_run_on_an_upload_resumes_after_the_upload_is_gone(tiny_bert, tmp_path):
    upload = tmp_path / "upload" / "my data.csv"
    upload.parent.mkdir()
    with gzip.open(SAMPLE_DIR / "train.jsonl.gz", "rt") as f, upload.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["premise", "hypothesis", "label"])
        for line, _ in zip(f, range(120), strict=False):
            row = json.loads(line)
            writer.writerow([row["premise"], row["hypothesis"], row["label"]])
    stop = threading.Event()

    def stop_after_first(event):
        if event.kind == "model" and event.stage == "top_k-seed0":
            stop.set()

    cfg = JobConfig.from_dict(
        {**TINY, "teacher": str(tiny_bert), "data": str(upload), "strategies": ["top_k", "even"], "run_name": "up"}
    )
    run = run_job(cfg.replace(results_dir=str(tmp_path / "runs")), stop_after_first, stop)
    assert run.status()["state"] == "stopped"
    stored = json.loads((run.path / "config.json").read_text())
    assert stored["data"] == "data/train/my data.csv", "the run names its own copy, relative to its folder"
    assert (run.path / stored["data"]).read_bytes() == upload.read_bytes()
    shutil.rmtree(upload.parent)  # a Space restart empties the upload folder
    resumed = resume_job(Run(run.path))
    assert resumed.status()["state"] == "completed"
    assert [r["model"] for r in resumed.summary()] == ["teacher", "top_k-seed0", "even-seed0"]


# ---------------------------------------------------------------- divergence: failed models, never results


@pytest.fixture
def absurd_learning_rates(monkeypatch):
    """Learning rates past the settings' bounds, so that a model surely diverges."""
    for name in ("learning_rate", "teacher_learning_rate", "search_learning_rates"):
        monkeypatch.setitem(config.UPPER_BOUNDS, name, math.inf)


@pytest.mark.slow
def test_diverging_students_are_failed_and_the_run_keeps_its_other_models(tiny_bert, tmp_path, absurd_learning_rates):
    cfg = JobConfig.from_dict(
        {
            **TINY,
            "teacher": str(tiny_bert),
            "strategies": ["top_k"],
            "search": True,
            "search_temperatures": [2.0],
            "search_learning_rates": [1e-4, 1e9],
            "search_loss_weights": ["1:1:1"],
            "seeds": [0, 1],
            "run_name": "diverging",
            "results_dir": str(tmp_path),
        }
    )
    events = []
    run = run_job(cfg, events.append)
    status = run.status()
    assert status["state"] == "completed" and "2 model(s) failed" in status["message"]
    rows = {r["model"]: r for r in run.summary()}
    bad = [name for name in rows if "lr1e+09" in name]
    assert len(bad) == 2 and all(
        "diverged" in rows[n]["failed"] and "lower learning rate" in rows[n]["failed"] for n in bad
    )
    assert all(rows[n]["accuracy"] is None and rows[n]["splits"] == {} for n in bad)  # a failed row has no metrics
    for path in run.path.rglob("*.json*"):
        text = path.read_text()
        assert "NaN" not in text and "Infinity" not in text, f"{path.name} holds a bare NaN"
    table = comparison(run)
    best = next(r for r in table if r.get("best"))
    assert "lr0.0001" in best["strategy"]
    failed_row = next(r for r in table if r.get("failed"))
    assert failed_row["accuracy"] is None and failed_row["failed_seeds"] == 2 and "p_value" not in failed_row
    shown = next(d for d in display_rows(table) if "lr1e+09" in d["setting"])
    assert shown["seeds"] == "0 (+2 failed)" and shown["vs best student (95% range)"].startswith("failed: ")
    listed = list_runs(tmp_path)[0]
    assert listed["best_student"] is not None and "lr1e+09" not in listed["best_student"]
    assert listed["failed_models"] == 2
    assert not any("lr1e+09" in m for m in chat_models(tmp_path))
    assert [e.message for e in events if e.kind == "model" and "failed" in e.message]
    assert events[-1].done == events[-1].total == 8, "the progress bar still reaches its end"


def test_a_diverging_teacher_fails_the_run_with_a_clear_message(tiny_bert, tmp_path, absurd_learning_rates):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    plain = tmp_path / "two-label-teacher"  # not an MNLI classifier: it is fine-tuned first, and diverges
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2, ignore_mismatched_sizes=True)
    model.config.id2label, model.config.label2id = {0: "a", 1: "b"}, {"a": 0, "b": 1}
    model.save_pretrained(plain)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(plain)
    cfg = JobConfig.from_dict(
        {
            **TINY,
            "teacher": str(plain),
            "teacher_learning_rate": 1e12,
            "strategies": ["top_k"],
            "results_dir": str(tmp_path),
        }
    )
    with pytest.raises(UserError, match="teacher diverged"):
        run_job(cfg.replace(run_name="bad-teacher"))
    status = open_run("bad-teacher", tmp_path).status()
    assert status["state"] == "failed" and "teacher diverged" in status["message"]


def test_json_is_strict():
    assert json.loads(to_json({"a": float("nan"), "b": [float("inf"), 1.5]})) == {"a": None, "b": [None, 1.5]}


# ---------------------------------------------------------------- errors: early, one line, nothing of the server


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seeds": [-1]}, "seeds must be whole numbers from 0"),
        ({"seeds": [2**32]}, "seeds must be whole numbers from 0"),
        ({"data_seed": -3}, "data_seed must be whole numbers from 0"),
    ],
)
def test_out_of_range_seeds_are_refused_before_any_work(changes, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as refused:
        JobConfig.from_dict({**TINY, **changes, "results_dir": str(tmp_path)})
    assert refused.value.setting in ("seeds", "data_seed")
    assert not list(tmp_path.iterdir()), "no run folder is started"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data": "no/such/file.csv"}, "data file not found: file.csv"),
        ({"strategies": ["0,99"]}, "out of range"),
        ({"student_layers": 12}, "fewer layers"),
        ({"teacher": "bert-base-uncased"}, "offline"),
        ({"data": "glue"}, "offline"),
    ],
)
def test_planning_refuses_what_would_fail_later(changes, message, tmp_path):
    with pytest.raises(UserError, match=message):
        plan_job(JobConfig.from_dict({**TINY, **changes, "results_dir": str(tmp_path)}))


def test_user_messages_hold_no_exception_type_path_or_token(monkeypatch):
    token = "hf_" + "Z" * 30
    monkeypatch.setenv("HF_TOKEN", token)
    samples = [
        KeyError("summary"),
        RuntimeError(f"failed to open /data/runs/x/models/a/model.safetensors with {token}"),
        FileNotFoundError(2, "No such file or directory", "/home/user/app/runs/x"),
        ValueError(""),
    ]
    for err in samples:
        text = user_message(err)
        assert "Error" not in text.split(":")[0] and "KeyError" not in text and "RuntimeError" not in text
        assert "/data/runs" not in text and "/home/user" not in text and token not in text
        assert "\n" not in text
    assert strip_paths("see https://huggingface.co/a/b and /tmp/x/y.csv") == "see https://huggingface.co/a/b and y.csv"


def test_the_job_log_names_no_server_folder(good_run, tmp_path, tiny_bert):
    events = []
    cfg = JobConfig.from_dict(
        {**TINY, "teacher": str(tiny_bert), "strategies": ["top_k"], "results_dir": str(tmp_path)}
    )
    run_job(cfg, events.append)
    assert not [e.message for e in events if str(tmp_path) in e.message]
    assert os.fspath(tmp_path) not in json.dumps(list_runs(tmp_path))


def test_the_time_limit_counts_the_busy_time_of_every_earlier_start(good_run, tmp_path):
    from distill.service import JobRunner

    run = copy_run(good_run, tmp_path, "nearly-spent")
    summary = json.loads((run.path / "summary.json").read_text())
    (run.path / "summary.json").write_text(json.dumps(summary[:2]))  # even-seed0 is still to do
    status = json.loads((run.path / "status.json").read_text())
    (run.path / "status.json").write_text(json.dumps({**status, "state": "stopped", "busy_seconds": 999.9}))
    states = list(JobRunner().stream(run.job_config(), poll_seconds=0.1, time_limit=1000, resume=str(run.path)))
    assert states[-1]["state"] == "stopped" and "limit of" in states[-1]["log"][-1]
    assert [r["model"] for r in Run(run.path).summary()] == ["teacher", "top_k-seed0"], "it stopped at once"


# ---------------------------------------------------------------- the closing timing keeps the job's time


def closing_timing_under(monkeypatch, change) -> dict:
    """Run a tiny job whose runtime `change` alters as its closing timing starts; returns that timing's seconds,
    and the run."""
    from distill import job as job_module

    timing = job_module.time_side_by_side
    took = {}

    def timed(job, run, runtime, rounds=3):
        took["before"] = [(r["model"], r["latency_b32_ms"]) for r in run.summary()]
        change(runtime)
        start = time.monotonic()
        try:
            return timing(job, run, runtime, rounds)
        finally:
            took["seconds"] = time.monotonic() - start

    monkeypatch.setattr(job_module, "time_side_by_side", timed)
    return took


def test_a_deadline_passed_before_the_closing_timing_ends_the_job_at_once(tiny_bert, tmp_path, monkeypatch):
    from distill.job import LATENCY_NOT_TIMED

    def expire(runtime):
        runtime.deadline = time.monotonic() - 0.01

    took = closing_timing_under(monkeypatch, expire)
    cfg = JobConfig.from_dict({**TINY, "teacher": str(tiny_bert), "strategies": ["top_k"], "latency_examples": 512})
    events = []
    run = run_job(cfg.replace(results_dir=str(tmp_path)), events.append, deadline=time.monotonic() + 600)
    assert took["seconds"] < 0.5, "no model was loaded or timed once the deadline had passed"
    status = run.status()
    assert status["state"] == "completed" and LATENCY_NOT_TIMED in status["message"]
    assert any(LATENCY_NOT_TIMED in e.message for e in events)
    kept = [(r["model"], r["latency_b32_ms"]) for r in run.summary()]
    assert kept == took["before"], "each model keeps the latency timed as it was saved; none is made up"


class StopAfter:
    """A stop signal that says stop from its `calls`-th question on."""

    def __init__(self, calls: int):
        self.calls = calls

    def is_set(self) -> bool:
        self.calls -= 1
        return self.calls < 0


def test_a_stop_cuts_the_closing_timing_between_two_forward_passes(tiny_bert, tmp_path, monkeypatch):
    from distill.evaluation import TimingCut, latency_ms

    passes = []

    def count(runtime):
        runtime.stop = StopAfter(20)  # the first round times 2 architectures of 8 + 1 + 8 + 1 passes each

    took = closing_timing_under(monkeypatch, count)
    cfg = JobConfig.from_dict({**TINY, "teacher": str(tiny_bert), "strategies": ["top_k"]})
    run = run_job(cfg.replace(results_dir=str(tmp_path)))
    status = run.status()
    assert status["state"] == "completed" and "not timed side by side" in status["message"]
    assert [(r["model"], r["latency_b32_ms"]) for r in run.summary()] == took["before"]

    from transformers import AutoModelForSequenceClassification

    from distill.data import Encoded

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    data = Encoded([[101, 2023, 102]] * 8, None, np.zeros(8, dtype=int))
    with pytest.raises(TimingCut):
        latency_ms(model, data, 0, "fp32", 8, lambda: passes.append(1) or len(passes) > 3)
    assert len(passes) == 4, "asked before each pass, cut at the first yes"


@pytest.mark.parametrize(
    "err",
    [
        TypeError("expected str, bytes or os.PathLike object, not NoneType"),
        AttributeError("'NoneType' object has no attribute 'partition'"),
        KeyError("summary"),
    ],
)
def test_an_unexpected_error_says_so_without_its_python_text_and_is_logged(err, caplog):
    from distill.errors import UNEXPECTED

    try:
        raise err
    except Exception as raised:
        text = user_message(raised)
    assert text == UNEXPECTED
    assert str(err) in caplog.text and type(err).__name__ in caplog.text, "the server's log has the real error"


def test_a_file_error_is_one_line_for_the_user_and_its_traceback_is_logged(caplog, monkeypatch):
    """A full disk or a refused write is the server's fault: the user reads its cause, and the log keeps where it
    happened (the app no longer prints refusals' tracebacks, so nothing else would)."""
    token = "hf_" + "Q" * 30
    monkeypatch.setenv("HF_TOKEN", token)
    try:
        raise OSError(28, "No space left on device", f"/data/runs/x/{token}/summary.json")
    except OSError as raised:
        text = user_message(raised)
    assert text == "cannot read or write a file: No space left on device"
    assert "file error" in caplog.text and "Traceback" in caplog.text and "No space left" in caplog.text
    assert token not in caplog.text, "the log keeps tokens out"
    caplog.clear()
    user_message(UserError("no run named 'x'"))
    assert not caplog.text, "a refusal is the user's, not the server's fault: nothing logged"
