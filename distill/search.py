"""What a job trains: one variant per strategy, or, in search mode, one per hyperparameter setting.

A search distils the job's one strategy (`JobConfig` refuses more) once per combination of temperature, learning
rate and loss weights, so each setting becomes one row of the comparison table, with its spread over seeds and a paired
test against the best setting.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .config import JobConfig, parse_loss_weights
from .strategies import HARD_LABELS_ONLY, strategy_label


@dataclass
class Variant:
    label: str  # its row in the comparison: a strategy label, or a search setting
    strategy: str  # the layer strategy (a name or an explicit list)
    cfg: JobConfig  # the settings it trains with


def variants(cfg: JobConfig) -> list[Variant]:
    if not cfg.search:
        return [Variant(strategy_label(spec), spec, trained_as(spec, cfg)) for spec in cfg.strategies]
    grid = itertools.product(cfg.search_temperatures, cfg.search_learning_rates, cfg.search_loss_weights)
    out = []
    for temperature, learning_rate, weights in grid:
        ce, kl, cos = parse_loss_weights(weights)
        label = f"T{temperature:g}-lr{learning_rate:g}-ce{ce:.2g}-kl{kl:.2g}-cos{cos:.2g}"
        changes = {"temperature": temperature, "learning_rate": learning_rate}
        changes.update(weight_ce=ce, weight_kl=kl, weight_cos=cos)
        out.append(Variant(label, cfg.strategies[0], cfg.replace(**changes)))  # its one strategy
    return out


def trained_as(strategy: str, cfg: JobConfig) -> JobConfig:
    """The settings a strategy trains with: the job's, or for the no-distillation control the hard labels alone."""
    if strategy in HARD_LABELS_ONLY:
        return cfg.replace(weight_ce=1.0, weight_kl=0.0, weight_cos=0.0, weight_hidden=0.0)
    return cfg


SEARCHED_SETTINGS = ("temperature", "learning_rate", "weight_ce", "weight_kl", "weight_cos")


def searched_settings(cfg: JobConfig) -> dict[str, float]:
    """The searched settings of a variant, as columns of its summary row (the weights rounded: they were scaled)."""
    values = {name: getattr(cfg, name) for name in SEARCHED_SETTINGS}
    return {name: round(value, 4) if name.startswith("weight_") else value for name, value in values.items()}
