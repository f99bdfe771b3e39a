"""Damage by value, not by shape: every field of every file of a real finished run is given a wrong type, a
wrong length, NaN, a negative number, a time in the far future, null, or is left out, and every reader (list,
comparison, report, publish, chat, resume) answers in one line: the run is damaged, naming the file and the
field, or (for the few harmless changes listed in HARMLESS) it works as before. Never a traceback, a Python
error text or a damaged run listed as completed. And no API answer holds a bare NaN."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from distill import inference, space
from distill.cli import main
from distill.comparison import comparison
from distill.errors import UserError
from distill.inference import chat
from distill.plots import write_plots
from distill.results import DAMAGED, RESUMABLE, Run, list_runs, open_run, write_json

GONE = object()  # a field left out
FUTURE = time.time() + 1e8  # three years on
JSON_FILES = ("config.json", "status.json", "heartbeat.json", "owner.json", "progress.json", "summary.json")
JSON_FILES += ("labels.json", "predictions.json")
# Changes that leave the run usable: `file`, the field's path (keys and row numbers joined by '.'), the change.
HARMLESS = {
    ("environment.json", "*", "*"),  # read by no reader
    # config.json, as a JobConfig: a setting left out is its default (or the behaviour before it existed), some
    # may be null, text becomes a list of one, list items become text, and the search settings are only
    # checked in a search
    ("config.json", "*", "missing"),
    *(("config.json", k, "null") for k in ("run_name", "student_layers", "dropout", "teacher_dropout")),
    *(("config.json", k, "null") for k in ("train_size", "student_train_size", "eval_size")),
    *(("config.json", "strategies", c) for c in ("wrong type", "shorter", "item wrong type", "item negative")),
    ("config.json", "eval_data", "wrong type"),
    *(
        ("config.json", k, c)
        for k in ("search_temperatures", "search_learning_rates")
        for c in ("shorter", "item negative")
    ),
    *(("config.json", "search_loss_weights", c) for c in ("wrong type", "shorter", "item wrong type", "item negative")),
    *(("config.json", k, "far future") for k in ("weight_decay", "max_grad_norm")),  # large, but no bound
    # status.json: only its state and time are required
    *(("status.json", k, "missing") for k in ("message", "pid", "host", "started", "busy_seconds")),
    ("status.json", "busy_seconds", "far future"),  # a long time
    # heartbeat.json: a completed run's leftover lease; one that does not parse is no lease (lease.read_lease)
    ("heartbeat.json", "<file>", "*"),
    *(("heartbeat.json", k, "*") for k in ("by", "token")),
    *(("heartbeat.json", k, "missing") for k in ("host", "pid", "since")),
    ("owner.json", "<file>", "missing"),  # a run no visitor started (a local one)
    # progress.json: a watcher's view; what it lacks is rebuilt from the status and summary
    ("progress.json", "<file>", "missing"),
    *(("progress.json", k, "missing") for k in ("run", "state", "stage", "done", "total", "log", "curve", "models")),
    *(("progress.json", k, c) for k in ("run", "stage", "curve.*.stage", "curve.*.loss") for c in ("null", "missing")),
    *(("progress.json", k, "shorter") for k in ("log", "curve", "models")),
    *(("progress.json", "curve.*.loss", c) for c in ("negative", "far future")),
    ("progress.json", "models.*", "*"),  # rebuilt from the summary
    # summary.json: optional fields, nulls where a value may be unknown, an accuracy that is no number (an old
    # file's bare NaN: that model reads as failed), big numbers, the other split's metrics
    *(("summary.json", f"[0-9].{k}", "missing") for k in ("train_loss", "train_seconds", "temperature", "teacher")),
    *(("summary.json", f"[0-9].{k}", "missing") for k in ("learning_rate", "weight_ce", "weight_kl", "weight_cos")),
    *(("summary.json", f"[0-9].{k}", "null") for k in ("seed", "loss", "eval_rows", "train_loss", "train_seconds")),
    *(("summary.json", "[0-9].accuracy", c) for c in ("missing", "null", "NaN")),
    *(("summary.json", f"[0-9].{k}", "far future") for k in ("loss", "train_loss", "train_seconds", "size_mb")),
    *(("summary.json", f"[0-9].{k}", "far future") for k in ("latency_b1_ms", "latency_b32_ms", "temperature")),
    *(("summary.json", f"[0-9].{k}", "far future") for k in ("learning_rate", "weight_ce", "weight_kl", "weight_cos")),
    ("summary.json", "[0-9].layers", "shorter"),
    ("summary.json", "*.splits.*.loss", "far future"),
    *(("summary.json", f"*.splits.*.{k}", c) for k in ("loss", "macro_f1", "accuracy_*") for c in ("null", "missing")),
    ("summary.json", "[0-9].splits.validation_mismatched", "missing"),
    ("labels.json", "validation_mismatched", "missing"),  # the other split: its tests are left out
    # metrics.jsonl: the curves' points; a metric may be null (it was not a finite number) or left out
    ("metrics.jsonl", "<file>", "missing"),
    *(("metrics.jsonl", f"*.{k}", c) for k in ("role", "layers") for c in ("missing",)),
    ("metrics.jsonl", "*.layers", "shorter"),
    ("metrics.jsonl", "*.seed", "null"),
    *(("metrics.jsonl", f"*.{k}", c) for k in ("train_*", "validation_*") for c in ("null", "missing")),
    *(("metrics.jsonl", f"*.{k}", "far future") for k in ("train_*", "validation_*_loss")),
}
# A run without a status file is one whose job died before writing it: failed, and resumable.
FAILED = {("status.json", "<file>", "missing")}
# One without its config.json (its other files still there) is damaged: listed, saying so, not passed over as no
# run, though a run written before a setting existed reads without it (HARMLESS).
SETTINGS_GONE = {("config.json", "<file>", "missing")}


def expected(file: str, path: str, change: str) -> str:
    """The state a run should list with after the change: damaged, unless the change is harmless or FAILED."""

    def among(cases: set[tuple[str, str, str]]) -> bool:
        return any(fnmatchcase(file, f) and fnmatchcase(path, p) and fnmatchcase(change, c) for f, p, c in cases)

    return (
        "failed" if among(FAILED) else DAMAGED if among(SETTINGS_GONE) else "completed" if among(HARMLESS) else DAMAGED
    )


def changes(value: Any) -> Iterator[tuple[str, Any]]:
    """The changes tried on one value: each a name and the new value (GONE: left out)."""
    yield "missing", GONE
    if value is not None:
        yield "null", None
    yield "wrong type", 7 if isinstance(value, str) else "x"
    if isinstance(value, int | float) and not isinstance(value, bool):
        yield from (("NaN", math.nan), ("negative", -1), ("far future", FUTURE))
    if isinstance(value, dict) and value:
        yield "empty", {}
    if isinstance(value, list) and value:
        yield "shorter", value[:-1]
        if not isinstance(value[0], dict | list):
            yield "item wrong type", [7 if isinstance(value[0], str) else "x", *value[1:]]
            yield from (("item NaN", [math.nan, *value[1:]]), ("item negative", [-1, *value[1:]]))


def fields(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every field of a JSON value, as a path of keys and row numbers: every key of an object, the first two
    rows of a list of objects (the others have their shape)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from fields(item, (*path, key))
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for i, item in enumerate(value[:2]):
            yield from fields(item, (*path, i))


def replaced(value: Any, path: tuple, new: Any) -> Any:
    """A copy of `value` with the field at `path` set to `new` (or left out)."""
    value = json.loads(json.dumps(value))
    *parents, last = path
    target = value
    for key in parents:
        target = target[key]
    if new is GONE:
        del target[last]
    else:
        target[last] = new
    return value


def write(path: Path, text: str | bytes) -> None:
    path.unlink(missing_ok=True)  # the copy's files are hard links to the original's
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def mutations(base: Run) -> Iterator[tuple[str, str, str, Callable[[Path], None]]]:
    """(file, field path, change, how to apply it to a run folder) for every field of every file."""
    for name in JSON_FILES:
        original = json.loads((base.path / name).read_text())
        yield from whole_file(name)
        for path in fields(original):
            for change, new in changes(field_at(original, path)):
                text = json.dumps(replaced(original, path, new))  # json.dumps writes a bare NaN, as old files did
                yield name, ".".join(map(str, path)), change, lambda folder, n=name, t=text: write(folder / n, t)
    yield from whole_file("environment.json")  # read by no reader
    lines = [json.loads(line) for line in (base.path / "metrics.jsonl").read_text().splitlines()]
    yield from whole_file("metrics.jsonl")
    for number in (1,):  # a trained model's row (its epoch-0 row has fewer fields)
        for path in fields(lines[number]):
            for change, new in changes(field_at(lines[number], path)):
                rows = [*lines[:number], replaced(lines[number], path, new), *lines[number + 1 :]]
                text = "".join(json.dumps(r) + "\n" for r in rows)
                where = ".".join(map(str, (number, *path)))
                yield "metrics.jsonl", where, change, lambda folder, t=text: write(folder / "metrics.jsonl", t)
    for model in ("teacher", "top_k-seed0"):
        name = f"probabilities/{model}.npz"
        with np.load(base.path / name) as saved:
            arrays = {split: saved[split] for split in saved.files}
        for split, array in arrays.items():
            for change, new in {
                "shorter": array[:-1],
                "item NaN": np.where(np.arange(array.size).reshape(array.shape) == 0, np.nan, array),
                "item negative": -array,
                "wrong type": array.astype(str),
                "wrong length": array[:, :2],
            }.items():
                yield name, split, change, lambda folder, n=name, a={**arrays, split: new}: save_npz(folder / n, a)
            rest = {k: v for k, v in arrays.items() if k != split}
            yield name, split, "missing", lambda folder, n=name, a=rest: save_npz(folder / n, a)
        yield name, "<file>", "missing", lambda folder, n=name: (folder / n).unlink()


def whole_file(name: str) -> Iterator[tuple[str, str, str, Callable[[Path], None]]]:
    for change, text in (("null", "null"), ("wrong type", '"x"'), ("NaN", "NaN"), ("empty", "[]")):
        yield name, "<file>", change, lambda folder, t=text: write(folder / name, t)
    yield name, "<file>", "missing", lambda folder: (folder / name).unlink()


def field_at(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def save_npz(path: Path, arrays: dict) -> None:
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        np.savez(f, **arrays)


@pytest.fixture(scope="module")
def base(good_run, tmp_path_factory) -> Run:
    """The finished run with its plots, an owner and a lease left from its job (every file a run can have)."""
    run = Run(tmp_path_factory.mktemp("values") / "base")
    shutil.copytree(good_run.path, run.path)
    write_plots(run)
    run.set_owner("visitor")
    then = run.status()["time"]
    write_json(run.path / "heartbeat.json", {"by": "pytest", "host": "gone", "pid": 1, "since": then, "time": then})
    return run


def answers(run: Run, tmp: Path, capsys) -> dict[str, tuple]:
    """What each reader answers about `run` (alone in its results folder): ('ok', value) or ('error', line)."""

    def attempt(read: Callable[[], Any]) -> tuple:
        try:
            return ("ok", read())
        except UserError as err:
            return ("error", str(err))

    def cli(*argv: str) -> tuple:
        code = main([*argv, run.name, "--results-dir", str(run.path.parent)])
        out, err = capsys.readouterr()
        return ("ok", out) if code == 0 else ("error", err.removeprefix("error: ").removesuffix("\n"), code, err)

    listed = next((r for r in list_runs(run.path.parent) if r["run"] == run.name), {"state": "absent"})
    return {
        "list": ("error", listed["message"]) if listed["state"] == DAMAGED else ("ok", listed),
        "comparison": attempt(lambda: comparison(open_run(run.name, run.path.parent))),
        "report": cli("report", "--json", "--no-plots"),
        "publish": cli("publish", "--repo", "someone/students", "--dry-run", str(tmp / "tree")),
        "chat": attempt(lambda: chat(f"{run.name}/top_k-seed0", "A man sleeps.", "", 1.0, 64, False, run.path.parent)),
        "resume": attempt(lambda: space.check_resume(open_run(run.name, run.path.parent), None)),
    }


def problems(file: str, path: str, change: str, said: dict[str, tuple]) -> list[str]:
    """What is wrong with the readers' answers to one change (empty when all is as it should be)."""
    state = expected(file, path, change)
    listed = said["list"]
    if state == DAMAGED:
        message = listed[1]
        if listed[0] != "error" or not message.startswith("run x is damaged: "):
            return [f"listed as {listed[1]['state']}, not damaged"]
        field = file.split("/")[-1] if path == "<file>" else path.split(".")[-1]
        out = [] if file.split("/")[-1] in message and field in message else [f"names not {file} {field}: {message}"]
        for reader, answer in said.items():
            if answer[:2] != ("error", message):
                out.append(f"{reader} answered {answer[:2]}")
            elif reader in ("report", "publish") and (answer[2] != 2 or answer[3].count("\n") != 1):
                out.append(f"{reader} did not end with one line and exit code 2: {answer[2:]}")
        return out
    out = [] if listed[0] == "ok" and listed[1]["state"] == state else [f"listed as {listed[1:]}, not {state}"]
    refused = {
        "completed": {"resume": f"run x is completed; only {', '.join(RESUMABLE)} runs can be resumed"},
        "failed": {"publish": "run x is failed; only a completed run can be published"},
    }[state]
    for reader, answer in said.items():
        if reader in refused and answer[:2] != ("error", refused[reader]):
            out.append(f"{reader} answered {answer[:2]}")
        elif reader not in refused and answer[0] != "ok":
            out.append(f"{reader} failed: {answer[1:]}")
    if said["report"][0] == "ok" and ("NaN" in said["report"][1] or "Infinity" in said["report"][1]):
        out.append("report --json printed a bare NaN")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("file", [*JSON_FILES, "metrics.jsonl", "probabilities", "environment.json"])
