"""Students trained side by side (`students_at_once`): the same students as one after the other, recorded in the
job's order with the job's progress counted once; the first failure, or an interrupt, stops the students beside
it and is what the job reports."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny import TINY

from distill.config import ConfigError, JobConfig
from distill.job import resume_job, run_job
from distill.progress import JobPaused, JobStopped, StepCount
from distill.training import Runtime, side_by_side, students_at_once

STUDENTS = ["top_k-seed0", "top_k-seed1", "odd-seed0", "odd-seed1"]
CONTROLS = ["random-seed0", "random-seed1"]


def tiny_job(tmp_path, teacher, at_once: int, threads: int, events: list):
    strategies = ["top_k", "odd", "random"]  # the random control draws its layers from the seeded generator
    settings = {**TINY, "teacher": str(teacher), "strategies": strategies, "seeds": [0, 1]}
    cfg = JobConfig(**settings, students_at_once=at_once, results_dir=str(tmp_path / str(at_once)))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return run_job(cfg, events.append)
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_students_side_by_side_are_the_students_trained_one_after_the_other(tmp_path, tiny_bert):
    """Two at once on 2 threads give each student 1 thread: every weight as trained alone on 1 thread."""
    alone_events, side_events = [], []
    alone = tiny_job(tmp_path, tiny_bert, at_once=1, threads=1, events=alone_events)
    side = tiny_job(tmp_path, tiny_bert, at_once=2, threads=2, events=side_events)
    assert side.status()["state"] == "completed"
    everyone = ["teacher", *STUDENTS, *CONTROLS]
    assert [r["model"] for r in side.summary()] == everyone  # the job's order, not the order they finished in
    assert [r["model"] for r in alone.summary()] == everyone
    for name in STUDENTS + CONTROLS:
        ours, theirs = (load_file(run.model_dir(name) / "model.safetensors") for run in (side, alone))
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
        # Evaluated through another attention kernel while the other student trains: equal up to rounding (the
        # accuracy of a near-uniform tiny model can flip on such rounding, so the probabilities are compared).
        assert side.probabilities(name).keys() == alone.probabilities(name).keys() != set()
        for split, ours_p in side.probabilities(name).items():
            assert np.allclose(ours_p, alone.probabilities(name)[split], atol=1e-3), (name, split)
    steps = [e.done for e in side_events]
    assert steps == sorted(steps), "the job's progress went backwards"
    assert side_events[-1].done == side_events[-1].total == alone_events[-1].total > 0
    assert any(e.message == "training 2 students at once, 1 thread(s) each" for e in side_events)
    assert not any(e.message.startswith("training") and "at once" in e.message for e in alone_events)


def runtime() -> Runtime:
    return Runtime.create("fp32")


def test_the_first_failure_stops_the_students_beside_it_and_is_raised():
    job = runtime()
    stopped, started_later = threading.Event(), threading.Event()
    training = threading.Event()

    def trains():
        training.set()
        try:
            while True:
                job.check_stop()
                time.sleep(0.01)
        except JobStopped:
            stopped.set()
            raise

    def fails():
        training.wait(5)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        side_by_side([trains, fails, started_later.set, started_later.set], 2, job)
    assert stopped.is_set(), "the student beside the failed one went on training"
    assert not started_later.is_set(), "a student was started after another had failed"


def test_an_interrupt_stops_every_student_and_is_raised():
    job = runtime()
    stopped = []

    def trains(interrupt: bool):
        if interrupt:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        try:
            while True:
                job.check_stop()
                time.sleep(0.01)
        except JobStopped:
            stopped.append(interrupt)
            raise

    with pytest.raises(KeyboardInterrupt):
        side_by_side([lambda: trains(False), lambda: trains(True)], 2, job)
    # Ctrl-C may land while the pool is still starting the second thread, which the pool then does not wait for.
    deadline = time.monotonic() + 5
    while len(stopped) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(stopped) == [False, True]


def test_students_that_all_finish_leave_the_job_running():
    job, done = runtime(), []
    side_by_side([lambda: done.append(1), lambda: done.append(2), lambda: done.append(3)], 2, job)
    assert sorted(done) == [1, 2, 3]
    job.check_stop()  # the latency timing after the students must not read as stopped


def test_side_by_side_runs_every_task_on_its_share_of_threads():
    job, seen, lock = runtime(), [], threading.Lock()
    before = torch.get_num_threads()

    def task(i):
        with lock:
            seen.append((i, torch.get_num_threads(), threading.current_thread() is threading.main_thread()))

    torch.set_num_threads(4)
    try:
        side_by_side([lambda i=i: task(i) for i in range(5)], 2, job)
        assert sorted(i for i, _, _ in seen) == list(range(5))
        assert {(threads, main) for _, threads, main in seen} == {(2, False)}
        assert torch.get_num_threads() == 4  # the calling thread keeps its own
        seen.clear()
        side_by_side([lambda i=i: task(i) for i in range(3)], 1, job)
        assert seen == [(0, 4, True), (1, 4, True), (2, 4, True)]
    finally:
        torch.set_num_threads(before)


def test_the_step_count_adds_up_across_threads_and_stages():
    count = StepCount()
    count.total = 300

    together = threading.Barrier(3)

    def stage(planned, trained):
        with count.stage(planned):
            together.wait()  # every stage open at once, as students trained side by side are
            for _ in range(trained):
                count.advance()
                time.sleep(0)
            together.wait()

    threads = [threading.Thread(target=stage, args=(100, n)) for n in (100, 60, 100)]  # one diverged after 60
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count.done == 300
    with pytest.raises(JobStopped), count.stage(100):
        count.advance(10)
        raise JobStopped
    assert count.done == 310  # a stopped stage leaves the count where it stood


def test_one_student_at_a_time_unless_asked():
    assert JobConfig().students_at_once == 1
    assert students_at_once(JobConfig(students_at_once=3).validated(), runtime()) == 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"students_at_once": 0}, "students_at_once must be a whole number from 1 to 16"),
        ({"students_at_once": 17}, "students_at_once must be a whole number from 1 to 16"),
        ({"students_at_once": "two"}, "students_at_once"),
        ({"students_at_once": 2, "torch_compile": True}, "torch_compile trains one student at a time"),
    ],
)
def test_impossible_numbers_of_students_at_once_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message) as refused:
        JobConfig(**settings).validated()
    assert refused.value.setting == "students_at_once"


@pytest.mark.slow
def test_a_stop_mid_way_stops_both_students_and_the_run_resumes_to_all_of_them(tmp_path, tiny_bert):
    stop, students_seen = threading.Event(), set()

    def on_event(event):
        if event.kind == "step" and event.stage in STUDENTS:
            students_seen.add(event.stage)
            if len(students_seen) == 2:  # two students in flight
                stop.set()

    settings = {**TINY, "teacher": str(tiny_bert), "strategies": ["top_k", "odd"], "seeds": [0, 1]}
    cfg = JobConfig(**{**settings, "train_size": 256}, students_at_once=2, results_dir=str(tmp_path))
    run = run_job(cfg, on_event, stop)
    assert run.status()["state"] == "stopped"
    assert len([r for r in run.summary() if r["role"] == "student"]) < len(STUDENTS)
    resumed = resume_job(run)
    assert resumed.status()["state"] == "completed"
    assert [r["model"] for r in resumed.summary()] == ["teacher", *STUDENTS]
    assert all(r["accuracy"] is not None for r in resumed.summary())


def test_an_error_is_reported_before_the_stops_and_pauses_beside_it():
    job = runtime()
    paused, failing = threading.Event(), threading.Event()

    def pauses():
        failing.wait(5)  # both in flight
        paused.set()
        raise JobPaused("paused after its time slice")

    def fails():
        failing.set()
        paused.wait(5)
        time.sleep(0.05)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):  # it came second, but a pause must not hide it
        side_by_side([pauses, fails], 2, job)
    failing.set()
    with pytest.raises(JobPaused):
        side_by_side([pauses, lambda: time.sleep(0.2)], 2, runtime())
