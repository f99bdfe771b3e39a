"""Hyperparameter search as a job mode (one student per setting, each trained with its own settings), and the
random-initialisation control."""

import pytest
from safetensors.torch import load_file

from distill.comparison import comparison
from distill.config import ConfigError, JobConfig
from distill.job import run_job
from distill.search import variants
from distill.tables import display_rows


def test_variants_cover_the_grid_with_normalised_weights():
    cfg = JobConfig(
        search=True,
        strategies=["odd"],
        search_temperatures=[1, 4],
        search_learning_rates=[1e-4],
        search_loss_weights=["1:1:1", "2:2:0"],
    )
    found = variants(cfg)
    assert [v.label for v in found] == [
        "T1-lr0.0001-ce0.33-kl0.33-cos0.33",
        "T1-lr0.0001-ce0.5-kl0.5-cos0",
        "T4-lr0.0001-ce0.33-kl0.33-cos0.33",
        "T4-lr0.0001-ce0.5-kl0.5-cos0",
    ]
    assert {v.strategy for v in found} == {"odd"}
    assert [(v.cfg.temperature, v.cfg.weight_ce, v.cfg.weight_cos) for v in found][1] == (1.0, 0.5, 0.0)
    assert [v.label for v in variants(cfg.replace(search=False, strategies=["odd", "even"]))] == ["odd", "even"]


@pytest.mark.parametrize("strategies", [["odd", "even"], ["top_k", "0,2"], ["top_k", "bottom_k", "odd", "even"]])
def test_a_search_over_several_strategies_is_refused_at_strategies(strategies):
    """A search tunes one strategy: with several it used to tune the first and drop the others in silence."""
    refusal = f"a search tunes the settings of one strategy; choose one, not {len(strategies)}"
    with pytest.raises(ConfigError, match=refusal) as err:
        JobConfig(search=True, strategies=strategies)
    assert err.value.setting == "strategies"


@pytest.mark.slow
def test_search_job_trains_each_setting_with_its_own_learning_rate(tiny_bert, tmp_path):
    cfg = JobConfig(
        teacher=str(tiny_bert),  # already an MNLI classifier: no fine-tuning
        train_size=64,
        eval_size=32,
        epochs=1,
        latency_examples=8,
        strategies=["top_k"],
        search=True,
        search_temperatures=[2.0],
        search_learning_rates=[1e-12, 1e-2],
        search_loss_weights=["1:1:1"],
        seeds=[0],
        results_dir=str(tmp_path),
        run_name="search",
    )
    run = run_job(cfg)
    assert run.status()["state"] == "completed"
    rows = {r["model"]: r for r in run.summary()}
    frozen, moved = "T2-lr1e-12-ce0.33-kl0.33-cos0.33-seed0", "T2-lr0.01-ce0.33-kl0.33-cos0.33-seed0"
    assert set(rows) == {"teacher", frozen, moved}
    assert rows[moved]["learning_rate"] == 0.01 and rows[moved]["weight_kl"] == pytest.approx(1 / 3, abs=1e-4)

    teacher = load_file(run.model_dir("teacher") / "model.safetensors")

    def changed(model: str) -> float:  # largest change of a copied layer-0 weight against the teacher
        student = load_file(run.model_dir(model) / "model.safetensors")
        key = next(k for k in student if "layer.0.attention.self.query.weight" in k)
        return float((student[key] - teacher[key]).abs().max())

    assert changed(frozen) < 1e-6 < 1e-3 < changed(moved)

    table = comparison(run)
    assert [r["strategy"] for r in table] == ["teacher", frozen.removesuffix("-seed0"), moved.removesuffix("-seed0")]
    shown = display_rows(table)
    assert list(shown[0])[:4] == ["setting", "temperature (T)", "learning rate (lr)", "weight: labels (ce)"]
    assert shown[2]["learning rate (lr)"] == "0.01"


@pytest.mark.slow
def test_random_control_in_a_job_is_recorded_without_teacher_layers(tiny_bert, tmp_path):
    cfg = JobConfig(
        teacher=str(tiny_bert),
        train_size=64,
        eval_size=32,
        epochs=1,
        latency_examples=8,
        strategies=["random", "top_k"],
        seeds=[0, 1],
        results_dir=str(tmp_path),
        run_name="controls",
    )
    run = run_job(cfg)
    assert run.status()["state"] == "completed"
    rows = {r["model"]: r for r in run.summary()}
    assert rows["random-seed0"]["layers"] == [] and rows["top_k-seed0"]["layers"] == [0, 1]
    starts = sorted(r["model"] for r in run.metrics if r["epoch"] == 0)
    assert starts == ["random-seed0", "random-seed1", "top_k-seed0"]  # copied layers: the same model every seed
    shown = {d["strategy"]: d["teacher layers"] for d in display_rows(comparison(run))}
    assert shown["random"] == "none (random start)" and shown["top_k"] == "0,1"
