"""A run on the Hugging Face Hub: a model card per saved model, and the run as a repo that is itself a run folder.

`python -m distill publish RUN --repo OWNER/NAME` uploads the tree `publish_tree` writes: the run's results,
plots and model folders (each with its card) and a repo card with the comparison table, but never its
checkpoints, cache, uploaded data, heartbeat or owner, and no server path.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, get_token

from .config import EMBEDDED_TEACHER, HUB_DATA, SAMPLE_DATA
from .data import LABELS
from .errors import UserError, scrub, strip_paths
from .hub import HUB_ID
from .results import Run, atomic_write, read_json, write_json
from .strategies import DESCRIPTIONS, strategy_label
from .summary import metric

EMBEDDED_TEACHER_ID = "sentence-transformers/all-MiniLM-L6-v2"
MNLI_DATASET = "nyu-mll/glue"
LICENSE = "apache-2.0"
CARD = "README.md"
# What a published run holds besides models/ and its summary (a tree without checkpoints/, cache/, data/, heartbeat
# or owner).
RUN_FILES = (
    "labels.json",
    "predictions.json",
    "metrics.jsonl",
    "layer_importance.json",
    "environment.json",
)
# A re-publish replaces the models, plots and probabilities of the previous one; other files in the repo stay.
STALE = ["models/**", "plots/**", "probabilities/**"]
EXAMPLE = ("A soccer game with multiple males playing.", "Some men are playing a sport.")


def check_repo(repo: str) -> str:
    """A Hub model repo id, owner/name; refused before anything is written or sent."""
    if not isinstance(repo, str) or repo.count("/") != 1 or not HUB_ID.match(repo) or ".." in repo:
        raise UserError(f"--repo must be a Hub repo id owner/name, not {repo!r}")
    return repo


def base_model(teacher: str) -> str | None:
    """The teacher as a Hub id, or None for a local folder (its path is nobody's business)."""
    if teacher == EMBEDDED_TEACHER:
        return EMBEDDED_TEACHER_ID
    if _is_local(teacher) or not HUB_ID.match(teacher):
        return None
    return teacher


def _is_local(name: str) -> bool:
    return name.startswith((".", "~")) or Path(name).is_absolute() or Path(name).expanduser().is_dir()


def _teacher_name(config: dict) -> str:
    teacher = str(config.get("teacher", ""))
    return base_model(teacher) or Path(teacher).name


def _is_mnli(config: dict) -> bool:
    return config.get("data") in (SAMPLE_DATA, HUB_DATA)


def _eval_dataset(config: dict, split: str) -> str:
    """A user's data by the name of the file its validation split came from (never its path)."""
    for name in config.get("eval_data") or []:
        if Path(name).name.split(".")[0] == split:
            return Path(name).name
    return Path(str(config.get("data", "data"))).name


def _eval_results(config: dict, row: dict) -> list[EvalResult]:
    def result(split: str, dataset: str, name: str, dataset_config: str | None) -> EvalResult:
        return EvalResult(
            task_type="text-classification",
            task_name="Natural Language Inference",
            dataset_type=dataset,
            dataset_name=name,
            dataset_config=dataset_config,
            dataset_split=split,
            metric_type="accuracy",
            metric_name="Accuracy",
            metric_value=metric(row, split),
        )

    if _is_mnli(config):
        return [result(s, MNLI_DATASET, "GLUE MNLI", "mnli") for s in row["splits"]]
    dataset = _eval_dataset(config, row["eval_split"])
    return [result(row["eval_split"], dataset, dataset, None)]


def _tags(config: dict, row: dict, model_type: str | None) -> list[str]:
    tags = ["knowledge-distillation", "mnli" if _is_mnli(config) else "nli", row["role"]]
    if row["role"] == "student":
        tags.append(_layer_strategy(config, row))
        if config.get("search"):
            tags.append("hyperparameter-search")
    if model_type:
        tags.append(model_type)
    return list(dict.fromkeys(tags))


def _layer_strategy(config: dict, row: dict) -> str:
    """The layer strategy of a student: its row's, or in a search (whose rows are settings) the job's first."""
    return strategy_label(config["strategies"][0]) if config.get("search") else row["strategy"]


def _card_data(config: dict, **extra: Any) -> ModelCardData:
    return ModelCardData(
        base_model=base_model(str(config.get("teacher", ""))),
        datasets=[MNLI_DATASET] if _is_mnli(config) else None,
        license=LICENSE,
        library_name="transformers",
        pipeline_tag="text-classification",
        **extra,
    )


def model_card(run: Run, row: dict, repo: str | None = None) -> ModelCard:
    """The card of one saved model (teacher or student) of `run`, from its summary row.

    With `repo`, it shows how to load the model from that Hub repo; without, from the run folder.
    """
    config = run.config()
    model_config = read_json(run.model_dir(row["model"]) / "config.json", {})
    data = _card_data(
        config,
        model_name=row["model"],
        tags=_tags(config, row, model_config.get("model_type")),
        eval_results=_eval_results(config, row),
    )
    body = "\n\n".join(
        [
            f"# {row['model']}",
            _about(run, config, row, model_config),
            _settings(config, row),
            _accuracy(run, row),
            _how_to_load(run, row["model"], repo),
        ]
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def _about(run: Run, config: dict, row: dict, model_config: dict) -> str:
    teacher = f"`{_teacher_name(config)}`"
    task = (
        "MNLI (natural language inference: does the premise entail the hypothesis, contradict it, or neither?)"
        if _is_mnli(config)
        else f"the natural language inference data `{_eval_dataset(config, row['eval_split'])}`"
    )
    rows = run.summary()
    teacher_row = next((r for r in rows if r["role"] == "teacher" and not r.get("failed")), None)
    origin = f"It comes from run `{run.name}` of `distill`, the BERT-layer distillation tool"
    if teacher_row:
        origin += f", whose teacher scored {teacher_row['accuracy']:.2%} accuracy on {teacher_row['eval_split']}"
    if row["role"] == "teacher":
        if row.get("train_loss") is None:
            what = f"The teacher of a distillation run: {teacher} used as is, since it already classifies {task}."
        else:
            what = f"The teacher of a distillation run: {teacher} fine-tuned on {task}."
        layers = f"It keeps all {len(row['layers'])} of its encoder layers; the students were built from them."
        return f"{what}\n\n{origin}.\n\n## Layers\n\n{layers}"
    depth = model_config.get("num_hidden_layers", len(row["layers"]))
    what = f"A {depth}-layer student distilled from {teacher} on {task}."
    strategy = _layer_strategy(config, row)
    if row["layers"]:
        layers = (
            f"Its encoder layers started as copies of teacher layers {', '.join(map(str, row['layers']))}, in that "
            "order (0-based: layer 0 is the one next to the embeddings)."
        )
    else:
        layers = (
            f"None: its {depth} encoder layers started from random weights, the control that copies no teacher layer."
        )
    layers += " Its embeddings, pooler and classifier head started as the teacher's."
    layers += f"\n\nStrategy `{strategy}`" + (f": {DESCRIPTIONS[strategy]}." if strategy in DESCRIPTIONS else ".")
    return f"{what}\n\n{origin}.\n\n## Teacher layers copied\n\n{layers}"


def _settings(config: dict, row: dict) -> str:
    def value(key: str) -> Any:
        return row.get(key, config.get(key))

    if row["role"] == "teacher" and row.get("train_loss") is None:
        items = [("fine-tuning", "none: it already classified MNLI labels")]
    elif row["role"] == "teacher":
        items = [
            ("epochs", config.get("teacher_epochs")),
            ("learning rate", config.get("teacher_learning_rate")),
            ("batch size", config.get("batch_size")),
            ("training examples", config.get("train_size") or "all"),
        ]
    else:
        hidden = value("weight_hidden")
        weights = f"cross-entropy {value('weight_ce'):.4g}, KL {value('weight_kl'):.4g}, "
        weights += f"cosine {value('weight_cos'):.4g}, hidden states {hidden:.4g}"
        items = [
            ("epochs", config.get("epochs")),
            ("learning rate", value("learning_rate")),
            ("temperature", value("temperature")),
            ("loss weights", weights + (f" ({config.get('hidden_loss')} on [CLS])" if hidden else "")),
            ("batch size", config.get("batch_size")),
            ("training examples (teacher)", config.get("train_size") or "all"),
            ("training examples (each student)", _student_rows(config)),
        ]
    items += [("max length", config.get("max_length")), ("precision", config.get("precision")), ("seed", row["seed"])]
    title = "## Fine-tuning settings" if row["role"] == "teacher" else "## Distillation settings"
    return f"{title}\n\n" + _markdown_table([{"setting": k, "value": str(v)} for k, v in items])


def _student_rows(config: dict) -> int | str:
    """The rows each student distils on: a subset of the teacher's training rows, never more than they are."""
    sizes = [n for n in (config.get("student_train_size"), config.get("train_size")) if n]
    return min(sizes) if sizes else "all"


def _accuracy(run: Run, row: dict) -> str:
    labels = run.labels()
    table = []
    for split, metrics in row["splits"].items():
        rows = len(labels[split]) if split in labels else row["eval_rows"]
        f1 = metrics.get("macro_f1")
        table.append(
            {
                "split": split,
                "accuracy": f"{metrics['accuracy']:.2%}",
                "macro-F1": "-" if f1 is None else f"{f1:.3f}",
                "validation rows": str(rows),
            }
        )
    note = (
        f"The comparison of strategies, averaged over seeds and tested against the best, is in run `{run.name}`'s "
        "summary (`summary.csv`, and the README of the published run)."
    )
    if row["role"] == "student" or row.get("train_loss") is not None:
        note = f"One model, one seed ({row['seed']}): one draw. {note}"
    return "## Accuracy\n\n" + _markdown_table(table) + "\n\n" + note


def _load_source(run: Run, name: str, repo: str | None) -> str:
    return f'"{repo}", subfolder="models/{name}"' if repo else f'"{run.name}/models/{name}"'


def _how_to_load(run: Run, name: str, repo: str | None) -> str:
    source = _load_source(run, name, repo)
    where = (
        ""
        if repo
        else "From the results folder that holds the run (`runs/` by default); once published with "
        "`python -m distill publish`, from its Hub repo.\n\n"
    )
    code = "\n".join(
        [
            "```python",
            "import torch",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            f"tokenizer = AutoTokenizer.from_pretrained({source})",
            f"model = AutoModelForSequenceClassification.from_pretrained({source}).eval()",
            f'inputs = tokenizer({json.dumps(EXAMPLE[0])}, {json.dumps(EXAMPLE[1])}, return_tensors="pt")',
            "with torch.no_grad():",
            "    label = model(**inputs).logits.argmax(-1).item()",
            f"print({json.dumps(list(LABELS))}[label])  # GLUE's label order",
            "```",
        ]
    )
    return f"## How to load\n\n{where}{code}"


def _markdown_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(none)"

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    titles = list(rows[0])
    lines = ["| " + " | ".join(cell(t) for t in titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(cell(r[t]) for t in titles) + " |" for r in rows]
    return "\n".join(lines)


def write_model_card(run: Run, row: dict, repo: str | None = None) -> Path:
    """Write the card of a saved model into its folder, models/<name>/README.md."""
    path = run.model_dir(row["model"]) / CARD
    atomic_write(path, str(model_card(run, row, repo)))
    return path


def _published_models(run: Run) -> list[dict]:
    return [r for r in run.summary() if not r.get("failed") and run.model_dir(r["model"]).is_dir()]


def _public_config(config: dict) -> dict:
    """The run's settings without a server path: a local teacher or data file by its name, no results folder."""
    public = {k: v for k, v in config.items() if k != "results_dir"}
    teacher, data = str(config.get("teacher", "")), str(config.get("data", ""))
    public["teacher"] = teacher if teacher == EMBEDDED_TEACHER or base_model(teacher) else Path(teacher).name
    public["data"] = data if data in (SAMPLE_DATA, HUB_DATA) else Path(data).name
    public["eval_data"] = [Path(str(f)).name for f in config.get("eval_data") or []]
    return public


def repo_card(run: Run, repo: str | None = None) -> ModelCard:
    """The card of the published run: its comparison table and where each model is."""
    from .report import comparison, display_rows

    config = run.config()
    data = _card_data(config, tags=["knowledge-distillation", "mnli" if _is_mnli(config) else "nli", "distill"])
    models = _published_models(run)
    table = comparison(run)
    split = table[0]["eval_split"] if table else "-"
    teacher = _teacher_name(config)
    intro = (
        f"# Students distilled from {teacher} (run {run.name})\n\n"
        f"Students of `{teacher}` distilled on {'MNLI' if _is_mnli(config) else 'NLI data'} with `distill`, the "
        "BERT-layer distillation tool: each student starts from a choice of the teacher's encoder layers "
        "(0-based: layer 0 is the one next to the embeddings) and is distilled once per seed."
    )
    comparison_text = (
        f"## Comparison\n\nAccuracy on {split} ({table[0]['eval_rows'] if table else 0} rows). A strategy's row is "
        "the mean over its seeds (± sd over seeds); *vs best* tests it against the best student, counting seeds "
        "and examples, Holm-adjusted over every pair; one seed gives a difference but no verdict.\n\n"
        + _markdown_table(display_rows(table))
    )
    listing = [
        {
            "model": r["model"],
            "role": r["role"],
            "strategy": r["strategy"],
            "layers": ",".join(map(str, r["layers"])) or "random init",
            "seed": str(r["seed"]),
            "accuracy": f"{r['accuracy']:.2%}",
            "subfolder": f"`models/{r['model']}`",
        }
        for r in models
    ]
    example = next((r["model"] for r in models if r["role"] == "student"), models[0]["model"] if models else None)
    load = f"## How to load\n\nEach model is a subfolder with its own card:\n\n{_markdown_table(listing)}"
    if example:
        load += "\n\n" + _how_to_load(run, example, repo).split("\n\n", 1)[1]
    files = (
        "## Files\n\nThis repo is a `distill` run folder (`summary.csv`, `metrics.jsonl`, `predictions.json`, "
        "`probabilities/`, `plots/`, `models/`): downloaded into the results folder"
        + (f" (`hf download {repo} --local-dir runs/{run.name}`)" if repo else "")
        + f", `python -m distill report {run.name}` reproduces the comparison and the app lists it."
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join([intro, comparison_text, load, files]) + "\n")


def publish_tree(run: Run, target: Path, repo: str | None = None) -> list[Path]:
    """Write into `target` (empty or new) what a published run holds: itself a valid run folder. Returns its files.

    Refuses a damaged run and one that is not completed.
    """
    from .report import write_plots

    if repo is not None:
        check_repo(repo)
    run.check()
    state = run.status()["state"]
    if state != "completed":
        raise UserError(f"run {run.name} is {state}; only a completed run can be published")
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        shown = target.name or str(target)  # "/" has no name
        raise UserError(f"{shown} is not an empty folder; publish writes into an empty or new one")
    if not list(run.path.glob("plots/*.png")):
        write_plots(run)
    target.mkdir(parents=True, exist_ok=True)
    write_json(target / "config.json", _public_config(run.config()))
    status = {k: v for k, v in run.status().items() if k not in ("pid", "host")}  # no server details
    write_json(target / "status.json", status)
    Run(target).write_summary(run.summary())  # as read: a model whose figure is not finite is failed, never NaN
    for name in RUN_FILES:
        if (run.path / name).is_file():
            shutil.copyfile(run.path / name, target / name)
    for folder, pattern in (("plots", "*.png"), ("probabilities", "*.npz")):
        for path in sorted(run.path.glob(f"{folder}/{pattern}")):
            (target / folder).mkdir(exist_ok=True)
            shutil.copyfile(path, target / folder / path.name)
    for row in _published_models(run):
        folder = target / "models" / row["model"]
        shutil.copytree(run.model_dir(row["model"]), folder, ignore=shutil.ignore_patterns(".*", CARD))
        atomic_write(folder / CARD, str(model_card(run, row, repo)))
    atomic_write(target / CARD, str(repo_card(run, repo)))
    return sorted(p for p in target.rglob("*") if p.is_file())


def publish(run: Run, repo: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload the run's published tree to the Hub model repo `repo` (created if needed); returns its URL.

    Any failure (network, permission, quota) is one ConfigError line, without the token.
    """
    check_repo(repo)
    if not (token or get_token()):
        raise UserError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    with tempfile.TemporaryDirectory(prefix="distill-publish-") as folder:
        tree = Path(folder) / run.name
        publish_tree(run, tree, repo)
        try:
            api = HfApi(token=token)
            url = api.create_repo(repo, repo_type="model", exist_ok=True, private=private)
            api.upload_folder(
                folder_path=str(tree),
                repo_id=repo,
                repo_type="model",
                commit_message=f"Publish distill run {run.name}",
                delete_patterns=STALE,
            )
        except Exception as err:  # network, auth or quota: one line for the user, never a traceback
            text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if token:
                text = text.replace(token, "***")
            raise UserError(strip_paths(scrub(f"publishing to {repo} failed: {text[:300]}"))) from None
    return str(url)
