"""Chat on arrival without anyone publishing: a Space that starts with nothing to chat with trains the quick
student by itself, once, in the background; Chat opens on it, and a later start reuses it."""

from __future__ import annotations

import json
import time

import pytest
from test_space import start_app

from distill import space

pytestmark = pytest.mark.slow
READY_WITHIN_S = 900  # the quick student alone takes about 2.3 min on this 2-core machine (bench.quick_student)


def test_a_fresh_space_trains_a_student_to_chat_with_by_itself(tmp_path):
    results = tmp_path / "bucket"
    started = time.monotonic()
    app, client = start_app(results, SPACE_ID="someone/a-duplicate", DISTILL_QUICK_STUDENT_ON_START="space")
    try:
        listed = [r["run"] for r in client.predict(api_name="/list_runs")]
        assert space.QUICK_RUN in listed, "started at once, and listed as a normal run"
        states = list(client.submit(space.QUICK_RUN, api_name="/watch_job"))  # visible as a normal run
        assert states[-1]["state"] == "completed"
        students = [m for m in client.predict(api_name="/models") if m.startswith(f"{space.QUICK_RUN}/top_k")]
        elapsed = time.monotonic() - started
        assert students, "Chat has a student without any click"
        answer = client.predict(students[0], "A man is sleeping.", "A man sleeps in his bed.", api_name="/chat")
        assert answer["label"] in ("entailment", "neutral", "contradiction")
        assert elapsed < READY_WITHIN_S
        print(f"\na fresh Space had a student to chat with after {elapsed:.0f} s (app start included)")
        (tmp_path / "ready.json").write_text(json.dumps({"seconds": elapsed}))
    finally:
        app.terminate()
        app.wait(timeout=30)

    app, client = start_app(results, SPACE_ID="someone/a-duplicate", DISTILL_QUICK_STUDENT_ON_START="space")
    try:  # a later start finds it in the results folder and starts nothing
        runs = {r["run"]: r["state"] for r in client.predict(api_name="/list_runs")}
        assert runs[space.QUICK_RUN] == "completed"
        assert [p.name for p in results.iterdir() if not p.name.startswith(".")] == [space.QUICK_RUN], "only one"
        assert any(m.startswith(f"{space.QUICK_RUN}/top_k") for m in client.predict(api_name="/models"))
    finally:
        app.terminate()
        app.wait(timeout=30)


def test_the_setting_is_off_for_local_use_and_on_zerogpu(monkeypatch):
    monkeypatch.delenv("DISTILL_QUICK_STUDENT_ON_START")
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert space.settings()["quick_student_on_start"] == "space"
    assert not space.quick_student_on_start()
    monkeypatch.setenv("SPACE_ID", "someone/a-space")
    assert space.quick_student_on_start()
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # a job there needs a visitor's request
    assert not space.quick_student_on_start()
    monkeypatch.setenv("DISTILL_QUICK_STUDENT_ON_START", "sometimes")
    with pytest.raises(Exception, match="must be space, always or never"):
        space.quick_student_on_start()
