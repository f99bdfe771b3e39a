import pytest

from distill.config import ConfigError
from distill.strategies import STRATEGIES, StrategyContext, parse_layer_list, resolve_layers, strategy_label


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("top_k", [0, 1, 2]),
        ("bottom_k", [3, 4, 5]),
        ("odd", [0, 2, 4]),
        ("even", [1, 3, 5]),
        ("uniform", [0, 2, 5]),
    ],
)
def test_named_strategies_on_six_layers(name, expected):
    assert resolve_layers(name, StrategyContext(6, 3)) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("top_k", [0, 1, 2, 3, 4, 5]),
        ("bottom_k", [6, 7, 8, 9, 10, 11]),
        ("odd", [0, 2, 4, 6, 8, 10]),
        ("even", [1, 3, 5, 7, 9, 11]),
        ("distilbert", [0, 2, 4, 7, 9, 11]),
        ("uniform", [0, 2, 4, 7, 9, 11]),
    ],
)
def test_named_strategies_on_bert_base(name, expected):
    assert resolve_layers(name, StrategyContext(12, 6)) == expected


def test_importance_picks_the_layers_that_cost_most():
    scores = [0.30, 0.01, 0.20, 0.00, 0.05, 0.10]
    assert resolve_layers("importance", StrategyContext(6, 3, lambda: scores)) == [0, 2, 5]


def test_explicit_layer_list():
    assert parse_layer_list("0, 2,4") == [0, 2, 4]
    assert parse_layer_list("top_k") is None
    assert resolve_layers("0,2,4,7,9,11", StrategyContext(12, 6)) == [0, 2, 4, 7, 9, 11]
    assert strategy_label("0,2,4") == "layers-0-2-4"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("0,6", "out of range"),
        ("-1,2", "out of range"),
        ("1,1", "repeats"),
        ("0,1,2,3,4,5", "fewer layers"),
        ("2,1", "ascending"),
        ("nope", "unknown strategy"),
    ],
)
def test_bad_layer_lists(spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve_layers(spec, StrategyContext(6, 3))


def test_student_as_deep_as_teacher_is_refused():
    with pytest.raises(ConfigError, match="fewer layers"):
        resolve_layers("top_k", StrategyContext(6, 6))


def test_distilbert_needs_bert_base_shape():
    with pytest.raises(ConfigError, match="12-layer"):
        resolve_layers("distilbert", StrategyContext(6, 3))


def test_every_strategy_is_registered_with_a_description():
    from distill.strategies import DESCRIPTIONS

    assert set(STRATEGIES) == set(DESCRIPTIONS)
    assert {"top_k", "bottom_k", "odd", "even", "distilbert", "importance"} <= set(STRATEGIES)
