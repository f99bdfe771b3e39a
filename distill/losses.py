"""Distillation losses: each a registered function of LossInputs; a job combines them with its weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import JobConfig


@dataclass
class LossInputs:
    student_logits: torch.Tensor
    labels: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    temperature: float = 1.0
    student_hidden: torch.Tensor | None = None  # (batch, student layers, hidden): [CLS] after each layer
    teacher_hidden: torch.Tensor | None = None  # (batch, student layers, hidden): [CLS] after the source layers


LossFn = Callable[[LossInputs], torch.Tensor]
LOSSES: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    def add(fn: LossFn) -> LossFn:
        LOSSES[name] = fn
        return fn

    return add


@register_loss("ce")
def hard_label_ce(x: LossInputs) -> torch.Tensor:
    return F.cross_entropy(x.student_logits.float(), x.labels)


@register_loss("kl")
def softened_kl(x: LossInputs) -> torch.Tensor:
    """KL(teacher || student) on temperature-softened distributions, times T^2 so gradients keep their scale."""
    t = x.temperature
    student = F.log_softmax(x.student_logits.float() / t, dim=-1)
    teacher = F.log_softmax(x.teacher_logits.float() / t, dim=-1)
    return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * t * t


@register_loss("cos")
def logit_cosine(x: LossInputs) -> torch.Tensor:
    """CosineEmbeddingLoss with target 1 on the logits: mean of 1 - cos(student, teacher)."""
    return (1 - F.cosine_similarity(x.student_logits.float(), x.teacher_logits.float(), dim=-1)).mean()


@register_loss("hidden_mse")
def hidden_mse(x: LossInputs) -> torch.Tensor:
    return F.mse_loss(x.student_hidden.float(), x.teacher_hidden.float())


@register_loss("hidden_cosine")
def hidden_cosine(x: LossInputs) -> torch.Tensor:
    return (1 - F.cosine_similarity(x.student_hidden.float(), x.teacher_hidden.float(), dim=-1)).mean()


def loss_weights(cfg: JobConfig) -> dict[str, float]:
    """The job's non-zero loss weights by loss name."""
    weights = {
        "ce": cfg.weight_ce,
        "kl": cfg.weight_kl,
        "cos": cfg.weight_cos,
        f"hidden_{cfg.hidden_loss}": cfg.weight_hidden,
    }
    return {name: w for name, w in weights.items() if w > 0}


def combined_loss(x: LossInputs, weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the named losses, and each term's value for the curves."""
    parts = {name: LOSSES[name](x) for name in weights}
    total = sum(weights[name] * value for name, value in parts.items())
    return total, {name: value.item() for name, value in parts.items()}
