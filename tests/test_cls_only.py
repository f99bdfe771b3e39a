"""The last layer computed for [CLS] only (`cls_only_last_layer`): the same logits and gradients as the full
model, for every family it claims, with less work; other models are left as they are."""

import copy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

from distill.hub import embedded_teacher_path
from distill.models import FIRST_TOKEN_HEADS, build_student, cls_only_last_layer, encoder_layers, load_classifier

SIZES = dict(vocab_size=99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48)
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
CONFIGS = {
    "bert": BertConfig(**SIZES, **NO_DROPOUT),
    "roberta": RobertaConfig(**SIZES, **NO_DROPOUT, pad_token_id=1, max_position_embeddings=40),
    "xlm-roberta": XLMRobertaConfig(**SIZES, **NO_DROPOUT, pad_token_id=1, max_position_embeddings=40),
    "electra": ElectraConfig(**SIZES, **NO_DROPOUT, embedding_size=16),
}


def batch(rows: int = 5, width: int = 12) -> dict[str, torch.Tensor]:
    """Rows of different lengths, padded on the right as the tokenizers pad."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 99, (rows, width), generator=generator)
    mask = torch.ones(rows, width, dtype=torch.long)
    for row in range(rows):
        mask[row, width - 2 * row :] = 0
    return {"input_ids": ids.masked_fill(mask == 0, 1), "attention_mask": mask}


def logits_and_gradients(model, inputs, cls_only: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with cls_only_last_layer(model, cls_only):
        logits = model(**inputs).logits
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0, 1])).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_every_claimed_family_has_a_case():
    assert set(CONFIGS) == set(FIRST_TOKEN_HEADS)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_same_logits_and_gradients_as_the_full_model(family, attention):
    torch.manual_seed(0)
    config = CONFIGS[family].__class__(**CONFIGS[family].to_dict(), num_labels=3)
    config._attn_implementation = attention
    model = AutoModelForSequenceClassification.from_config(config).train()  # training mode, dropout 0
    inputs = batch()
    full_logits, full_grads = logits_and_gradients(model, inputs, cls_only=False)
    logits, grads = logits_and_gradients(model, inputs, cls_only=True)
    torch.testing.assert_close(logits, full_logits, rtol=1e-5, atol=1e-6)
    assert grads.keys() == full_grads.keys()
    for name, grad in grads.items():
        if name.endswith("key.bias"):  # the key bias adds a constant to a query's scores: its gradient is ~0
            torch.testing.assert_close(grad, full_grads[name], rtol=0, atol=1e-6)
        else:
            torch.testing.assert_close(grad, full_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert "forward" not in vars(encoder_layers(model)[-1])  # the model is itself again after the block


def test_padded_rows_are_masked_in_the_cls_attention():
    """Padding changes a row's logits in the full model and identically with [CLS] only."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(CONFIGS["bert"].__class__(**SIZES, num_labels=3)).eval()
    inputs = batch()
    unmasked = {**inputs, "attention_mask": torch.ones_like(inputs["attention_mask"])}
    with torch.no_grad(), cls_only_last_layer(model):
        masked_logits, unmasked_logits = model(**inputs).logits, model(**unmasked).logits
    assert not torch.allclose(masked_logits[1:], unmasked_logits[1:])  # rows 1-4 have padding
    torch.testing.assert_close(masked_logits[0], unmasked_logits[0])  # row 0 has none
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, masked_logits, rtol=1e-5, atol=1e-6)


def test_the_real_student_does_about_a_quarter_less_work():
    """MiniLM's 3-layer student: the last layer keeps only its keys and values for the whole sequence, 4h² of a
    layer's 24h² multiply-adds per token, so a forward costs about (2 + 1/6) / 3 of the full one."""
    student = build_student(load_classifier(embedded_teacher_path()), [0, 2, 4]).eval()
    inputs = {"input_ids": torch.randint(1000, 2000, (8, 40)), "attention_mask": torch.ones(8, 40, dtype=torch.long)}
    flops = {}
    for cls_only in (False, True):
        with torch.no_grad(), FlopCounterMode(display=False) as counter, cls_only_last_layer(student, cls_only):
            student(**inputs)
        flops[cls_only] = counter.get_total_flops()
    assert flops[True] / flops[False] == pytest.approx((2 + 1 / 6) / 3, abs=0.02)


def test_other_families_run_in_full():
    config = DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=48, num_labels=3)
    model = AutoModelForSequenceClassification.from_config(config)
    with cls_only_last_layer(model):
        assert all("forward" not in vars(layer) for layer in encoder_layers(model))
    with cls_only_last_layer(model, enabled=False):
        assert "forward" not in vars(encoder_layers(model)[-1])


def test_a_copy_made_inside_the_block_computes_with_its_own_weights():
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(CONFIGS["bert"].__class__(**SIZES, num_labels=3)).eval()
    inputs = batch()
    with torch.no_grad(), cls_only_last_layer(model):
        twin = copy.deepcopy(model)
        encoder_layers(twin)[-1].output.dense.weight.zero_()
        assert not torch.allclose(twin(**inputs).logits, model(**inputs).logits)