def test_every_field_of_every_run_file_changed_in_value_reads_as_damaged_in_one_line(
    base, tmp_path, capsys, monkeypatch, file
):
    # chat reads the run as ever; only the model's forward pass (the same for every change: no model file is
    # changed) is skipped, for time
    monkeypatch.setattr(inference, "predict", lambda folders, *args: {"label": "neutral", "models": len(folders)})
    cases = [c for c in mutations(base) if c[0].split("/")[0] == file]
    assert cases
    failures = []
    for i, (name, path, change, apply) in enumerate(cases):
        folder = tmp_path / str(i) / "runs" / "x"
        # hard links (a change replaces a file, never writes into it), the models shared: loaded for chat once
        shutil.copytree(base.path, folder, copy_function=os.link, ignore=shutil.ignore_patterns("models"))
        (folder / "models").symlink_to(base.path / "models")
        apply(folder)
        try:
            said = answers(Run(folder), tmp_path / str(i), capsys)
        except Exception as err:  # any exception but UserError is a failure of the readers
            failures.append(f"{name} {path} {change}: {type(err).__name__}: {err}")
            continue
        failures += [f"{name} {path} {change}: {p}" for p in problems(name, path, change, said)]
        shutil.rmtree(tmp_path / str(i))
    assert not failures, f"{len(failures)} of {len(cases)} changes:\n" + "\n".join(failures)


