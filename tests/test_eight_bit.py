"""8-bit teacher and 8-bit AdamW through bitsandbytes, on this CPU."""

import torch

from distill.models import load_classifier
from distill.training import make_optimizer


def test_eight_bit_teacher_keeps_its_head_in_full_precision(tiny_bert):
    import bitsandbytes as bnb

    full = load_classifier(str(tiny_bert)).eval()
    quantized = load_classifier(str(tiny_bert), eight_bit=True).eval()
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in quantized.modules())
    assert not isinstance(quantized.classifier, bnb.nn.Linear8bitLt)
    assert quantized.classifier.weight.dtype == torch.float32
    ids = torch.randint(1000, 2000, (4, 16))
    with torch.no_grad():
        a, b = full(input_ids=ids).logits, quantized(input_ids=ids).logits
    assert torch.allclose(a, b, atol=0.1), (a - b).abs().max()


def test_eight_bit_adamw_trains(tiny_bert):
    import bitsandbytes as bnb

    model = load_classifier(str(tiny_bert)).train()
    optimizer = make_optimizer(model, 1e-3, 0.0, eight_bit=True)
    assert isinstance(optimizer, bnb.optim.AdamW8bit)
    ids, labels = torch.randint(1000, 2000, (8, 16)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8
