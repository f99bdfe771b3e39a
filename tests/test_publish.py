"""Publishing a run to the Hub: model cards, the published tree (itself a run folder, with no server path, and only
the files of an allow-list), the recommended student, every card's limitations, and one-line refusals. Offline:
the upload is tried where it must fail, or with the Hub's API replaced by a recorder."""

from __future__ import annotations

import fnmatch
import gzip
import json
import math
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard, ModelCardData
from tiny import copy_run, cut
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from distill import publish as publish_module
from distill.cli import main
from distill.data import SAMPLE_DIR
from distill.publish import EMBEDDED_TEACHER_ID, model_card, publish_tree
from distill.results import Run, list_runs, write_json

REPO = "you/distilled-students"
PAIRS = [
    ("A man inspects the uniform of a figure in some East Asian country.", "The man is sleeping."),
    ("An older and younger man smiling.", "Two men are smiling and laughing at the cats playing on the floor."),
]
FAKE_TOKEN = "hf_FakeTokenForPublishTests0123456789"
# What a published run may hold, written out here rather than taken from distill.publish: model weights (safetensors),
# config, tokenizer files and card; the run's settings, status, tables, plots, and the labels, predictions and
# probabilities its comparison is computed from (the app reopens the repo as a run).
ALLOWED = re.compile(
    r"(README\.md|config\.json|status\.json|summary\.json|summary\.csv|labels\.json|predictions\.json"
    r"|metrics\.jsonl|layer_importance\.json|environment\.json|plots/[\w-]+\.png|probabilities/[\w-]+\.npz"
    r"|models/[\w-]+/(README\.md|config\.json|model\.safetensors|tokenizer\.json|tokenizer_config\.json"
    r"|special_tokens_map\.json|vocab\.txt))"
)
# Internal files a run may hold, none of which may be published.
INTERNAL = (
    "checkpoints/top_k-seed0.pt",
    "cache/teacher_hidden.npy",
    "data/train/pairs.csv",
    "errors.log",
    "stop-request.json",
    "progress.json",
    "models/teacher/done",
    "models/teacher/history.json",
    "models/top_k-seed0/optimizer.pt",
    "models/top_k-seed0/.model.safetensors.tmp",
    "plots/.loss_curves.png.tmp",
)


@pytest.fixture
def source(good_run, tmp_path) -> Run:
    """A copy of the finished run in a results folder, with the files a published run must leave out."""
    run = copy_run(good_run, tmp_path / "runs", "good")
    for name in INTERNAL:
        path = run.path / name
        if not path.exists():  # progress.json is the run's own
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                '{"reason": "not for publishing", "time": 0}' if name.endswith(".json") else "not for publishing"
            )
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
    for left_out in ("checkpoints", "cache", "data", "owner.json", "heartbeat.json", *INTERNAL):
        assert not (tree / left_out).exists(), left_out
    assert not any(p.name.startswith(".") for p in files)
    outside = [p for p in relative if not ALLOWED.fullmatch(p)]  # the whole tree, walked
    assert outside == []

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
    assert "| strategy | teacher layers |" in readme
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
    assert result.dataset_args == {"rows_scored": 32}
    assert card.data.language is None  # the language of a user's data is unknown to distill
    section = limitations(card.text)
    assert "English" not in section and "neither knows nor checks" in section
    assert "distilled on at most 64 premise-hypothesis pairs from `pairs.csv`" in section  # its file is gone
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


def limitations(text: str) -> str:
    """A card's Limitations section, up to the next section."""
    assert text.count("\n## Limitations\n") == 1
    return text.split("\n## Limitations\n", 1)[1].split("\n## ", 1)[0]


def set_accuracy(row: dict, predictions: dict, labels: dict, right: dict[str, int]) -> dict:
    """`row` with predictions that get the first `right[split]` rows of each split right and the rest wrong, and
    the accuracies they give."""
    splits = {}
    for split, split_labels in labels.items():
        predictions[split] = [y if i < right[split] else (y + 1) % 3 for i, y in enumerate(split_labels)]
        splits[split] = {**row["splits"][split], "accuracy": right[split] / len(split_labels)}
    main = row["eval_split"]
    return {**row, "splits": splits, "accuracy": splits[main]["accuracy"]}


# (model, strategy it copies, seed, rows right on validation_matched, on validation_mismatched) of 32 each
STUDENTS = [
    ("top_k-seed2", "top_k", 2, None, 31),  # diverged: NaN on the main split, near perfect on the other
    ("top_k-seed0", "top_k", 0, 18, 14),
    ("top_k-seed1", "top_k", 1, 16, 17),
    ("even-seed0", "even", 0, 20, 15),  # the best single model, of the worse strategy
    ("even-seed1", "even", 1, 10, 12),
]


