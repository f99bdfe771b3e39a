"""Which teacher layers a student starts from. Indices are 0-based: layer 0 sits next to the embeddings.

A strategy is one registered function from a StrategyContext to a list of teacher layer indices. A control is a
strategy that changes one thing about `top_k` (the first k layers, which is also what dropping the top layers
of a pre-trained model keeps), trained in the same run, from the same teacher(s) and seeds as the others:

- `random`: the encoder layers start from random weights: what copying layers is worth;
- `pretrained-only`: the layers come from the pre-trained encoder, not the fine-tuned teacher, then distilled:
  what copying *fine-tuned* layers is worth;
- `no-distillation`: trained on the hard labels alone, at the same learning rate (layer dropping plus
  fine-tuning, as Sajjad et al.): what the teacher's signal is worth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config import ConfigError


@dataclass
class StrategyContext:
    n_teacher: int
    n_student: int
    layer_importance: Callable[[], list[float]] | None = None  # data-driven scores, computed on first use


Strategy = Callable[[StrategyContext], list[int]]
STRATEGIES: dict[str, Strategy] = {}
DESCRIPTIONS: dict[str, str] = {}
RANDOM_INIT: set[str] = set()  # controls whose students' encoder layers start from random weights
PRETRAINED_LAYERS: set[str] = set()  # controls whose students' layers come from the pre-trained encoder
HARD_LABELS_ONLY: set[str] = set()  # controls trained with no teacher signal
CONTROLS: set[str] = set()


def register_strategy(
    name: str, description: str, *, random_init: bool = False, pretrained: bool = False, hard_labels: bool = False
) -> Callable[[Strategy], Strategy]:
    def add(fn: Strategy) -> Strategy:
        STRATEGIES[name], DESCRIPTIONS[name] = fn, description
        flags = ((random_init, RANDOM_INIT), (pretrained, PRETRAINED_LAYERS), (hard_labels, HARD_LABELS_ONLY))
        for flag, group in flags:
            if flag:
                group.add(name)
                CONTROLS.add(name)
        return fn

    return add


def _spread(candidates: list[int], k: int) -> list[int]:
    """k of the candidates, evenly spaced, always keeping the first and the last."""
    if k > len(candidates):
        raise ConfigError(f"only {len(candidates)} layers qualify, but the student has {k}")
    if k == 1:
        return [candidates[0]]
    return [candidates[round(x)] for x in np.linspace(0, len(candidates) - 1, k)]


@register_strategy("top_k", "the first k layers, 0..k-1 (Top-K in the experiment this project grew from)")
def top_k(ctx: StrategyContext) -> list[int]:
    return list(range(ctx.n_student))


@register_strategy("bottom_k", "the last k layers, n-k..n-1 (Bottom-K in the experiment this project grew from)")
def bottom_k(ctx: StrategyContext) -> list[int]:
    return list(range(ctx.n_teacher - ctx.n_student, ctx.n_teacher))


@register_strategy("odd", "odd-numbered layers counting from 1 (1st, 3rd, ...), i.e. 0-based 0, 2, 4, ...")
def odd(ctx: StrategyContext) -> list[int]:
    return _spread(list(range(0, ctx.n_teacher, 2)), ctx.n_student)


@register_strategy("even", "even-numbered layers counting from 1 (2nd, 4th, ...), i.e. 0-based 1, 3, 5, ...")
def even(ctx: StrategyContext) -> list[int]:
    return _spread(list(range(1, ctx.n_teacher, 2)), ctx.n_student)


@register_strategy("uniform", "k layers evenly spread over the teacher, first and last included")
def uniform(ctx: StrategyContext) -> list[int]:
    return _spread(list(range(ctx.n_teacher)), ctx.n_student)


@register_strategy("distilbert", "DistilBERT's choice 0, 2, 4, 7, 9, 11 (12-layer teacher, 6-layer student)")
def distilbert(ctx: StrategyContext) -> list[int]:
    if (ctx.n_teacher, ctx.n_student) != (12, 6):
        raise ConfigError(
            f"distilbert needs a 12-layer teacher and a 6-layer student, not {ctx.n_teacher} and {ctx.n_student}"
        )
    return [0, 2, 4, 7, 9, 11]


@register_strategy("importance", "data-driven: the k layers whose removal costs the fine-tuned teacher most accuracy")
def importance(ctx: StrategyContext) -> list[int]:
    if ctx.layer_importance is None:
        raise ConfigError("the importance strategy needs the teacher and data (run it inside a job)")
    scores = ctx.layer_importance()
    ranked = sorted(range(ctx.n_teacher), key=lambda i: (-scores[i], i))
    return sorted(ranked[: ctx.n_student])


@register_strategy(
    "random",
    "control: k encoder layers with random weights (embeddings and head from the teacher), distilled the same way",
    random_init=True,
)
def random_layers(ctx: StrategyContext) -> list[int]:
    return list(range(ctx.n_student))  # which teacher layers lend their shape does not matter: all are re-drawn


@register_strategy(
    "pretrained-only",
    "control: top_k's layers copied from the pre-trained encoder, not the fine-tuned teacher, then distilled",
    pretrained=True,
)
@register_strategy(
    "no-distillation",
    "control: top_k's layers trained on the hard labels alone, same learning rate, no teacher signal",
    hard_labels=True,
)
def top_k_control(ctx: StrategyContext) -> list[int]:
    return top_k(ctx)  # each control changes one thing about top_k, not its layers


def parse_layer_list(spec: str) -> list[int] | None:
    """'0,2,4' -> [0, 2, 4]; None when spec is not a list of integers."""
    parts = [p.strip() for p in spec.replace(" ", ",").split(",") if p.strip()]
    if not parts or not all(p.lstrip("-").isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def strategy_label(spec: str) -> str:
    """A name usable in tables and folder names: 'top_k', or 'layers-0-2-4' for an explicit list."""
    layers = parse_layer_list(spec)
    return spec if layers is None else "layers-" + "-".join(str(i) for i in layers)


def resolve_layers(spec: str, ctx: StrategyContext) -> list[int]:
    """The teacher layers for a strategy name or explicit list, checked against the teacher's depth."""
    layers = parse_layer_list(spec)
    if layers is None:
        if spec not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {spec!r}; known: {', '.join(STRATEGIES)}, or a layer list such as 0,2,4"
            )
        if ctx.n_student >= ctx.n_teacher:
            raise ConfigError(
                f"student_layers must give fewer layers than the teacher's {ctx.n_teacher}, not {ctx.n_student}",
                "student_layers",
            )
        layers = STRATEGIES[spec](ctx)
    check_layers(layers, ctx.n_teacher)
    return layers


def check_layers(layers: list[int], n_teacher: int) -> None:
    bad = [i for i in layers if not 0 <= i < n_teacher]
    if bad:
        raise ConfigError(f"layer index {bad[0]} is out of range: the teacher's layers are 0..{n_teacher - 1}")
    if len(set(layers)) != len(layers):
        raise ConfigError(f"layer list {layers} repeats a layer")
    if len(layers) >= n_teacher:
        raise ConfigError(f"a layer list must have fewer layers than the teacher's {n_teacher}, not {len(layers)}")
    if layers != sorted(layers):
        raise ConfigError(f"layer list {layers} must be in ascending order")
