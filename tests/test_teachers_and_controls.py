"""Several fine-tuned teachers in one job, and the controls as strategies of the run: students spread over the
teachers, each recorded with its teacher, tests that count a teacher's luck, and controls that change one thing."""

from pathlib import Path

import pytest
import torch

from distill.comparison import comparison
from distill.config import ConfigError, JobConfig
from distill.job import run_job
from distill.models import build_student, copied_layers_match, encoder_layers, load_classifier
from distill.plan import check_teacher_and_layers
from distill.results import open_run
from distill.stats import BY_TEACHER, FEW_TEACHERS
from distill.strategies import CONTROLS
from distill.wording import ONE_TEACHER, verdict

RESULTS = Path(__file__).resolve().parent.parent / "results"

TINY = {"train_size": 64, "eval_size": 32, "epochs": 1, "teacher_epochs": 1, "latency_examples": 8}


@pytest.fixture(scope="module")
def three_teachers(tiny_encoder, tmp_path_factory):
    cfg = JobConfig(
        **TINY,
        teacher=str(tiny_encoder),  # no head: the job fine-tunes it, once per teacher seed
        strategies=["top_k", "odd", "no-distillation", "pretrained-only", "random"],
        seeds=[0, 1, 2],
        teacher_seeds=[5, 6, 7],
        learning_rate=3e-4,
        results_dir=str(tmp_path_factory.mktemp("teachers")),
        run_name="three-teachers",
    )
    run = run_job(cfg)
    assert run.status()["state"] == "completed"
    return run


@pytest.mark.slow
def test_each_teacher_is_fine_tuned_with_its_own_seed_and_teaches_its_share(three_teachers):
    rows = {r["model"]: r for r in three_teachers.summary()}
    teachers = {name: r for name, r in rows.items() if r["role"] == "teacher"}
    assert sorted(teachers) == ["teacher", "teacher-seed6", "teacher-seed7"]
    assert [teachers[n]["seed"] for n in ("teacher", "teacher-seed6", "teacher-seed7")] == [5, 6, 7]
    logits = {n: three_teachers.probabilities(n)["validation_matched"] for n in teachers}
    assert not (logits["teacher"] == logits["teacher-seed6"]).all()  # another seed, another teacher
    for strategy in ("top_k", "odd", "no-distillation", "pretrained-only", "random"):
        taught = [rows[f"{strategy}-seed{s}"]["teacher"] for s in (0, 1, 2)]
        assert taught == ["teacher", "teacher-seed6", "teacher-seed7"], strategy  # seed i: teacher i mod 3


def test_each_control_changes_one_thing_about_top_k(three_teachers, tiny_encoder):
    rows = {r["model"]: r for r in three_teachers.summary()}
    top_k, hard = rows["top_k-seed0"], rows["no-distillation-seed0"]
    assert hard["layers"] == top_k["layers"] == rows["pretrained-only-seed0"]["layers"] == [0, 1]
    assert (hard["weight_ce"], hard["weight_kl"], hard["weight_cos"]) == (1.0, 0.0, 0.0)  # no teacher signal
    assert hard["learning_rate"] == top_k["learning_rate"] == 3e-4  # at the same learning rate
    assert top_k["weight_kl"] > 0 and rows["random-seed0"]["layers"] == []
    teacher = load_classifier(str(three_teachers.model_dir("teacher")))
    pretrained = load_classifier(str(tiny_encoder))
    student = build_student(teacher, [0, 1], layer_source=pretrained)
    assert copied_layers_match(student, pretrained, [0, 1]) and not copied_layers_match(student, teacher, [0, 1])
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)  # the head stays the teacher's
    assert len(encoder_layers(student)) == 2
    assert {"random", "no-distillation", "pretrained-only"} <= CONTROLS


def test_the_tests_count_the_teachers_and_leave_the_controls_out_of_the_omnibus(three_teachers):
    table = comparison(three_teachers)
    rows = {r["strategy"]: r for r in table}
    assert rows["teacher"]["seeds"] == 3  # the teacher's row: the mean over its three fine-tunings
    best = next(r for r in table if r.get("best"))
    tested = [r for r in table if r["role"] == "student" and r is not best]
    assert all(r["test"] == BY_TEACHER for r in tested)  # 3 teachers: each teacher one unit, tested as independent
    # A tiny run's students may all answer every row alike (no noise to plan from); where they don't, the plan
    # counts teachers, as it does on the committed run of three teachers (below).
    assert best.get("plan_unit", "teachers") == "teachers"
    text = verdict(table)
    assert ONE_TEACHER not in text
    # a tiny teacher is usually no surer than a guess, which the verdict then says first
    guess = "The teacher is no better than guessing"
    first = text.removeprefix(text[: text.index("epochs. ") + len("epochs. ")] if text.startswith(guess) else "")
    assert first.split(". ")[0].startswith(("Layer choice matters here", "No strategy is distinguishable"))
    assert best.get("omnibus_p") is not None


def test_the_plan_of_a_run_of_three_teachers_counts_teachers():
    table = comparison(open_run(RESULTS / "reference-3-teachers"))
    best = next(r for r in table if r.get("best"))
    assert (best["strategy"], best["plan_unit"], best["plan_units"]) == ("odd", "teachers", 3)
    assert verdict(table).startswith("Layer choice matters here (p < 0.001")  # a teacher that learnt: no warning


@pytest.mark.slow
def test_two_teachers_give_a_difference_but_no_verdict(tiny_encoder, tmp_path):
    cfg = JobConfig(
        **TINY,
        teacher=str(tiny_encoder),
        strategies=["top_k", "odd"],
        seeds=[0, 1, 2, 3],
        teacher_seeds=[0, 1],
        results_dir=str(tmp_path),
        run_name="two-teachers",
    )
    table = comparison(run_job(cfg))
    behind = next(r for r in table if r["role"] == "student" and not r.get("best"))
    assert behind["p_value"] is None and behind["test"] == FEW_TEACHERS and behind["diff_vs_best"] is not None


def test_teacher_seeds_and_controls_that_cannot_work_are_refused_before_any_work(tiny_bert, tiny_encoder, tmp_path):
    def refused(**settings) -> ConfigError:
        with pytest.raises(ConfigError) as caught:
            check_teacher_and_layers(JobConfig(**TINY, results_dir=str(tmp_path), **settings))
        return caught.value

    classifier = refused(teacher=str(tiny_bert), seeds=[0, 1], teacher_seeds=[0, 1])  # used as is: one teacher
    assert classifier.setting == "teacher_seeds" and "already classifies MNLI" in str(classifier)
    pretrained = refused(teacher=str(tiny_bert), strategies=["top_k", "pretrained-only"])
    assert pretrained.setting == "strategies" and "pre-trained" in str(pretrained)
    uneven = refused(teacher=str(tiny_encoder), seeds=[0, 1, 2], teacher_seeds=[0, 1])
    assert uneven.setting == "teacher_seeds" and "a multiple of the 2 teacher seeds" in str(uneven)
    twice = refused(teacher=str(tiny_encoder), seeds=[0, 1], teacher_seeds=[3, 3])
    assert twice.setting == "teacher_seeds"
    negative = refused(teacher=str(tiny_encoder), seeds=[0], teacher_seeds=[-1])
    assert negative.setting == "teacher_seeds"