def damaged_copy(base: Run, root: Path, damage: Callable[[Path], None]) -> Run:
    folder = root / "runs" / "x"
    shutil.copytree(base.path, folder)
    damage(folder)
    return Run(folder)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda f: write(f / "status.json", "null"), "status.json does not hold a known state"),
        (lambda f: (f / "predictions.json").unlink(), "predictions.json is missing"),
        (lambda f: (f / "probabilities" / "even-seed0.npz").unlink(), "probabilities/even-seed0.npz is missing"),
    ],
)
def test_a_null_status_or_missing_predictions_read_as_damaged_never_as_nan(base, tmp_path, damage, reason):
    run = damaged_copy(base, tmp_path, damage)
    [listed] = list_runs(run.path.parent)
    assert listed["state"] == DAMAGED and reason in listed["message"]
    with pytest.raises(UserError, match=reason):
        comparison(run)


@pytest.mark.parametrize("key", ["time", "started"])
@pytest.mark.parametrize("value", [math.nan, math.inf, FUTURE])
def test_a_running_run_with_a_nan_or_future_time_is_damaged_not_running_forever(base, tmp_path, key, value):
    def damage(folder: Path) -> None:
        status = json.loads((folder / "status.json").read_text())
        write(folder / "status.json", json.dumps({**status, "state": "running", key: value}))

    run = damaged_copy(base, tmp_path, damage)
    [listed] = list_runs(run.path.parent)
    assert listed["state"] == DAMAGED
    assert (
        f"status.json field {key} is {'in the future' if value == FUTURE else 'not a finite number'}"
        in (listed["message"])
    )


