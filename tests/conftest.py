"""Shared fixtures. Tests run offline: the Hub is the one thing that cannot exist here."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# An app started by a test with nothing to chat with must not train the quick student by itself (a Space does);
# tests/test_quick_start.py turns it on.
os.environ.setdefault("DISTILL_QUICK_STUDENT_ON_START", "never")

import pytest
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

from distill.data import LABELS
from distill.hub import embedded_teacher_path


@pytest.fixture(scope="session")
def embedded_tokenizer():
    return AutoTokenizer.from_pretrained(embedded_teacher_path())


def save_tiny(folder, tokenizer, model_class, **labels):
    """A tiny randomly initialised 4-layer BERT of `model_class` in `folder`, with the real MiniLM tokenizer."""
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **labels,
    )
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, embedded_tokenizer):
    """A tiny 4-layer BERT that already classifies the MNLI labels (no fine-tuning in a job)."""
    labels = {"num_labels": 3, "id2label": dict(enumerate(LABELS)), "label2id": {n: i for i, n in enumerate(LABELS)}}
    return save_tiny(tmp_path_factory.mktemp("tiny-bert"), embedded_tokenizer, BertForSequenceClassification, **labels)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory, embedded_tokenizer):
    """A tiny 4-layer BERT encoder with no head: a pre-trained model that a job fine-tunes."""
    return save_tiny(tmp_path_factory.mktemp("tiny-encoder"), embedded_tokenizer, BertModel)


@pytest.fixture(scope="session")
def good_run(tmp_path_factory, tiny_bert):
    """A finished run (teacher, top_k-seed0, even-seed0) on the tiny teacher, which already classifies MNLI
    labels (no fine-tuning); tests copy it (`copy_run`) and damage or edit the copy."""
    from tiny import TINY

    from distill.config import JobConfig
    from distill.job import run_job

    cfg = JobConfig.from_dict(
        {**TINY, "teacher": str(tiny_bert), "strategies": ["top_k", "even"], "run_name": "good"}
        | {"results_dir": str(tmp_path_factory.mktemp("source"))}
    )
    run = run_job(cfg)
    assert run.status()["state"] == "completed"
    return run


@pytest.fixture
def tiny_cfg(tiny_bert, tmp_path):
    """A job of seconds on the tiny teacher (two students), writing into the test's own folder."""
    from tiny import TINY

    from distill.config import JobConfig

    return JobConfig.from_dict(
        {**TINY, "teacher": str(tiny_bert), "strategies": ["top_k", "even"], "results_dir": str(tmp_path)}
    )


@pytest.fixture
def public_space(monkeypatch):
    """The app in this process behaves as the original public Space while the test runs."""
    from distill import space

    monkeypatch.setenv("SPACE_ID", space.settings()["original_space"])


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("DISTILL_RESULTS_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The real app, launched in this process on a free local port, with its own results folder.

    Yields (url, results_dir). Session-scoped: the API and browser tests share one server, as visitors would.
    """
    import importlib
    import socket

    results = tmp_path_factory.mktemp("app-runs")
    os.environ["DISTILL_RESULTS_DIR"] = str(results)
    import app as app_module

    app_module = importlib.reload(app_module)  # pick up the results folder set above
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app_module.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", results
    finally:
        app_module.demo.close()
        os.environ.pop("DISTILL_RESULTS_DIR", None)


# Fixtures that make a test slow: the app's server (seconds to start, jobs in it), and jobs that train the embedded
# MiniLM (`finished_run`, `fast_run`, `full_run`) or fifteen tiny students from three teachers (`three_teachers`).
SLOW_FIXTURES = {"app_server", "finished_run", "fast_run", "full_run", "three_teachers"}


def pytest_collection_modifyitems(items):
    """`-m "not slow"` is the quick loop: a test that starts a server or trains more than a tiny model is slow,
    whether or not it says so (a marker would be forgotten on the next one)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
