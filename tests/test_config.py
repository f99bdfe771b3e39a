import ast
import inspect
import textwrap

import pytest

from distill import config
from distill.config import ConfigError, JobConfig


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -1}, "epochs"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"precision": "fp8"}, "precision"),
        ({"run_name": "../escape"}, "run_name"),
        ({"run_name": "a/b"}, "run_name"),
        ({"run_name": "a..b"}, "'..'"),
        ({"epochs": "three"}, "epochs must be a whole number, not 'three'"),
        ({"batch_size": 2.5}, "batch_size must be a whole number, not '2.5'"),
        ({"weight_ce": -1}, "weight_ce"),
        ({"weight_ce": 0, "weight_kl": 0, "weight_cos": 0}, "at least one"),
        ({"strategies": []}, "at least one strategy"),
        ({"seeds": [1, 1]}, "seed"),
        ({"max_length": 100000}, "max_length"),
        ({"hidden_loss": "l1"}, "hidden_loss"),
        ({"epochs": True}, "epochs must be a whole number, not 'True'"),
        ({"search": True, "search_temperatures": []}, "search_temperatures"),
        ({"search": True, "search_learning_rates": [0.0]}, "search_learning_rates"),
        ({"search": True, "search_loss_weights": ["1:1"]}, "ce:kl:cos"),
        ({"search": True, "search_loss_weights": ["0:0:0"]}, "ce:kl:cos"),
        ({"search": True, "search_loss_weights": ["a:b:c"]}, "ce:kl:cos"),
        ({"search": True, "search_temperatures": list(range(1, 66))}, "at most 64"),
        ({"learning_rate": 1e30}, r"learning_rate must be above 0 and at most 1\b"),
        ({"learning_rate": 1.5}, "learning_rate must be above 0 and at most 1"),
        ({"teacher_learning_rate": 1e30}, "teacher_learning_rate must be above 0 and at most 1"),
        ({"temperature": 1e30}, "temperature must be above 0 and at most 100"),
        ({"temperature": 101}, "temperature must be above 0 and at most 100"),
        ({"weight_ce": 1e30}, "weight_ce must be from 0 to 100"),
        ({"weight_kl": 1e30}, "weight_kl must be from 0 to 100"),
        ({"weight_cos": 1e30}, "weight_cos must be from 0 to 100"),
        ({"weight_hidden": 1e30}, "weight_hidden must be from 0 to 100"),
        ({"weight_kl": float("nan")}, "weight_kl must be from 0 to 100"),
        ({"search": True, "search_learning_rates": [1e30]}, "search_learning_rates must be above 0 and at most 1"),
        ({"search": True, "search_temperatures": [1e30]}, "search_temperatures must be above 0 and at most 100"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(changes, message):
    with pytest.raises(ConfigError, match=message) as refused:
        JobConfig.from_dict(changes)
    assert refused.value.setting in changes  # named, so a form shows it at its own field


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"run_name": "x" * 81}, "run_name"),
        ({"max_tokens_per_pass": -1}, "max_tokens_per_pass"),
        ({"max_length": 4}, "max_length"),
        ({"dropout": 1.5}, "dropout"),
        ({"teacher_dropout": -0.1}, "teacher_dropout"),
        ({"warmup_ratio": 1}, "warmup_ratio"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"train_size": -1}, "train_size"),
        ({"eval_size": 10**8}, "eval_size"),
        ({"student_train_size": 2.5}, "student_train_size"),
        ({"student_layers": 0}, "student_layers"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [-1]}, "seeds"),
        ({"teacher_seeds": [1, 1]}, "teacher_seeds"),
        ({"seeds": [0, 1, 2], "teacher_seeds": [0, 1]}, "teacher_seeds"),
        ({"data_seed": 2**32}, "data_seed"),
        ({"teacher": "  "}, "teacher"),
        ({"data": ""}, "data"),
        ({"strategies": ["odd", "odd"]}, "strategies"),
        ({"latency_examples": 0}, "latency_examples"),
        ({"max_grad_norm": 0}, "max_grad_norm"),
        ({"teacher_epochs": 101}, "teacher_epochs"),
        ({"checkpoints": "maybe"}, "checkpoints"),
        ({"eval_data": 3}, "eval_data"),
        ({"search": True, "strategies": ["odd"], "search_loss_weights": []}, "search_loss_weights"),
        ({"search": True, "strategies": ["odd"], "search_loss_weights": ["1:x:1"]}, "search_loss_weights"),
        ({"search": True, "strategies": ["odd", "even"]}, "strategies"),
    ],
)
def test_every_refusal_names_its_setting(changes, setting):
    with pytest.raises(ConfigError) as refused:
        JobConfig.from_dict(changes)
    assert refused.value.setting == setting, str(refused.value)


def test_every_error_raised_in_validation_names_a_setting():
    """Walk the validation's code: each ConfigError it raises passes the setting at fault (a form attaches the
    message to that field), whatever case the tests above happen to cover."""
    checks = [JobConfig.validated, JobConfig._check_search, config._choice, config._at_most, config._positive]
    raised = []
    for check in [*checks, config._coerce]:
        tree = ast.parse(textwrap.dedent(inspect.getsource(check)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ConfigError":
                raised.append(node)
                assert len(node.args) == 2 or any(k.arg == "setting" for k in node.keywords), ast.unparse(node)
    assert len(raised) >= 25  # the walk found the raises


def test_largest_allowed_values_are_accepted():
    cfg = JobConfig.from_dict(
        {"learning_rate": 1, "teacher_learning_rate": 1, "temperature": 100, "weight_ce": 100, "weight_hidden": 100}
    )
    assert cfg.learning_rate == 1 and cfg.temperature == 100 and cfg.weight_hidden == 100


@pytest.mark.parametrize("name", ["learning_rate", "temperature", "weight_kl"])
def test_a_too_large_value_names_its_setting(name):
    with pytest.raises(ConfigError) as err:
        JobConfig.from_dict({name: 1e30})
    assert err.value.setting == name


def test_unknown_setting():
    with pytest.raises(ConfigError, match="unknown setting"):
        JobConfig.from_dict({"epoch": 3})


def test_values_from_strings_are_coerced():
    cfg = JobConfig.from_dict(
        {"epochs": "2", "seeds": "0 1 2", "teacher_8bit": "true", "train_size": 0, "strategies": "top_k; 0,2,4"}
    )
    assert cfg.epochs == 2 and cfg.seeds == [0, 1, 2] and cfg.teacher_8bit is True
    assert cfg.train_size is None and cfg.strategies == ["top_k", "0,2,4"]


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("epochs: 2\nstrategies: [top_k, even]\nseeds: [0, 1, 2]\n")
    cfg = JobConfig.from_yaml(path)
    assert (cfg.epochs, cfg.strategies, cfg.seeds) == (2, ["top_k", "even"], [0, 1, 2])
    assert JobConfig.from_dict(cfg.to_dict()) == cfg


def test_job_files_in_examples_are_valid():
    from pathlib import Path

    files = sorted((Path(__file__).parent.parent / "examples" / "jobs").glob("*.yaml"))
    assert files, "examples/jobs holds job files"
    for path in files:
        JobConfig.from_yaml(path)
