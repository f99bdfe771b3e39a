"""The speed settings do what they say: frozen word embeddings stay the teacher's, dropout is set and saved,
and validation runs after the last epoch only unless every epoch is asked for."""

import json

import pytest
from safetensors.torch import load_file
from tiny import TINY
from torch import nn

from distill.config import ConfigError, JobConfig
from distill.job import run_job
from distill.models import load_classifier, trained_with
from distill.plan import check_teacher_and_layers
from distill.training import bf16_is_emulated

WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
FIRST_LAYER = "bert.encoder.layer.0.attention.self.query.weight"


def job(tmp_path, **settings):
    cfg = JobConfig(**{**TINY, "epochs": 2, "teacher_epochs": 2, "strategies": ["top_k"], **settings})
    return run_job(cfg.replace(results_dir=str(tmp_path)))


def weights(run, model):
    return load_file(run.model_dir(model) / "model.safetensors")


def metric_rows(run):
    return [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]


# The student and teacher settings are crossed, so that each test also shows one does not leak into the other.
@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    """Fast students from a teacher fine-tuned as before (every weight trained, its own dropout)."""
    return job(
        tmp_path_factory.mktemp("fast"),
        freeze_word_embeddings=True,
        dropout=0.0,
        eval_every_epoch=False,
        teacher_freeze_word_embeddings=False,
        teacher_dropout=None,
    )


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Students trained as before from a teacher fine-tuned the fast way (the defaults)."""
    return job(
        tmp_path_factory.mktemp("full"),
        freeze_word_embeddings=False,
        dropout=None,
        eval_every_epoch=True,
        teacher_freeze_word_embeddings=True,
        teacher_dropout=0.0,
    )


def source_model():
    """The teacher before any fine-tuning."""
    return load_classifier(check_teacher_and_layers(JobConfig(**TINY)).source)


@pytest.mark.slow
def test_frozen_word_embeddings_stay_the_teachers_while_the_layers_train(fast_run):
    teacher, student = weights(fast_run, "teacher"), weights(fast_run, "top_k-seed0")
    assert (student[WORD_EMBEDDINGS] == teacher[WORD_EMBEDDINGS]).all()
    assert not (student[FIRST_LAYER] == teacher[FIRST_LAYER]).all()  # top_k's layer 0 is the teacher's layer 0


@pytest.mark.slow
def test_trained_word_embeddings_move(fast_run, full_run):
    teacher, student = weights(full_run, "teacher"), weights(full_run, "top_k-seed0")
    assert not (student[WORD_EMBEDDINGS] == teacher[WORD_EMBEDDINGS]).all()  # though the teacher's were frozen
    assert not (weights(fast_run, "teacher")[WORD_EMBEDDINGS] == source_model().state_dict()[WORD_EMBEDDINGS]).all()


def test_the_teachers_fine_tuning_keeps_its_word_embeddings_when_asked(full_run):
    teacher, source = weights(full_run, "teacher"), source_model().state_dict()
    assert (teacher[WORD_EMBEDDINGS] == source[WORD_EMBEDDINGS]).all()
    assert not (teacher[FIRST_LAYER] == source[FIRST_LAYER]).all()


def test_dropout_setting_is_applied_to_students_and_saved(fast_run, full_run):
    fast = json.loads((fast_run.model_dir("top_k-seed0") / "config.json").read_text())
    assert fast["hidden_dropout_prob"] == 0.0 and fast["attention_probs_dropout_prob"] == 0.0
    # dropout none: the teacher's own, even when the teacher fine-tuned without it
    kept = json.loads((full_run.model_dir("top_k-seed0") / "config.json").read_text())
    assert kept["hidden_dropout_prob"] == 0.1 and kept["attention_probs_dropout_prob"] == 0.1
    for run in (fast_run, full_run):  # the teacher's saved config keeps its own dropout either way
        teacher = json.loads((run.model_dir("teacher") / "config.json").read_text())
        assert teacher["hidden_dropout_prob"] == teacher["attention_probs_dropout_prob"] == 0.1


def test_the_teacher_trains_with_its_settings_and_is_itself_again_after():
    model = source_model()
    with trained_with(model, freeze_words=True, dropout=0.0):
        assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.0}
        assert model.config.hidden_dropout_prob == 0.0
        assert not model.get_input_embeddings().weight.requires_grad
        assert all(p.requires_grad for name, p in model.named_parameters() if name != WORD_EMBEDDINGS)
    assert {m.p for m in model.modules() if isinstance(m, nn.Dropout)} == {0.1}
    assert model.config.hidden_dropout_prob == model.config.attention_probs_dropout_prob == 0.1
    assert all(p.requires_grad for p in model.parameters())


def test_validation_after_the_last_epoch_only_unless_asked(fast_run, full_run):
    def evaluated(run):
        return {(r["model"], r["epoch"]): "validation_matched_accuracy" in r for r in metric_rows(run)}

    assert evaluated(fast_run) == {
        ("teacher", 1): False,
        ("teacher", 2): True,
        ("top_k-seed0", 0): True,  # before training: the layer choice alone
        ("top_k-seed0", 1): False,
        ("top_k-seed0", 2): True,
    }
    assert all(evaluated(full_run).values()) and len(evaluated(full_run)) == 5
    for run in (fast_run, full_run):  # the summary holds the last epoch's measurement either way
        row = next(r for r in run.summary() if r["model"] == "top_k-seed0")
        last = next(r for r in metric_rows(run) if r["model"] == "top_k-seed0" and r["epoch"] == 2)
        assert row["accuracy"] == last["validation_matched_accuracy"]


@pytest.mark.parametrize("name", ["dropout", "teacher_dropout"])
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_outside_zero_to_one_is_refused(name, value):
    with pytest.raises(ConfigError, match=name) as err:
        JobConfig(**{name: value})
    assert err.value.setting == name


@pytest.mark.parametrize(
    ("budget", "layers", "expected"), [(1024, 6, 1024), (1024, 3, 2048), (1024, 2, 3072), (0, 3, 0)]
)
def test_a_shallower_model_trains_in_passes_of_proportionally_more_tokens(budget, layers, expected):
    assert JobConfig(max_tokens_per_pass=budget).pass_tokens(6, layers) == expected


def test_the_teachers_training_settings_key_its_cache(tmp_path):
    from distill.teacher import teacher_cache_dir
    from distill.training import Runtime

    runtime = Runtime.create("fp32")
    base = JobConfig(**TINY, results_dir=str(tmp_path))
    folders = {
        teacher_cache_dir(base.replace(**change), "source", runtime, 0)
        for change in (
            {},
            {"teacher_dropout": None if base.teacher_dropout is not None else 0.0},
            {"teacher_dropout": 0.05},
            {"teacher_freeze_word_embeddings": not base.teacher_freeze_word_embeddings},
        )
    }
    assert len(folders) == 4
    assert teacher_cache_dir(base.replace(dropout=0.3), "source", runtime, 0) in folders  # the students' do not
    assert teacher_cache_dir(base, "source", runtime, 1) not in folders  # each teacher seed is its own teacher


def test_a_batch_split_into_passes_gets_the_whole_batchs_gradient():
    """max_tokens_per_pass changes memory, not the step: the passes' gradients add up to the whole batch's."""
    import torch

    from distill.data import encode, load_job_data, make_loader
    from distill.models import build_student, load_classifier, load_tokenizer, set_dropout
    from distill.plan import check_teacher_and_layers
    from distill.training import Runtime, accumulate, cross_entropy_step

    cfg = JobConfig(**TINY)
    source = check_teacher_and_layers(cfg).source
    tokenizer = load_tokenizer(source)
    train = encode(load_job_data(cfg)["train"], tokenizer, cfg.max_length)
    batch = next(iter(make_loader(train, tokenizer.pad_token_id, 16, 0, train=True)))
    rows, width = batch["input_ids"].shape
    runtime = Runtime.create("fp32")
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    torch.manual_seed(0)
    model = set_dropout(build_student(load_classifier(source), [0, 2, 4]), 0.0)

    def gradients(max_tokens: int) -> tuple[float, dict[str, float], list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        loss, parts = accumulate(model, batch, cross_entropy_step, max_tokens, runtime, scaler)
        return loss.item(), parts, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    whole = gradients(0)
    split = gradients(width * 3)  # passes of 3 rows: 6 passes, the last one shorter
    assert rows == 16 and width * 3 < rows * width
    assert split[0] == pytest.approx(whole[0], rel=1e-5)
    assert split[1]["ce"] == pytest.approx(whole[1]["ce"], rel=1e-5)
    assert len(split[2]) == len(whole[2])
    for a, b in zip(split[2], whole[2], strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


ONEDNN_PROBE = """
import os, torch, distill
def resident_mib():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) / 1024
layers = torch.nn.Sequential(torch.nn.Linear(384, 1536), torch.nn.GELU(), torch.nn.Linear(1536, 384))
def step(rows):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layers(torch.randn(rows, 384)).sum().backward()
step(64)
before = resident_mib()
for rows in range(100, 400):  # 300 shapes, as length-grouped batches have
    step(rows)
print(os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"], resident_mib() - before)
"""


def onednn_probe(capacity: str | None) -> tuple[str, float]:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    env |= {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": capacity} if capacity else {}
    done = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    kept, growth = done.stdout.split()
    return kept, float(growth)


@pytest.mark.slow
@pytest.mark.skipif(bf16_is_emulated(), reason="no AVX-512: bf16 never reaches oneDNN here, and jobs train in fp32")
def test_the_onednn_primitive_cache_is_capped_unless_the_environment_says_otherwise():
    """distill caps oneDNN's cache of compiled bf16 matmuls before any runs (bench.onednn_cache: 0.3 to 0.4 GiB
    less, for a slower job). Measured here by what 300 matmul shapes add to the process; a user's own capacity
    is kept."""
    capped, uncapped = onednn_probe(None), onednn_probe("1024")
    assert capped[0] == "16" and uncapped[0] == "1024"
    assert capped[1] < uncapped[1] - 100, (capped, uncapped)  # MiB: the cache no longer holds every shape