@pytest.fixture
def ranked(source) -> Run:
    """The run with two seeds per strategy of different accuracies, a third top_k seed that diverged (NaN), and
    a teacher that was fine-tuned (as a cached teacher's folder, with its `done` marker and history.json)."""
    labels = source.labels()
    predictions = source.predictions()
    rows = {r["model"]: r for r in source.summary()}
    summary = [{**rows["teacher"], "train_loss": 0.9}]
    for model, strategy, seed, matched, mismatched in STUDENTS:
        base = f"{strategy}-seed0"
        if model != base:
            shutil.copytree(source.model_dir(base), source.model_dir(model), dirs_exist_ok=True)
        if matched is None:
            splits = {s: {**m, "accuracy": None} for s, m in rows[base]["splits"].items()}
            splits["validation_mismatched"]["accuracy"] = mismatched / 32
            summary.append({**rows[base], "model": model, "seed": seed, "splits": splits, "accuracy": float("nan")})
            continue
        predictions[model] = {}
        right = {"validation_matched": matched, "validation_mismatched": mismatched}
        row = set_accuracy({**rows[base], "model": model, "seed": seed}, predictions[model], labels, right)
        summary.append(row)
        source.add_probabilities(
            model, {s: np.eye(3, dtype=np.float32)[p] * 0.97 + 0.01 for s, p in predictions[model].items()}
        )
    (source.path / "summary.json").write_text(json.dumps(summary))  # a bare NaN, as an old run wrote it
    write_json(source.path / "predictions.json", predictions)
    source.check()
    return source


def expected_recommendation(rows: list[dict]) -> dict:
    """Computed here from the summary: among students whose every accuracy is a finite number, the strategy with
    the best mean accuracy over seeds on the main split, then its seed with the best accuracy on that split (the
    choice is made on validation_matched; validation_mismatched confirms)."""

    def finite(row: dict) -> bool:
        values = [row["accuracy"], *(m.get("accuracy") for m in row["splits"].values())]
        return all(isinstance(v, float) and math.isfinite(v) for v in values)

    groups = defaultdict(list)
    for row in rows:
        if row["role"] == "student" and not row.get("failed") and finite(row):
            groups[row["strategy"]].append(row)
    means = {strategy: sum(r["accuracy"] for r in group) / len(group) for strategy, group in groups.items()}
    best = max(means, key=means.get)
    return max(groups[best], key=lambda r: r["accuracy"])


def training_rows(config: dict) -> int:
    """The rows the run trained on: its train_size of the shipped MNLI sample, counted here from the file."""
    with gzip.open(SAMPLE_DIR / "train.jsonl.gz", "rt", encoding="utf-8") as f:
        available = sum(1 for line in f if line.strip())
    return min(config["train_size"], available)


def test_repo_card_recommends_the_best_finite_student(ranked, tmp_path, capsys):
    rows = ranked.summary()
    expected = expected_recommendation(json.loads((ranked.path / "summary.json").read_text()))
    assert expected["model"] == "top_k-seed0"
    assert expected["model"] != max((r for r in rows if not r.get("failed")), key=lambda r: r["accuracy"])["model"]
    tree = tmp_path / "published" / "good"
    dry_run(ranked, tree, capsys)
    readme = ModelCard.load(tree / "README.md")
    text = readme.text
    [named] = re.findall(r"\*\*Recommended model: `([\w-]+)`\*\*", text)
    assert named == expected["model"]
    matched, mismatched = (expected["splits"][s]["accuracy"] for s in ("validation_matched", "validation_mismatched"))
    recommendation = text.split("## Recommended model\n\n", 1)[1].split("\n## ", 1)[0]
    assert f"({matched:.2%})" in recommendation and f"{mismatched:.2%}" in recommendation
    assert "chosen on validation_matched" in recommendation and "validation_mismatched, which no choice used" in text
    # the load example loads it, and no other model
    load = text.split("## How to load", 1)[1]
    assert re.findall(r'subfolder="models/([\w-]+)"', load) == [expected["model"]] * 2
    assert f'from_pretrained("{REPO}", subfolder="models/{expected["model"]}")' in load
    # the repo's model-index is the recommended student's, with the rows it was scored on
    assert readme.data.model_name == expected["model"]
    results = {r.dataset_split: r for r in readme.data.eval_results}
    assert {s: r.metric_value for s, r in results.items()} == {
        "validation_matched": matched,
        "validation_mismatched": mismatched,
    }
    assert {s: r.dataset_args["rows_scored"] for s, r in results.items()} == {
        "validation_matched": 32,
        "validation_mismatched": 32,
    }
    # the diverged student is neither recommended nor published
    assert "top_k-seed2" not in recommendation and not (tree / "models" / "top_k-seed2").exists()
    assert "top_k-seed2" not in re.findall(r"`models/([\w-]+)`", text)


