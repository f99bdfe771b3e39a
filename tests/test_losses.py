import functools
import math

import pytest
import torch

from distill.config import JobConfig
from distill.losses import LOSSES, LossInputs, combined_loss, loss_weights

approx = functools.partial(pytest.approx, abs=1e-6)


def inputs(student, teacher, labels=(0, 1), temperature=2.0):
    return LossInputs(torch.tensor(student), torch.tensor(labels), torch.tensor(teacher), temperature)


def test_kl_and_cosine_vanish_when_student_equals_teacher():
    x = inputs([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], [[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    assert LOSSES["kl"](x).item() == approx(0.0)
    assert LOSSES["cos"](x).item() == approx(0.0)


def test_kl_matches_a_hand_computation_with_temperature_squared():
    s, t, temp = [[0.0, 1.0, 2.0]], [[2.0, 1.0, 0.0]], 2.0
    p_t = torch.softmax(torch.tensor(t) / temp, -1)[0]
    p_s = torch.softmax(torch.tensor(s) / temp, -1)[0]
    expected = float((p_t * (p_t.log() - p_s.log())).sum()) * temp**2
    assert LOSSES["kl"](inputs(s, t, labels=(0,), temperature=temp)).item() == approx(expected)


def test_cosine_of_opposite_logits_is_two():
    assert LOSSES["cos"](inputs([[1.0, 0.0, 0.0]], [[-1.0, 0.0, 0.0]], labels=(0,))).item() == approx(2.0)


def test_ce_is_cross_entropy_on_hard_labels():
    x = inputs([[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]], labels=(2,))
    assert LOSSES["ce"](x).item() == approx(math.log(3))


def test_combined_loss_weights_each_term():
    cfg = JobConfig(weight_ce=1.0, weight_kl=0.0, weight_cos=2.0)
    weights = loss_weights(cfg)
    assert weights == {"ce": 1.0, "cos": 2.0}
    x = inputs([[1.0, 0.0, 0.0]], [[-1.0, 0.0, 0.0]], labels=(0,))
    total, parts = combined_loss(x, weights)
    assert total.item() == approx(parts["ce"] + 2 * parts["cos"])


def test_hidden_losses():
    h = torch.randn(4, 3, 8)
    x = LossInputs(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), student_hidden=h, teacher_hidden=h.clone())
    assert LOSSES["hidden_mse"](x).item() == approx(0.0)
    assert LOSSES["hidden_cosine"](x).item() == approx(0.0)
    x.teacher_hidden = h + 1
    assert LOSSES["hidden_mse"](x).item() == approx(1.0)
