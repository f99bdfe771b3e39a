"""Cached teacher outputs must equal a fresh forward pass: that is what makes reusing them exact."""

import numpy as np
import torch

from distill.config import JobConfig
from distill.data import encode, load_job_data, make_loader
from distill.evaluation import forward_all, model_inputs
from distill.models import load_classifier


def test_cached_outputs_equal_fresh_forward_passes(tiny_bert, embedded_tokenizer):
    data = load_job_data(JobConfig(train_size=100))
    enc = encode(data["train"], embedded_tokenizer, 64)
    teacher = load_classifier(str(tiny_bert)).eval()
    loader = make_loader(enc, embedded_tokenizer.pad_token_id, 16, train=False)
    logits, hidden = forward_all(teacher, loader, len(enc), "fp32", cls_hidden=True)
    assert hidden.shape == (100, 5, 32)
    train_loader = make_loader(enc, embedded_tokenizer.pad_token_id, 8, seed=1, train=True)
    with torch.no_grad():
        for batch in train_loader:  # a different batching, as in training
            out = teacher(**model_inputs(batch), output_hidden_states=True)
            rows = batch["rows"].numpy()
            np.testing.assert_allclose(out.logits.numpy(), logits[rows], atol=1e-5)
            np.testing.assert_allclose(
                out.hidden_states[2][:, 0].numpy(), hidden[rows, 2].astype(np.float32), atol=2e-2, rtol=1e-2
            )  # stored in fp16