def test_a_heartbeat_in_the_future_is_damage_and_never_keeps_a_dead_run_running(base, tmp_path):
    def damage(folder: Path) -> None:
        status = json.loads((folder / "status.json").read_text())
        old = time.time() - 3600  # only the heartbeat could keep it alive
        write(folder / "status.json", json.dumps({**status, "state": "running", "time": old, "started": old}))
        write(folder / "heartbeat.json", json.dumps({"host": "elsewhere", "pid": 7, "time": FUTURE}))

    run = damaged_copy(base, tmp_path, damage)
    assert run.status()["state"] == "interrupted"  # the lease's time in the future is no heartbeat
    [listed] = list_runs(run.path.parent)
    assert listed["state"] == DAMAGED and "heartbeat.json field time is in the future" in listed["message"]


def test_the_check_is_kept_until_a_file_changes(base, tmp_path, monkeypatch):
    run = damaged_copy(base, tmp_path, lambda folder: None)
    calls = []
    check_files = Run._check_files
    monkeypatch.setattr(Run, "_check_files", lambda self: calls.append(1) or check_files(self))
    run.check()
    run.check()
    assert len(calls) == 1
    rows = json.loads((run.path / "summary.json").read_text())
    write(run.path / "summary.json", json.dumps([{**rows[0], "params": "many"}, *rows[1:]]))
    with pytest.raises(UserError, match=r"summary.json row 1 \(teacher\) field params is not a whole number"):
        run.check()
    assert len(calls) == 2


