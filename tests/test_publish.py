"""Publishing a run to the Hub: model cards, the published tree (itself a run folder, with no server path), and
one-line refusals. Offline: the upload is only tried where it must fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, ModelCardData
from tiny import copy_run, cut
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill.cli import main
from distill.publish import EMBEDDED_TEACHER_ID, model_card, publish_tree
from distill.results import Run, list_runs, write_json

REPO = "you/distilled-students"
PAIRS = [
    ("A man inspects the uniform of a figure in some East Asian country.", "The man is sleeping."),
    ("An older and younger man smiling.", "Two men are smiling and laughing at the cats playing on the floor."),
]
FAKE_TOKEN = "hf_FakeTokenForPublishTests0123456789"


@pytest.fixture
def source(good_run, tmp_path) -> Run:
    """A copy of the finished run in a results folder, with the files a published run must leave out."""
    run = copy_run(good_run, tmp_path / "runs", "good")
    for name in ("checkpoints/top_k-seed0.pt", "cache/teacher_hidden.npy", "data/train/pairs.csv"):
        (run.path / name).parent.mkdir(parents=True, exist_ok=True)
        (run.path / name).write_text("not for publishing")
    run.set_owner("visitor")
    write_json(run.path / "heartbeat.json", {"time": 0})
    return run


def dry_run(run: Run, target: Path, capsys) -> list[Path]:
    code = main(["publish", run.name, "--results-dir", str(run.path.parent), "--repo", REPO, "--dry-run", str(target)])
    out = capsys.readouterr().out
    files = sorted(p for p in target.rglob("*") if p.is_file())
    assert code == 0
    assert out.strip() == f"wrote {len(files)} files to {target}"
    return files


def cards(tree: Path) -> dict[str, ModelCard]:
    return {p.parent.name: ModelCard.load(p) for p in sorted(tree.glob("models/*/README.md"))}


def test_model_cards_parse_and_hold_the_summary(source, tmp_path, capsys):
    tree = tmp_path / "published" / "good"
    dry_run(source, tree, capsys)
    rows = {r["model"]: r for r in source.summary()}
    found = cards(tree)
    assert sorted(found) == sorted(rows) == ["even-seed0", "teacher", "top_k-seed0"]
    for name, card in found.items():
        row, data = rows[name], card.data
        assert data.base_model is None  # the tiny teacher is a local folder: no path, no made-up id
        assert data.license == "apache-2.0"
        assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
        assert data.datasets == ["nyu-mll/glue"]
        assert {"knowledge-distillation", "mnli", row["strategy"]} <= set(data.tags)
        results = {(r.dataset_type, r.dataset_config, r.dataset_split, r.metric_type): r for r in data.eval_results}
        for split in ("validation_matched", "validation_mismatched"):
            result = results[("nyu-mll/glue", "mnli", split, "accuracy")]
            assert result.task_type == "text-classification"
            assert result.metric_value == row["splits"][split]["accuracy"]
        # the metadata round-trips (validate() needs the network)
        assert ModelCard(str(card)).data.to_dict() == data.to_dict()
        assert ModelCardData(**data.to_dict()).to_dict() == data.to_dict()
        text = card.text
        assert f"seed | {row['seed']} |" in text
        assert f'from_pretrained("{REPO}", subfolder="models/{name}")' in text
        assert f"| validation_matched | {row['splits']['validation_matched']['accuracy']:.2%} |" in text
        assert f"| {row['eval_rows']} |" in text
        assert ("one draw" in text) == (row["role"] == "student")  # the tiny teacher was used as is
    assert "teacher layers 0, 1, in that order" in found["top_k-seed0"].text
    assert "teacher layers 1, 3, in that order" in found["even-seed0"].text
    assert "all 4 of its encoder layers" in found["teacher"].text


def test_published_tree_is_a_run_without_private_files(source, good_run, tiny_bert, tmp_path, capsys):
    tree = tmp_path / "published" / "good"
    files = dry_run(source, tree, capsys)
    relative = {str(p.relative_to(tree)) for p in files}
    for kept in ("config.json", "status.json", "summary.json", "summary.csv", "labels.json", "predictions.json"):
        assert kept in relative
    assert {"metrics.jsonl", "environment.json", "README.md", "plots/accuracy_latency.png"} <= relative
    assert {f"probabilities/{m}.npz" for m in ("teacher", "top_k-seed0", "even-seed0")} <= relative
    for left_out in ("checkpoints", "cache", "data", "owner.json", "heartbeat.json"):
        assert not (tree / left_out).exists(), left_out
    assert not any(p.name.startswith(".") for p in files)

    published = Run(tree)
    published.check()
    assert published.summary() == source.summary()
    listed = list_runs([str(tree.parent)])
    assert [(r["run"], r["state"], r["models"]) for r in listed] == [("good", "completed", 3)]
    assert json.loads((tree / "config.json").read_text())["teacher"] == tiny_bert.name
    assert "pid" not in published.status() and "host" not in published.status()

    secrets = [str(p).encode() for p in (source.path.parent, good_run.path.parent, tiny_bert, tmp_path)]
    for path in files:
        content = path.read_bytes()
        assert not any(secret in content for secret in secrets), path

    readme = (tree / "README.md").read_text()
    assert ModelCard.load(tree / "README.md").data.license == "apache-2.0"
    assert "| strategy | layers |" in readme
    for name in ("teacher", "top_k-seed0", "even-seed0"):
        assert f"`models/{name}`" in readme


def test_published_models_predict_like_the_runs_own(source, tmp_path, capsys):
    tree = tmp_path / "published" / "good"
    dry_run(source, tree, capsys)
    for name in ("teacher", "top_k-seed0", "even-seed0"):
        predictions = []
        # the run's own folder, and the published one the way its card loads it (a subfolder of the repo)
        for folder, subfolder in ((source.model_dir(name), ""), (tree, f"models/{name}")):
            tokenizer = AutoTokenizer.from_pretrained(folder, subfolder=subfolder)
            model = AutoModelForSequenceClassification.from_pretrained(folder, subfolder=subfolder).eval()
            inputs = tokenizer([p for p, _ in PAIRS], [h for _, h in PAIRS], padding=True, return_tensors="pt")
            with torch.no_grad():
                predictions.append(model(**inputs).logits.argmax(-1).tolist())
        assert predictions[0] == predictions[1], name


def test_a_new_run_writes_a_card_per_model(good_run):
    for row in good_run.summary():
        card = ModelCard.load(good_run.model_dir(row["model"]) / "README.md")
        assert card.data.eval_results[0].metric_value == row["splits"]["validation_matched"]["accuracy"]
        assert f'from_pretrained("{good_run.name}/models/{row["model"]}")' in card.text
    good_run.check()  # a card in a model folder leaves the run intact


def test_embedded_teacher_and_users_data(source, tmp_path):
    config = source.config()
    write_json(source.path / "config.json", {**config, "teacher": "embedded"})
    rows = {r["model"]: r for r in source.summary()}
    card = model_card(source, rows["top_k-seed0"], REPO)
    assert card.data.base_model == EMBEDDED_TEACHER_ID
    assert card.data.datasets == ["nyu-mll/glue"]
    assert f"distilled from `{EMBEDDED_TEACHER_ID}`" in card.text

    secret = "/srv/uploads/visitor-7/pairs.csv"
    write_json(source.path / "config.json", {**config, "teacher": "bert-base-uncased", "data": secret})
    card = ModelCard(str(model_card(source, rows["top_k-seed0"], REPO)))
    assert card.data.base_model == "bert-base-uncased"
    assert card.data.datasets is None
    [result] = card.data.eval_results
    assert (result.dataset_type, result.dataset_split) == ("pairs.csv", "validation_matched")
    assert result.metric_value == rows["top_k-seed0"]["splits"]["validation_matched"]["accuracy"]
    tree = tmp_path / "tree"
    files = publish_tree(source, tree, REPO)
    assert json.loads((tree / "config.json").read_text())["data"] == "pairs.csv"
    assert not any(b"/srv/uploads" in p.read_bytes() for p in files)


@pytest.mark.parametrize("state", ["running", "stopped", "damaged"])
def test_publish_refuses_unfinished_or_damaged_runs(source, tmp_path, capsys, state):
    if state == "damaged":
        cut(source.path / "summary.json")
    else:
        source.set_status(state)
    target = tmp_path / "tree"
    code = main(["publish", str(source.path), "--repo", REPO, "--dry-run", str(target)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and state in err
    assert not target.exists()


def test_bad_repo_or_used_folder_is_refused_in_one_line(source, tmp_path, capsys):
    target = tmp_path / "tree"
    assert main(["publish", str(source.path), "--repo", "a/b/c", "--dry-run", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --repo must be a Hub repo id owner/name")
    assert not target.exists()

    target.mkdir()
    (target / "kept.txt").write_text("mine")
    assert main(["publish", str(source.path), "--repo", REPO, "--dry-run", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an empty folder" in err
    assert [p.name for p in target.iterdir()] == ["kept.txt"]


def test_upload_without_network_fails_in_one_line_without_the_token(source, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["publish", str(source.path), "--repo", REPO, "--private"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: publishing to {REPO} failed: ")
    assert FAKE_TOKEN not in err and "Traceback" not in err
