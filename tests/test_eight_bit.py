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


def test_eight_bit_adamw_trains_like_adamw(tiny_bert):
    import bitsandbytes as bnb

    def final_loss(eight_bit: bool) -> tuple[float, float]:
        torch.manual_seed(0)
        model = load_classifier(str(tiny_bert)).eval()  # eval: no dropout, so the two runs are comparable
        optimizer = make_optimizer(model, 1e-3, 0.0, eight_bit=eight_bit)
        assert isinstance(optimizer, bnb.optim.AdamW8bit) == eight_bit
        ids, labels = torch.randint(1000, 2000, (8, 16)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
        losses = []
        for _ in range(20):
            loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        return losses[0], losses[-1]

    (first, last), (_, last_8bit) = final_loss(False), final_loss(True)
    assert last < first and last_8bit < first
    assert abs(last_8bit - last) < 0.05