def test_nothing_is_recommended_when_every_student_failed(source, tmp_path):
    rows = source.summary()
    write_json(
        source.path / "summary.json",
        [r if r["role"] == "teacher" else {**r, "failed": "diverged", "splits": {}, "accuracy": None} for r in rows],
    )
    tree = tmp_path / "tree"
    publish_tree(source, tree, REPO)
    text = ModelCard.load(tree / "README.md").text
    assert "Recommended model: `" not in text
    assert "no student is recommended" in text
    assert re.findall(r'subfolder="models/([\w-]+)"', text.split("## How to load", 1)[1]) == ["teacher"] * 2


def test_every_card_has_limitations_with_its_accuracy_training_rows_and_language(ranked, tmp_path, capsys):
    tree = tmp_path / "published" / "good"
    dry_run(ranked, tree, capsys)
    rows = {r["model"]: r for r in ranked.summary()}
    config = ranked.config()
    trained = training_rows(config)
    assert trained == 64
    labels = ranked.labels()
    found = cards(tree)
    expected = expected_recommendation(list(rows.values()))
    found["(repo)"] = ModelCard.load(tree / "README.md")
    assert sorted(found) == sorted(["(repo)", "teacher", "top_k-seed0", "top_k-seed1", "even-seed0", "even-seed1"])
    for name, card in found.items():
        row = expected if name == "(repo)" else rows[name]
        section = limitations(card.text)
        for split, metrics in row["splits"].items():
            total = {"validation_matched": 9815, "validation_mismatched": 9832}[split]
            assert f"{metrics['accuracy']:.2%} on {len(labels[split])} of the {total:,} rows of {split}" in section
        if row["role"] == "student":
            assert f"distilled on {trained} MNLI training pairs" in section
            assert f"the teacher was fine-tuned on {trained}" in section
        else:
            assert f"fine-tuned on {trained} MNLI training pairs" in section
        assert "English" in section
        assert "3-class classifier" in section and "not a chat model" in section
        assert card.data.language == ["en"]
        # the model-index says how many rows were scored, of how many
        for result in card.data.eval_results:
            rows_scored = len(labels[result.dataset_split])
            assert result.dataset_args["rows_scored"] == rows_scored == 32
            assert result.dataset_args["rows_in_split"] in (9815, 9832)
            assert f"{rows_scored} of {result.dataset_args['rows_in_split']:,} rows" in result.metric_name
        assert "rows_scored: 32" in str(card)
    # a teacher used as is trained on nothing in the run, and its card says so
    teacher = model_card(ranked, {**rows["teacher"], "train_loss": None}, REPO)
    assert "none in this run (0 rows)" in limitations(teacher.text)


def test_upload_sends_only_the_allow_list(ranked, monkeypatch):
    sent = {}

    class RecordingApi:
        def __init__(self, token=None):
            sent["token"] = token

        def create_repo(self, repo_id, **kwargs):
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, folder_path, **kwargs):
            root = Path(folder_path)
            sent["files"] = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
            sent["readme"] = (root / "README.md").read_text()
            sent.update(kwargs)

    monkeypatch.setattr(publish_module, "HfApi", RecordingApi)
    url = publish_module.publish(ranked, REPO, token=FAKE_TOKEN)
    assert url == f"https://huggingface.co/{REPO}"
    assert sent["files"] and [f for f in sent["files"] if not ALLOWED.fullmatch(f)] == []
    assert not any(f.endswith(("/done", "/history.json", "optimizer.pt")) for f in sent["files"])
    assert "models/top_k-seed2/model.safetensors" not in sent["files"]
    assert {"models/top_k-seed0/model.safetensors", "predictions.json", "summary.csv"} <= set(sent["files"])
    # the Hub applies the allow-list too, and drops what an earlier publish left under models/ (a `done` marker)
    patterns = sent["allow_patterns"]
    assert all(any(fnmatch.fnmatch(f, p) for p in patterns) for f in sent["files"])
    for internal in (*INTERNAL, "heartbeat.json", "owner.json", "models/teacher/pytorch_model.bin"):
        hidden = Path(internal).name.startswith(".")  # never in the tree (publish_tree checks it), whatever matches
        assert hidden or not any(fnmatch.fnmatch(internal, p) for p in patterns), internal
    assert "models/**" in sent["delete_patterns"]
    assert "**Recommended model: `top_k-seed0`**" in sent["readme"]
