"""The benches that the README quotes still run: each one's smallest form, on this CPU, checked for its numbers."""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def bench_output(*args: str) -> str:
    """What `python -m bench.<args>` prints, run from the repository as a user runs it."""
    command = [sys.executable, "-m", *args]
    return subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_gpu_estimate_prints_an_estimate_for_each_card():
    out = bench_output("bench.gpu_estimate", "examples/jobs/bert-base-mnli.yaml")
    assert out.startswith("ESTIMATE for bert-base-uncased, 6-layer students, 15 students, 392,702 training pairs")
    rows = [line for line in out.splitlines() if line.startswith("| T4") or line.startswith("| H200")]
    assert len(rows) == 2
    t4, h200 = (float(row.split("|")[-3].strip().removesuffix(" h")) for row in rows)
    assert 0 < h200 < t4  # the faster card takes less time


@pytest.mark.slow
def test_gpu_check_runs_its_whole_path_on_a_cpu(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_check",
            "--device",
            "cpu",
            "--rows",
            "128",
            "--max-seconds",
            "4",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=ENV,
        check=True,
        timeout=600,
    )
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    for phase in ("teacher epoch", "student epoch"):
        assert result[phase]["steps"] >= 1 and result[phase]["tflops"] > 0
        assert result[phase]["epoch_steps"] == 4  # 128 rows in batches of 32
    assert set(result["8-bit"]) == {
        "teacher outputs, bf16",
        "teacher outputs, 8-bit",
        "student AdamW",
        "student AdamW8bit",
    }


@pytest.mark.parametrize("cls_only", [False, True])
def test_the_roofline_flop_formula_agrees_with_torchs_counter(cls_only):
    """The per-token FLOP count behind the roofline, the GPU estimate and the GPU check, against torch's own count
    of a real student step (forward and backward), with the last layer in full and for [CLS] only."""
    import torch

    from bench.roofline import counted_flops, forward_flops
    from distill.config import JobConfig
    from distill.hub import embedded_teacher_path
    from distill.job import distillation_step
    from distill.models import build_student, cls_only_last_layer, load_classifier
    from distill.teacher import TeacherOutputs

    student = build_student(load_classifier(embedded_teacher_path()), [0, 2, 4])
    batch = {
        "input_ids": torch.randint(1000, 2000, (8, 40)),
        "attention_mask": torch.ones(8, 40, dtype=torch.long),
        "labels": torch.randint(0, 3, (8,)),
        "rows": torch.arange(8),
    }
    step = distillation_step(JobConfig(), None, TeacherOutputs(torch.randn(8, 3), None), [0, 2, 4])
    with cls_only_last_layer(student, cls_only):
        counted = counted_flops(student, batch, step)
    assert 3 * forward_flops(student.config, batch, 3, cls_only) == pytest.approx(counted, rel=0.03)


