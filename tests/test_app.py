"""The real app, driven through its public API with gradio_client, as a Python user would."""

import inspect
import json
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

import app
from app import FORM_START

LABELS = {"entailment", "neutral", "contradiction"}


def job_args(**changes):
    """/run_job's arguments by name: the form as it opens, made a tiny job on the embedded teacher and the
    shipped MNLI sample."""
    tiny = {"train_size": 64, "eval_size": 32, "strategies": ["top_k", "even"], "epochs": 1, "teacher_epochs": 1}
    values = {
        **FORM_START,
        **tiny,
        **{"teacher": "embedded", "data": "mnli-sample", "student_layers": 0, "batch_size": 32, "seeds": "0"},
        **{"learning_rate": 1e-4, "temperature": 2.0, "weight_ce": 1 / 3, "weight_kl": 1 / 3, "weight_cos": 1 / 3},
    }
    assert set(changes) <= set(values)
    values = {**values, **changes}
    order = [name for name in inspect.signature(app.run_job).parameters if name in values]
    return {name: values[name] for name in order}  # in /run_job's order: a bare HTTP call sends them as a list


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server[0], verbose=False)


@pytest.fixture(scope="module")
def finished_job(client):
    job = client.submit(**job_args(run_name="api-run", layer_list="0,2"), api_name="/run_job")
    updates = list(job)
    return updates


def test_run_job_streams_progress_to_completion(finished_job):
    final = finished_job[-1]
    assert len(finished_job) >= 3, "the job streams several updates"
    assert final["run"] == "api-run" and final["state"] == "completed"
    assert final["done"] == final["total"] == 8  # teacher + 3 students, 2 steps each (64 rows / 32)
    assert [m["model"] for m in final["models"]] == ["teacher", "top_k-seed0", "even-seed0", "layers-0-2-seed0"]
    assert all(0 <= m["accuracy"] <= 1 for m in final["models"])
    assert any("completed" in line for line in final["log"])
    assert all(isinstance(p["loss"], float) for p in final["curve"])
    json.dumps(final)  # plain data


def test_list_runs_and_comparison(client, finished_job):
    runs = client.predict(api_name="/list_runs")
    mine = next(r for r in runs if r["run"] == "api-run")
    assert mine["state"] == "completed" and mine["models"] == 4
    result = client.predict("api-run", api_name="/comparison")
    table = result["table"]
    assert [r["strategy"] for r in table] == ["teacher", "top_k", "even", "layers-0-2"]
    assert table[0]["accuracy_kept"] == 1.0
    assert {r["strategy"]: r["layers"] for r in table}["even"] == [1, 3, 5]
    students = [r for r in table if r["role"] == "student"]
    assert sum(bool(r.get("best")) for r in students) == 1
    assert all("diff_low" in r for r in students if not r.get("best"))
    curves = result["curves"]
    assert {c["curve"] for c in curves} >= {"train_loss", "train_ce", "train_kl", "train_cos", "val_accuracy"}


def test_ensemble_row_in_comparison(client, finished_job, app_server):
    table = client.predict("api-run", ["top_k", "even"], api_name="/comparison")["table"]
    row = table[-1]
    assert row["role"] == "ensemble" and row["strategy"] == "ensemble(top_k+even)"
    split = row["eval_split"]
    # Recompute from the saved files: the mean of the two students' probabilities, then argmax.
    folder = app_server[1] / "api-run"
    labels = np.asarray(json.loads((folder / "labels.json").read_text())[split])
    predictions = json.loads((folder / "predictions.json").read_text())
    probabilities = []
    for model in ("top_k-seed0", "even-seed0"):
        with np.load(folder / "probabilities" / f"{model}.npz") as saved:
            probabilities.append(saved[split].astype(np.float32))
        assert probabilities[-1].argmax(axis=1).tolist() == predictions[model][split]
    assert row["accuracy"] == pytest.approx(float((np.mean(probabilities, 0).argmax(1) == labels).mean()))
    by_strategy = {r["strategy"]: r for r in table}
    assert row["params"] == by_strategy["top_k"]["params"] + by_strategy["even"]["params"]
    # one seed: no compute-matched baseline (two seeds of the best strategy), so no verdict either
    assert row["p_value"] is None and "can't tell yet" in row["test"] and "can't tell yet" in row["other_test"]
    with pytest.raises(Exception, match="two or more of this run's strategies"):
        client.predict("api-run", ["top_k", "odd"], api_name="/comparison")


