"""Shared fixtures. Tests run offline: the Hub is the one thing that cannot exist here."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from distill.data import LABELS
from distill.hub import embedded_teacher_path


@pytest.fixture(scope="session")
def embedded_tokenizer():
    return AutoTokenizer.from_pretrained(embedded_teacher_path())


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, embedded_tokenizer):
    """A tiny randomly initialised 4-layer BERT classifier folder, with the real MiniLM tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=embedded_tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=3,
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    embedded_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("DISTILL_RESULTS_DIR", str(folder))
    return folder