def test_report_of_a_damaged_run_on_the_command_line_is_one_line_and_exit_code_2(base, tmp_path):
    def damage(folder: Path) -> None:
        rows = json.loads((folder / "summary.json").read_text())
        write(folder / "summary.json", json.dumps([rows[0], {**rows[1], "params": "many"}, *rows[2:]]))

    run = damaged_copy(base, tmp_path, damage)
    done = subprocess.run(
        [sys.executable, "-m", "distill", "report", "x", "--results-dir", str(run.path.parent), "--no-plots"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert done.returncode == 2
    reason = "summary.json row 2 (top_k-seed0) field params is not a whole number"
    assert done.stderr == f"error: run x is damaged: {reason}\n"


def test_no_app_answer_holds_a_bare_nan(base, monkeypatch):
    """Every public function of the app passes its answers (streamed ones too) through `results.finite`."""
    import app

    monkeypatch.setattr(app, "find_run", lambda name, roots=None: base)
    monkeypatch.setattr(app, "comparison", lambda run, ensemble=None: [{"difference": math.nan, "p": [math.inf]}])
    answer = app.comparison_api(base.name)
    assert answer["table"] == [{"difference": None, "p": [None]}]
    json.dumps(answer, allow_nan=False)

    monkeypatch.setattr(app, "list_runs", lambda roots: [{"run": "x", "started": 1.0, "busy_seconds": math.nan}])
    monkeypatch.setattr(app.hf_jobs, "listing", lambda *args: [])
    assert app.runs() == [{"run": "x", "started": 1.0, "busy_seconds": None}]

    monkeypatch.setattr(app, "follow", lambda run, *args, **kwargs: iter([{"loss": math.nan}, {"curve": (-math.inf,)}]))
    assert list(app.watch_job(base.name)) == [{"loss": None}, {"curve": (None,)}]