def test_chat_with_the_new_student(client, finished_job):
    models = client.predict(api_name="/models")
    assert "api-run/top_k-seed0" in models and "api-run/ensemble" in models
    reply = client.predict(
        "api-run/top_k-seed0", "A man is sleeping.", "A man sleeps in his bed.", 1.0, 128, False, api_name="/chat"
    )
    assert reply["label"] in LABELS
    assert sum(reply["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert reply["probability"] == max(reply["probabilities"].values())
    assert reply["used_context"] and not reply["truncated"]


def test_temperature_flattens_and_max_length_truncates(client, finished_job):
    args = ("api-run/even-seed0", "The cat sat on the mat.", "A cat is sitting on a mat in the sun today.")
    cold = client.predict(*args, 0.1, 128, False, api_name="/chat")
    hot = client.predict(*args, 10.0, 128, False, api_name="/chat")
    assert max(hot["probabilities"].values()) < max(cold["probabilities"].values())
    assert max(hot["probabilities"].values()) < 0.45
    short = client.predict(*args, 1.0, 8, False, api_name="/chat")
    assert short["truncated"] and short["tokens"] == 8
    alone = client.predict("api-run/even-seed0", "The cat sat on the mat.", "", 1.0, 128, False, api_name="/chat")
    assert not alone["used_context"]


def test_every_model_and_ensemble(client, finished_job):
    reply = client.predict(
        "api-run/ensemble", "It is raining.", "The streets are wet.", 1.0, 128, True, api_name="/chat"
    )
    assert reply["models"] == 3
    assert {a["model"] for a in reply["answers"]} >= {"api-run/teacher", "api-run/top_k-seed0", "api-run/ensemble"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("api-run/top_k-seed0", "   ", "", 1.0, 128, False), "type a query"),
        (("api-run/top_k-seed0", "\x00\x07\x1b\x7f", "", 1.0, 128, False), "no printable text"),
        (("api-run/top_k-seed0", "q", "", "hot", 128, False), "temperature"),
        (("api-run/top_k-seed0", "q", "", 1.0, 12.5, False), "max length"),
        (("api-run/top_k-seed0", "q", "x" * 100_000, 1.0, 128, False), "limit is 10,000"),
        (("api-run/top_k-seed0", "q", "", 0.0, 128, False), "temperature"),
        (("api-run/top_k-seed0", "q", "", 99.0, 128, False), "temperature"),
        (("api-run/top_k-seed0", "q", "", 1.0, 100_000, False), "max length"),
        (("api-run/no-such-model", "q", "", 1.0, 128, False), "unknown model"),
        (("../../etc/passwd", "q", "", 1.0, 128, False), "unknown model"),
        (("nope/teacher", "q", "", 1.0, 128, False), "no run named"),
    ],
)
def test_bad_chat_input_gets_a_clear_error(client, finished_job, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/chat")
    assert client.predict(api_name="/models"), "the app keeps serving"


def test_a_refusal_prints_no_traceback_to_the_server_log(client, capfd):
    """A refused request is the visitor's line, not a fault of the server: Gradio printed each one as a 20-line
    traceback, burying real errors (whose tracebacks `errors.user_message` logs, scrubbed)."""
    calls = {
        "/chat": ("nope/teacher", "q", "", 1.0, 128, False),
        "/comparison": ("nope", None),
        "/watch_job": ("nope",),  # a stream
    }
    for api_name, args in calls.items():
        with pytest.raises(Exception, match="no run named 'nope'"):
            client.predict(*args, api_name=api_name)
    log = capfd.readouterr().err
    assert "Traceback" not in log and "Refusal" not in log, log[-2000:]


@pytest.mark.parametrize("sent", [{"path": "/etc/passwd"}, "/etc/hostname"])
def test_a_server_path_sent_as_the_upload_is_refused(client, app_server, sent):
    before = sorted(p.name for p in app_server[1].iterdir())
    # Gradio refuses a file payload outside its upload folder (HTTP 400); app.uploaded_file would refuse it too
    with pytest.raises(Exception, match=r"400 Bad Request|data_file must be a file uploaded"):
        client.predict(**job_args(data="upload", data_file=sent, run_name="stolen"), api_name="/run_job")
    assert sorted(p.name for p in app_server[1].iterdir()) == before, "no run was started"


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"just some words\nnot a table at all", "notes.csv", "not a comma- or tab-separated table|lacks column"),
        (b"premise,hypothesis\na,b\n", "cols.csv", "lacks column"),
        (b"\xff\xfe\xfa", "bytes.csv", "UTF-8"),
        (b"premise,hypothesis,label\n", "empty.csv", "has no rows"),
        (b"premise,hypothesis,label\na,b,maybe\nc,d,0\n", "labels.csv", "unknown label"),
        (
            b"premise,hypothesis,label\n" + b"a,b,0\n" * 9_000_000,
            "big.csv",
            "larger than 50 MB|exceeds the maximum file size",
        ),
    ],
)
def test_bad_uploads_get_a_clear_error(client, tmp_path, content, name, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(Exception, match=message):
        client.predict(**job_args(data="upload", data_file=handle_file(str(path))), api_name="/run_job")


def test_stop_mid_job_keeps_finished_models_and_chat_keeps_answering(client, finished_job):
    job = client.submit(**job_args(run_name="stopped-run", train_size=320, epochs=3), api_name="/run_job")
    deadline = time.time() + 240
    while time.time() < deadline:
        updates = job.outputs()
        if updates and any(m["model"] == "top_k-seed0" for m in updates[-1]["models"]):
            break
        time.sleep(0.5)
    reply = client.predict("api-run/top_k-seed0", "A dog runs.", "An animal moves.", 1.0, 128, False, api_name="/chat")
    assert reply["label"] in LABELS and not job.done(), "chat answers while the job runs"
    assert client.predict(api_name="/stop_job") == {"stopped": True}
    while not job.done():
        time.sleep(0.5)
    final = job.outputs()[-1]
    assert final["state"] == "stopped" and final["done"] < final["total"]
    run = next(r for r in client.predict(api_name="/list_runs") if r["run"] == "stopped-run")
    assert run["state"] == "stopped" and run["models"] >= 2  # teacher and top_k were kept
    assert "stopped-run/top_k-seed0" in client.predict(api_name="/models")


def test_resume_a_stopped_run_through_the_api(client):
    kept = next(r for r in client.predict(api_name="/list_runs") if r["run"] == "stopped-run")["models"]
    updates = list(client.submit("stopped-run", api_name="/resume_job"))
    final = updates[-1]
    assert final["run"] == "stopped-run" and final["state"] == "completed"
    trained = [m["model"] for m in final["models"]]
    assert "top_k-seed0" not in trained and "teacher" not in trained, "finished models are not trained again"
    assert kept + len(trained) == 3
    run = next(r for r in client.predict(api_name="/list_runs") if r["run"] == "stopped-run")
    assert run["state"] == "completed" and run["models"] == 3
    with pytest.raises(Exception, match="is completed; only stopped, paused, interrupted, failed runs"):
        client.predict("stopped-run", api_name="/resume_job")
    committed = str(Path(__file__).resolve().parent.parent / "results" / "reference")
    for name in ("reference", committed):  # committed runs are read-only; paths are not run names
        with pytest.raises(Exception, match="no run named"):
            client.predict(name, api_name="/resume_job")
    with pytest.raises(Exception, match="no run named"):
        client.predict(committed, api_name="/comparison")


def test_second_submitter_sees_their_place_in_the_queue(client, app_server, finished_job):
    """The app's worker is the queue: a job sent while another runs is named and queued at once, its stream says
    how many jobs are ahead of it, and it can be watched before it starts."""
    first = client.submit(**job_args(run_name="queue-first", strategies=["top_k"]), api_name="/run_job")
    deadline = time.time() + 120
    while not (first.outputs() and first.outputs()[-1]["state"] == "running"):
        assert time.time() < deadline and not first.done()
        time.sleep(0.1)
    second = Client(app_server[0], verbose=False).submit(
        **job_args(run_name="queue-second", strategies=["top_k"]), api_name="/run_job"
    )
    while not second.outputs():
        assert time.time() < deadline + 60, "the second job is answered at once, not after the first"
        time.sleep(0.1)
    waiting = second.outputs()[0]
    assert waiting["run"] == "queue-second" and waiting["state"] == "queued" and waiting["queue_position"] == 1
    watched = Client(app_server[0], verbose=False).submit("queue-second", api_name="/watch_job")
    assert first.result()["state"] == "completed"
    assert second.result()["state"] == "completed"
    assert watched.result()["state"] == "completed" and "queue_position" not in watched.result()


def test_every_form_setting_arrives_under_its_own_name(client, app_server):
    """Each setting of the job form, sent by name with a value no other setting has, lands on its own JobConfig
    field in the run's config.json: two settings cannot trade places (say weight_kl and weight_cos)."""
    sent = {
        "teacher": "embedded",
        "data": "mnli-sample",
        "data_file": None,
        "train_size": 48,
        "eval_size": 24,
        "strategies": ["odd"],
        "layer_list": "0,5",
        "student_layers": 2,
        "epochs": 1,
        "teacher_epochs": 2,
        "batch_size": 16,
        "learning_rate": 0.00031,
        "temperature": 1.7,
        "weight_ce": 0.21,
        "weight_kl": 0.32,
        "weight_cos": 0.43,
        "weight_hidden": 0.05,
        "seeds": "7",
        "precision": "fp32",
        "teacher_8bit": True,
        "optimizer_8bit": False,
        "run_name": "named-settings",
        "search": False,
        "search_temperatures": "1.5 2.5",
        "search_learning_rates": "7e-5 9e-5",
        "search_loss_weights": "1:2:3 3:2:1",
    }
    final = list(client.submit(**sent, api_name="/run_job"))[-1]
    assert final["state"] == "completed"
    stored = json.loads((app_server[1] / "named-settings" / "config.json").read_text())
    expected = {
        **{k: v for k, v in sent.items() if k not in ("data_file", "layer_list")},
        "strategies": ["odd", "0,5"],  # the explicit list joins the named strategies
        "seeds": [7],
        "search_temperatures": [1.5, 2.5],
        "search_learning_rates": [7e-5, 9e-5],
        "search_loss_weights": ["1:2:3", "3:2:1"],
    }
    assert {name: stored[name] for name in expected} == expected
    numbers = [v for k, v in sent.items() if isinstance(v, float) or k in ("train_size", "eval_size", "batch_size")]
    assert len(numbers) == len(set(numbers)), "every number sent is distinct, so a swap would show"