def test_the_roofline_trains_its_rows_in_turn_step_by_step():
    """Rows measured one after another drifted with the machine (10 to 15% over minutes here); `profile_arms`
    trains every row one step in turn, a warm-up pass and then a timed one, and counts each row's FLOPs at the
    width of its batch's longest row (padding beyond it is work, not counted). Rows with `split` have one more
    pass, profiled and in turn, where each row's matmuls (FLOPs from the shapes the profiler records) are its own:
    the formula's count, or more where the batch is padded beyond its longest row."""
    import torch

    from bench.roofline import Arm, exact_width, forward_flops, profile_arms, rounded_width
    from distill.config import JobConfig
    from distill.hub import embedded_teacher_path
    from distill.job import distillation_step
    from distill.models import build_student, load_classifier
    from distill.teacher import TeacherOutputs

    teacher = load_classifier(embedded_teacher_path())
    mask = torch.ones(4, 13, dtype=torch.long)
    mask[1:, 9:] = 0
    batches = [
        {
            "input_ids": torch.randint(1000, 2000, (4, 13)),
            "attention_mask": mask,
            "labels": torch.arange(4) % 3,
            "rows": torch.arange(4) + 4 * n,
        }
        for n in range(3)
    ]
    padded = [rounded_width(b, 8, 0) for b in batches]
    assert padded[0]["input_ids"].shape == (4, 16) and (padded[0]["input_ids"][:, 13:] == 0).all()
    assert torch.equal(exact_width(padded[0])["input_ids"], batches[0]["input_ids"])
    step = distillation_step(JobConfig(), None, TeacherOutputs(torch.randn(12, 3), None), [0, 2, 4])
    calls = []

    def recorded(name):
        def loss(model, batch):
            calls.append((name, int(batch["rows"][0]) // 4))
            return step(model, batch)

        return loss

    arms = {
        "exact": Arm(build_student(teacher, [0, 2, 4]), batches, recorded("exact"), 3, split=True),
        "rounded": Arm(build_student(teacher, [0, 2, 4]), padded, recorded("rounded"), 3, cls_only=True, split=True),
    }
    profiles = profile_arms(arms, JobConfig())
    in_turn = [(name, n) for n in range(3) for name in ("exact", "rounded")]
    assert calls == in_turn + in_turn + in_turn  # the warm-up pass, the timed one, the profiled one (`split`)
    assert profiles["exact"].steps == profiles["rounded"].steps == 3
    assert profiles["exact"].tokens == profiles["rounded"].tokens == 3 * 4 * 13
    assert profiles["exact"].flops == 3 * 3 * forward_flops(teacher.config, batches[0], 3)
    assert profiles["rounded"].flops < profiles["exact"].flops  # [CLS]-only, counted at 13 wide, not 16
    assert all(p.warmup_seconds > 0 and p.seconds["backward"] > 0 for p in profiles.values())
    exact, rounded = profiles["exact"], profiles["rounded"]
    assert exact.matmul_flops == pytest.approx(exact.flops, rel=1e-9)  # every matmul of its steps, none twice
    assert rounded.matmul_flops > rounded.flops  # its matmuls multiply the padding too: 16 wide, not 13
    for p in profiles.values():
        assert 0 < p.matmul_seconds < p.profiled_seconds and p.peak_alongside > 0


def test_a_roofline_whose_peak_is_under_what_this_cpu_measures_is_refused():
    from bench.machine import cpu_facts
    from bench.roofline import stale_peak

    here = cpu_facts()
    assert here["threads"] >= 1 and here["model"]
    measured = 400.0
    busy = {"cpu": here, "sustained_bf16_gflops": 0.5 * measured}
    refused = stale_peak(busy, measured, here)
    assert refused is not None and "200 GFLOP/s" in refused and "400" in refused
    assert stale_peak({**busy, "sustained_bf16_gflops": 0.9 * measured}, measured, here) is None  # within noise
    assert stale_peak({**busy, "sustained_bf16_gflops": 2 * measured}, measured, here) is None
    other_cpu = {**busy, "cpu": {**here, "matmul_flags": [*here["matmul_flags"], "amx_bf16"]}}
    assert stale_peak(other_cpu, measured, here) is None  # another CPU's peak is not this one's to judge
    assert stale_peak({**busy, "cpu": {**here, "threads": here["threads"] + 1}}, measured, here) is None


@pytest.mark.parametrize("name", ["roofline.json", "amx/roofline.json"])
def test_the_committed_roofline_peak_stands_on_this_cpu(name):
    """The committed peaks against the same shapes measured now: if this machine has the CPU one was measured on
    and multiplies faster than the file says, the file came from a busy or slower machine and must be remeasured."""
    from bench.machine import cpu_facts
    from bench.roofline import OUT, matmul_rates, stale_peak

    recorded, here = json.loads((OUT.parent / name).read_text()), cpu_facts()
    assert set(recorded["cpu"]) == set(here)  # the file names its CPU, flags, threads and torch
    if recorded["cpu"] != here:
        pytest.skip(f"bench/{name} was measured on {recorded['cpu']}, this is {here}")
    shapes = [tuple(map(int, shape.split("x"))) for shape in recorded["matmul_gflops"]["bf16"]]
    measured = max(matmul_rates(shapes, 0.5).values())
    assert stale_peak(recorded, measured, here) is None


@pytest.mark.slow
def test_scaling_projects_the_full_job_with_the_jobs_launchers_own_estimate():
    from bench.scaling import FULL_SIZE_JOB, PROJECTED_FLAVORS
    from distill.config import JobConfig
    from distill.hf_jobs import estimate

    out = bench_output("bench.scaling", "--project-only")
    assert "PROJECTED, not measured" in out and "bert-base-uncased 12 -> 6 layers" in out
    cfg = JobConfig.from_yaml(FULL_SIZE_JOB)
    for flavor in PROJECTED_FLAVORS:
        row = next(line for line in out.splitlines() if line.startswith(f"| {flavor} |"))
        expected = estimate(cfg, flavor)
        assert f"${expected['cost_usd']:.2f}" in row and f"{expected['compute_hours']:.1f} h" in row
    single, four = (estimate(cfg, f)["compute_hours"] for f in ("a10g-large", "a10g-largex4"))
    assert four == pytest.approx(single / 4)  # the launcher assumes perfect scaling, and the page says so
    assert "split perfectly over 4 GPUs" in out


@pytest.mark.slow
def test_scaling_measures_a_whole_job_in_a_process_of_its_own(tmp_path):
    from bench.scaling import run_measured

    tiny = ["--train-size", "64", "--eval-size", "64", "--seeds", "0", "--strategies", "top_k"]
    seconds, gib = run_measured([*tiny, "--teacher-epochs", "1", "--latency-examples", "4"], str(tmp_path / "a"))
    assert seconds > 1 and 0.3 < gib < 8  # the child's own peak: torch and a MiniLM are a few hundred MB at least
    assert list((tmp_path / "a").iterdir())  # the run was written where it was told
    with pytest.raises(SystemExit, match="failed"):
        run_measured([*tiny, "--epochs", "0"], str(tmp_path / "b"))


def test_scaling_checks_every_row_first_and_a_rerun_measures_only_what_its_file_lacks(tmp_path, monkeypatch):
    """The grid takes 40 minutes: a row that cannot run fails before the first is measured, and each measured row
    is in the file at once, so an interrupted grid resumes where it stopped (on the same machine only)."""
    import bench.scaling as scaling

    measured, interrupt_at = [], [3]

    def fake_run(flags, _folder):
        measured.append(tuple(flags))
        if len(measured) in interrupt_at:
            raise SystemExit("interrupted")
        return 60.0 * len(measured), 1.5

    monkeypatch.setattr(scaling, "OUT", tmp_path / "scaling.json")
    monkeypatch.setattr(scaling, "run_measured", fake_run)
    monkeypatch.setattr(scaling, "GRID", [*scaling.GRID, ("strategies", 9, ["--strategies", "distilbert"])])
    with pytest.raises(Exception, match="distilbert needs a 12-layer teacher"):
        scaling.measure("here", {})
    assert measured == [] and not scaling.OUT.exists()

    monkeypatch.setattr(scaling, "GRID", scaling.GRID[:-1])
    with pytest.raises(SystemExit, match="interrupted"):
        scaling.measure("here", {})
    kept = json.loads(scaling.OUT.read_text())["measured"]
    assert [(r["axis"], r["value"], r["seconds"]) for r in kept] == [
        ("training pairs", 1000, 60.0),
        ("training pairs", 2000, 120.0),
    ]

    measured.clear()
    interrupt_at.clear()
    rows = scaling.measure("here", {})
    assert len(rows) == 10 and len(measured) == 6  # 10 rows: 2 kept, and the default job is one run for 3 axes
    assert rows[1]["seconds"] == 120.0 and {r["seconds"] for r in rows if r["value"] in (5000, 4, 3)} == {60.0}
    assert json.loads(scaling.OUT.read_text())["measured"] == rows

    measured.clear()
    assert len(scaling.measure("another machine", {})) == 10 and len(measured) == 8  # another machine: all again


def test_two_students_trained_at_once_end_where_each_ends_alone():
    """`bench.concurrency` trains two students at once as a job does (`training.side_by_side`: two Python threads,
    one intra-op thread each): each must do the job's arithmetic, so it ends with the weights of the same student
    trained alone on one thread, and the thread count the workers set stays theirs (the caller's is untouched)."""
    from functools import partial

    import torch

    from bench.concurrency import RUNTIME, measure, new_student, train
    from distill.config import JobConfig
    from distill.hub import embedded_teacher_path
    from distill.job import distillation_step
    from distill.models import load_classifier
    from distill.teacher import TeacherOutputs
    from distill.training import side_by_side, training_attention

    cfg, teacher = JobConfig(), load_classifier(embedded_teacher_path())
    generator = torch.Generator().manual_seed(0)
    batches = [
        {
            "input_ids": torch.randint(1000, 5000, (4, 11), generator=generator),
            "attention_mask": torch.ones(4, 11, dtype=torch.long),
            "labels": torch.arange(4) % 3,
            "rows": torch.arange(4) + 4 * n,
        }
        for n in range(3)
    ]
    step = distillation_step(cfg, None, TeacherOutputs(torch.randn(12, 3, generator=generator), None), [0, 2, 4])
    alone, first, second, untrained = (new_student(teacher, [0, 2, 4], cfg) for _ in range(4))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with training_attention(torch.device("cpu")):  # the kernel side_by_side holds, as the bench holds it for all
        train(alone, batches, step, cfg)
    torch.set_num_threads(2)  # side by side, as the bench's arm and a job run them: one thread each
    side_by_side([partial(train, first, batches, step, cfg), partial(train, second, batches, step, cfg)], 2, RUNTIME)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(threads)
    trained = dict(alone.model.named_parameters())
    assert any(not torch.equal(p, trained[name]) for name, p in untrained.model.named_parameters())
    for student in (first, second):
        for name, parameter in student.model.named_parameters():
            assert torch.equal(parameter, trained[name]), name

    calls = []
    seconds = measure({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=2)
    assert calls == ["a", "b"] * 3 and [len(s) for s in seconds.values()] == [2, 2]  # round 0 warms up, not kept


def test_stacked_students_each_end_where_they_end_alone():
    """`bench.concurrency`'s stacked arm trains two students as one (weights stacked, vmap): each must still train
    as itself, with its own loss, gradient norm and optimizer state, so each student's change in every weight
    points where the same student's change points when it trains alone, and not where the other's does."""
    import torch

    from bench.concurrency import new_student, stack_students, train, train_stacked
    from distill.config import JobConfig
    from distill.hub import embedded_teacher_path
    from distill.job import distillation_step
    from distill.models import cls_only_last_layer, load_classifier
    from distill.teacher import TeacherOutputs
    from distill.training import training_attention

    cfg, teacher = JobConfig(max_grad_norm=0.5), load_classifier(embedded_teacher_path())  # low: clipping acts
    generator = torch.Generator().manual_seed(0)
    batches = [
        {
            "input_ids": torch.randint(1000, 5000, (8, 13), generator=generator),
            "attention_mask": (torch.arange(13) < torch.randint(5, 14, (8, 1), generator=generator)).long(),
            "labels": torch.arange(8) % 3,
            "rows": torch.arange(8) + 8 * n,
        }
        for n in range(3)
    ]
    step = distillation_step(cfg, None, TeacherOutputs(torch.randn(24, 3, generator=generator), None), [0, 2, 4])
    layer_sets = ([0, 2, 4], [3, 4, 5])
    alone = [new_student(teacher, layers, cfg) for layers in layer_sets]
    together = [new_student(teacher, layers, cfg) for layers in layer_sets]
    start = [{n: p.detach().clone() for n, p in s.model.named_parameters()} for s in alone]
    stacked = stack_students(together, cfg)
    with contextlib.ExitStack() as held:
        held.enter_context(training_attention(torch.device("cpu")))
        for student in (*alone, together[0]):
            held.enter_context(cls_only_last_layer(student.model))
        for student in alone:
            train(student, batches, step, cfg)
        train_stacked(stacked, batches, step, cfg)

    def change(weight: torch.Tensor, k: int, name: str) -> torch.Tensor:
        return (weight - start[k][name]).flatten().float()

    for k, student in enumerate(alone):
        own = dict(student.model.named_parameters())
        assert stacked.fixed.keys() == {n for n, p in own.items() if not p.requires_grad}
        for name, weight in stacked.weights.items():
            if name.endswith("key.bias"):  # softmax cancels it: a gradient of 0 but for rounding, scaled up by AdamW
                continue
            moved, alone_moved = change(weight[k], k, name), change(own[name], k, name)
            assert torch.cosine_similarity(moved, alone_moved, dim=0) > 0.98, (k, name)
    first, second = (change(stacked.weights["classifier.weight"][k], k, "classifier.weight") for k in range(2))
    assert torch.cosine_similarity(first, second, dim=0) < 0.9  # two students, not one trained twice


@pytest.mark.parametrize("bench", ["peer", "onednn_cache"])
def test_show_of_a_result_not_written_yet_says_so_in_one_line(bench, tmp_path):
    missing = tmp_path / "none.json"
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", "--show", "--out", str(missing)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: no {missing} yet; run the bench first\n"
