"""Students trained together (`students_at_once`): the same students as one at a time, and one's failure its own."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny import TINY

import distill.job as job_module
from distill.config import ConfigError, JobConfig
from distill.job import run_job, students_at_once
from distill.results import Run
from distill.training import Runtime, cpu_threads

pytestmark = pytest.mark.slow


def job(tiny_bert, folder, name: str, **changes) -> JobConfig:
    settings = {**TINY, "train_size": 128, "teacher": str(tiny_bert), "run_name": name, "results_dir": str(folder)}
    return JobConfig.from_dict(settings | changes)


def test_students_trained_together_are_the_students_trained_one_at_a_time_on_one_core_each(tiny_bert, tmp_path):
    """Each student of a pair trains on one core: one at a time on one core, every weight comes out the same, so
    nothing of one student (data, teacher outputs, attention, random draws) leaks into the other."""
    settings = {"strategies": ["top_k", "even", "random"], "seeds": [0, 1], "epochs": 2}
    threads = torch.get_num_threads()
    together = run_job(job(tiny_bert, tmp_path, "together", students_at_once=2, **settings))
    assert torch.get_num_threads() == threads, "the job gives the cores back"
    with cpu_threads(1):
        alone = run_job(job(tiny_bert, tmp_path, "alone", students_at_once=1, **settings))
    names = [r["model"] for r in together.summary()]
    students = [f"{s}-seed{seed}" for s in settings["strategies"] for seed in (0, 1)]
    assert names == [r["model"] for r in alone.summary()] == ["teacher", *students], "recorded in the planned order"
    for name in students:
        mine, theirs = (
            load_file(together.model_dir(name) / "model.safetensors"),
            load_file(alone.model_dir(name) / "model.safetensors"),
        )
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), f"{name} differs from its one-at-a-time twin"
        for split, values in together.probabilities(name).items():
            assert np.array_equal(values, alone.probabilities(name)[split])
    first, second = (load_file(together.model_dir(f"random-seed{s}") / "model.safetensors") for s in (0, 1))
    assert not all(torch.equal(first[k], second[k]) for k in first), "the random control still draws per seed"
    rows = {r["model"]: r for r in together.summary()}
    assert rows["top_k-seed0"]["train_seconds"] == rows["top_k-seed1"]["train_seconds"] > 0, (
        "a pair's students share its time: the machine's seconds per student"
    )


def test_an_error_in_one_student_stops_the_student_beside_it(tiny_bert, tmp_path, monkeypatch):
    real_step = job_module.distillation_step

    def failing_step(cfg, teacher, outputs, layers):
        step, calls = real_step(cfg, teacher, outputs, layers), []

        def step_or_fail(model, batch):
            calls.append(1)
            if layers == [1, 3] and len(calls) == 3:  # `even` of the 4-layer teacher, at its third step
                raise RuntimeError("the disk caught fire")
            return step(model, batch)

        return step_or_fail

    monkeypatch.setattr(job_module, "distillation_step", failing_step)
    cfg = job(tiny_bert, tmp_path, "fire", strategies=["top_k", "even"], epochs=40, students_at_once=2)
    events = []
    with pytest.raises(RuntimeError, match="the disk caught fire"):
        run_job(cfg, events.append)
    partner_steps = sum(e.kind == "step" and e.stage == "top_k-seed0" for e in events)
    assert 0 < partner_steps < 40, f"top_k stopped soon after even failed, not after its 160 steps ({partner_steps})"
    status = Run(tmp_path / "fire").status()
    assert status["state"] == "failed" and "the disk caught fire" in status["message"]


def test_a_student_that_diverges_beside_another_fails_alone(tiny_bert, tmp_path):
    search = {"search": True, "search_temperatures": [2.0], "search_learning_rates": [1e9, 1e-4]}
    cfg = job(tiny_bert, tmp_path, "mixed", strategies=["top_k"], students_at_once=2, **search)
    events = []
    run = run_job(cfg, events.append)
    rows = {r["model"]: r for r in run.summary()}
    bad = next(n for n in rows if "lr1e+09" in n)
    good = next(n for n in rows if "lr0.0001" in n)
    assert "diverged" in rows[bad]["failed"] and rows[bad]["accuracy"] is None
    assert not rows[good].get("failed") and 0 <= rows[good]["accuracy"] <= 1
    assert run.status()["state"] == "completed" and "1 model(s) failed" in run.status()["message"]
    assert events[-1].done == events[-1].total, "the progress bar still reaches its end"


def test_students_at_once_is_checked_and_bounded_by_the_cores():
    with pytest.raises(ConfigError, match="at least 1"):
        JobConfig(students_at_once=0)
    with pytest.raises(ConfigError, match="needs dropout 0") as refused:
        JobConfig(students_at_once=2, dropout=0.1)
    assert refused.value.setting == "students_at_once"
    with pytest.raises(ConfigError, match="needs dropout 0"):
        JobConfig(students_at_once=2, dropout=None)  # the teacher's own dropout
    runtime = Runtime.create("fp32")
    assert students_at_once(JobConfig(), runtime) == 1, "one at a time unless asked"
    with cpu_threads(2):
        assert students_at_once(JobConfig(students_at_once=2), runtime) == 2
        assert students_at_once(JobConfig(students_at_once=8), runtime) == 2, "no more students than cores"
    with cpu_threads(1):
        assert students_at_once(JobConfig(students_at_once=2), runtime) == 1, "one core: one at a time"
