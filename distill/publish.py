"""A run on the Hugging Face Hub: a model card per saved model, and the run as a repo that is itself a run folder.

`python -m distill publish RUN --repo OWNER/NAME` uploads the tree `publish_tree` writes: the files of an
allow-list (`PUBLISHED`) and nothing else. That is each model's weights, config, tokenizer and card; the run's
tables (summary, per-row predictions and class probabilities, labels, per-epoch metrics) and plots, which are
what the app and `python -m distill report` need to reopen the run and recompute its comparison and tests; and
a repo card that recommends one student (`recommended`). Never checkpoints, caches, uploaded data, heartbeat,
lease, progress, owner, logs or a teacher's cache markers (`done`, `history.json`), and no server path.

Every card has a Limitations section: what the model is (an MNLI-style 3-class classifier, not a chat model), its
measured accuracy and on how many validation rows, how many rows it was trained on, and its language.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import math
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, get_token

from .config import EMBEDDED_TEACHER, HUB_DATA, SAMPLE_DATA
from .data import LABELS, load_job_data
from .errors import UserError, first_line, scrub, strip_paths
from .hub import HUB_ID
from .results import Run, atomic_write, read_json, write_json
from .strategies import DESCRIPTIONS, strategy_label
from .summary import metric, other_split, recommended_student

EMBEDDED_TEACHER_ID = "sentence-transformers/all-MiniLM-L6-v2"
MNLI_DATASET = "nyu-mll/glue"
LICENSE = "apache-2.0"
CARD = "README.md"
# Rows of nyu-mll/glue mnli: a model is scored on a sample of a validation split (the job's eval_size).
MNLI_ROWS = {"train": 392_702, "validation_matched": 9_815, "validation_mismatched": 9_832}
# The run's files copied as they are into a published run. Besides them it holds its config (no server path), its
# status (no process id or host), its summary (summary.json and .csv) and its card, which publish writes.
# labels.json and predictions.json are what every test of the comparison is computed from (and a run folder
# without them is damaged); metrics.jsonl holds the curves; layer_importance.json the scores the data-driven
# strategies chose layers by; environment.json the package versions that made the run.
RUN_FILES = (
    "labels.json",
    "predictions.json",
    "metrics.jsonl",
    "layer_importance.json",
    "environment.json",
)
# What a model folder holds that a user needs: its card, config, safetensors weights and tokenizer files.
MODEL_FILES = (
    CARD,
    "config.json",
    "model.safetensors",
    "model-*-of-*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
)
# The allow-list: a published run holds these files (glob patterns, relative to the repo) and nothing else.
PUBLISHED = (
    CARD,
    "config.json",
    "status.json",
    "summary.json",
    "summary.csv",
    *RUN_FILES,
    "plots/*.png",  # the comparison's figures
    "probabilities/*.npz",  # class probabilities per validation row: ensembles are computed from them
    *(f"models/*/{name}" for name in MODEL_FILES),
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


def published(relative: str | Path) -> bool:
    """Whether a file, by its path relative to the published run, is on the allow-list `PUBLISHED`."""
    path = PurePosixPath(Path(relative).as_posix())
    return not any(part.startswith(".") for part in path.parts) and any(
        len(path.parts) == len(PurePosixPath(pattern).parts) and fnmatch.fnmatchcase(str(path), pattern)
        for pattern in PUBLISHED
    )


def scored_rows(run: Run, config: dict, row: dict, split: str) -> tuple[int, int | None]:
    """How many validation rows of `split` the model was scored on, and how many the split has (None for a
    user's data, whose size the run does not keep)."""
    labels = run.labels()
    rows = len(labels[split]) if split in labels else row["eval_rows"]
    return rows, MNLI_ROWS.get(split) if _is_mnli(config) else None


def _rows_text(config: dict, rows: int, total: int | None, split: str) -> str:
    """'1,000 of the 9,815 rows of validation_matched, drawn at random with data seed 0' and the like."""
    if total is None:
        return f"{rows:,} rows of {split}"
    if rows >= total:
        return f"all {total:,} rows of {split}"
    drawn = f", drawn at random with data seed {config.get('data_seed')}" if config.get("eval_size") == rows else ""
    return f"{rows:,} of the {total:,} rows of {split}{drawn}"


def _eval_results(run: Run, config: dict, row: dict) -> list[EvalResult]:
    """The model-index: accuracy per validation split, with the number of rows scored (`dataset_args`
    rows_scored, and rows_in_split where known) and that number in the metric's name."""

    def result(split: str, dataset: str, name: str, dataset_config: str | None) -> EvalResult:
        rows, total = scored_rows(run, config, row, split)
        return EvalResult(
            task_type="text-classification",
            task_name="Natural Language Inference",
            dataset_type=dataset,
            dataset_name=name,
            dataset_config=dataset_config,
            dataset_split=split,
            dataset_args={"rows_scored": rows, **({"rows_in_split": total} if total else {})},
            metric_type="accuracy",
            metric_name=f"Accuracy ({rows:,} of {total:,} rows)" if total else f"Accuracy ({rows:,} rows)",
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
        language=["en"] if _is_mnli(config) else None,  # a user's data: its language is unknown to distill
        license=LICENSE,
        library_name="transformers",
        pipeline_tag="text-classification",
        **extra,
    )


def model_card(run: Run, row: dict, repo: str | None = None, config: dict | None = None) -> ModelCard:
    """The card of one saved model (teacher or student) of `run`, from its summary row (`config`: the run's
    settings, when read already).

    With `repo`, it shows how to load the model from that Hub repo; without, from the run folder.
    """
    config = config or run.config()
    model_config = read_json(run.model_dir(row["model"]) / "config.json", {})
    data = _card_data(
        config,
        model_name=row["model"],
        tags=_tags(config, row, model_config.get("model_type")),
        eval_results=_eval_results(run, config, row),
    )
    body = "\n\n".join(
        [
            f"# {row['model']}",
            _about(run, config, row, model_config),
            _limitations(run, config, row),
            _settings(run, config, row),
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


def recommended(run: Run) -> dict | None:
    """The student the repo card recommends (`summary.recommended_student`), among the published ones."""
    return recommended_student(_published_models(run))


def train_rows(run: Run, config: dict) -> tuple[int | None, int | None, bool]:
    """(the teacher's training rows, each student's, exact): counted from the run's data where it can be read,
    else from its settings (then an upper bound, `exact` False; None for all the rows of an unknown file)."""
    teacher = None
    if config.get("data") == HUB_DATA:
        teacher = min(config.get("train_size") or MNLI_ROWS["train"], MNLI_ROWS["train"])
    else:
        config_file = run.path / "config.json"
        stamp = (config_file.stat().st_mtime_ns, config_file.stat().st_size) if config_file.is_file() else (0, 0)
        teacher = _loaded_train_rows(str(run.path), stamp)
    exact = teacher is not None
    if teacher is None:
        teacher = config.get("train_size") or None
    student = config.get("student_train_size") or None
    return teacher, min(student, teacher) if student and teacher else (student or teacher), exact


@functools.lru_cache(maxsize=32)
def _loaded_train_rows(path: str, stamp: tuple[int, int]) -> int | None:
    """The training rows of a run's job, from its own copy of the data (None when it cannot be read: a
    published run keeps no data)."""
    try:
        return len(load_job_data(Run(Path(path)).job_config())["train"])
    except Exception:  # a data file gone, moved or unreadable: the settings say what they can
        return None


def _count(rows: int | None, exact: bool) -> str:
    if rows is None:
        return "every row of the training data (a number distill did not keep)"
    return f"{rows:,}" if exact else f"at most {rows:,}"


def _training_data(config: dict) -> str:
    if config.get("data") == SAMPLE_DATA:
        return "MNLI training pairs (English; the sample of MNLI's train split shipped with distill)"
    if config.get("data") == HUB_DATA:
        return "MNLI training pairs (English; nyu-mll/glue, config mnli, split train)"
    return f"premise-hypothesis pairs from `{Path(str(config.get('data', 'data'))).name}`"


def _limitations(run: Run, config: dict, row: dict) -> str:
    """What the model is and is not: an MNLI-style 3-class classifier, not a chat model; its measured accuracy
    with the rows it was scored on; the rows it was trained on; its language."""
    what = (
        "- **What it is**: an MNLI-style 3-class classifier. Given a premise and a hypothesis it answers "
        "entailment, neutral or contradiction (GLUE's label order). It is not a chat model: it generates no text, "
        "follows no instructions, and gives any input one of the three labels, however unrelated."
    )
    scored = []
    for split in row["splits"]:
        rows, total = scored_rows(run, config, row, split)
        accuracy = metric(row, split)
        half = 1.96 * math.sqrt(accuracy * (1 - accuracy) / rows) if rows else 0.0
        margin = f"± {half * 100:.1f} points from the rows sampled, 95%"
        scored.append(f"{accuracy:.2%} on {_rows_text(config, rows, total, split)} ({margin})")
    accuracy = "- **Measured accuracy**: " + "; ".join(scored) + "."
    if row["role"] == "student" or row.get("train_loss") is not None:
        accuracy += " One trained model, one seed: another seed can score several points higher or lower."
    teacher_rows, student_rows, exact = train_rows(run, config)
    data = _training_data(config)
    if row["role"] == "student":
        trained = f"- **Training data**: distilled on {_count(student_rows, exact)} {data}, with the teacher's outputs"
        teacher = next((r for r in run.summary() if r["role"] == "teacher"), {})
        if teacher.get("train_loss") is not None:
            trained += f" as targets; the teacher was fine-tuned on {_count(teacher_rows, exact)}."
        else:
            trained += " as targets; the teacher was used as is, not trained in this run."
    elif row.get("train_loss") is not None:
        trained = f"- **Training data**: fine-tuned on {_count(teacher_rows, exact)} {data}."
    else:
        trained = (
            "- **Training data**: none in this run (0 rows): the teacher was used as is, so what it learned from is "
            f"whatever `{_teacher_name(config)}` was trained on before."
        )
    if _is_mnli(config):
        language = (
            "- **Language**: English. MNLI is English text (fiction, government reports, letters, telephone "
            "speech, travel guides, ...); other languages and domains were neither trained on nor measured."
        )
    else:
        files = dict.fromkeys([Path(str(config.get("data", "data"))).name, _eval_dataset(config, row["eval_split"])])
        language = (
            f"- **Language**: that of the data ({' and '.join(f'`{f}`' for f in files)}), which distill neither "
            "knows nor checks; other languages were neither trained on nor measured."
        )
    bias = "- It keeps the biases and annotation artifacts of its training data" + (
        " and of its teacher." if row["role"] == "student" else "."
    )
    return "## Limitations\n\n" + "\n".join([what, accuracy, trained, language, bias])


def _settings(run: Run, config: dict, row: dict) -> str:
    def value(key: str) -> Any:
        return row.get(key, config.get(key))

    teacher_rows, student_rows, exact = train_rows(run, config)
    if row["role"] == "teacher" and row.get("train_loss") is None:
        items = [("fine-tuning", "none: it already classified MNLI labels")]
    elif row["role"] == "teacher":
        items = [
            ("epochs", config.get("teacher_epochs")),
            ("learning rate", config.get("teacher_learning_rate")),
            ("batch size", config.get("batch_size")),
            ("training examples", _count(teacher_rows, exact)),
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
            ("training examples (teacher)", _count(teacher_rows, exact)),
            ("training examples (each student)", _count(student_rows, exact)),
        ]
    items += [("max length", config.get("max_length")), ("precision", config.get("precision")), ("seed", row["seed"])]
    title = "## Fine-tuning settings" if row["role"] == "teacher" else "## Distillation settings"
    return f"{title}\n\n" + _markdown_table([{"setting": k, "value": str(v)} for k, v in items])


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


def write_model_cards(run: Run) -> None:
    """Write the card of each saved model of `run` into its folder, models/<name>/README.md, as a job ends; a
    card that cannot be written is logged in the run's errors.log, and the others are written."""
    config = run.config()
    for row in _published_models(run):
        try:
            atomic_write(run.model_dir(row["model"]) / CARD, str(model_card(run, row, config=config)))
        except Exception as err:  # a card is a description: the model and its results stand without it
            run.log_failure(err)


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
    """The card of the published run: the recommended student (`recommended`), its limitations, the comparison
    table, where each model is, and how to load the recommended one."""
    from .comparison import comparison
    from .tables import display_rows

    config = run.config()
    models = _published_models(run)
    best = recommended(run)
    # the repo's model-index is the recommended student's: the model its card tells a user to load
    shown = best or next((r for r in models if r["role"] == "teacher"), None)
    extra = {"model_name": shown["model"], "eval_results": _eval_results(run, config, shown)} if shown else {}
    tags = ["knowledge-distillation", "mnli" if _is_mnli(config) else "nli", "distill"]
    data = _card_data(config, tags=tags, **extra)
    table = comparison(run)
    split = table[0]["eval_split"] if table else "-"
    teacher = _teacher_name(config)
    intro = (
        f"# Students distilled from {teacher} (run {run.name})\n\n"
        f"Students of `{teacher}` distilled on {'MNLI' if _is_mnli(config) else 'NLI data'} with `distill`, the "
        "BERT-layer distillation tool: each student starts from a choice of the teacher's encoder layers "
        "(0-based: layer 0 is the one next to the embeddings) and is distilled once per seed."
    )
    rows = f"{table[0]['eval_rows']:,}" if table and table[0].get("eval_rows") else "0"
    comparison_text = (
        f"## Comparison\n\nAccuracy on {split} ({rows} rows). A strategy's row is "
        "the mean over its seeds (± sd over seeds); *vs best* tests it against the best student, counting seeds "
        "and examples, Holm-adjusted over every pair; fewer than 3 seeds give a difference but no verdict.\n\n"
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
    load = f"## How to load\n\nEach model is a subfolder with its own card:\n\n{_markdown_table(listing)}"
    if shown:
        which = "the recommended student" if best else "the teacher (no student is recommended)"
        code = _how_to_load(run, shown["model"], repo).split("\n\n", 1)[1]
        load += f"\n\nTo load {which}, `{shown['model']}`:\n\n{code}"
    files = (
        "## Files\n\nThis repo is a `distill` run folder, and holds only what a user needs: each model's weights "
        "(safetensors), config, tokenizer and card under `models/`; the run's settings (`config.json`), tables "
        "(`summary.csv`, `summary.json`, `metrics.jsonl`) and plots (`plots/`); and the validation labels, per-row "
        "predictions and class probabilities (`labels.json`, `predictions.json`, `probabilities/`) that every test "
        "in the comparison is computed from. Downloaded into the results folder"
        + (f" (`hf download {repo} --local-dir runs/{run.name}`)" if repo else "")
        + f", `python -m distill report {run.name}` reproduces the comparison and the app lists it."
    )
    sections = [intro, _recommendation(run, config, best)]
    if shown:
        sections.append(_limitations(run, config, shown))
    sections += [comparison_text, load, files]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")


def _recommendation(run: Run, config: dict, best: dict | None) -> str:
    """Which model to use, and in one sentence how it was chosen and where it was confirmed."""
    if best is None:
        return (
            "## Recommended model\n\nNone: no student finished with finite figures (each failed, diverged or "
            "scored NaN), so no student is recommended."
        )
    main, other = best["eval_split"], other_split(best)
    text = f"## Recommended model\n\n**Recommended model: `{best['model']}`** (strategy `{best['strategy']}`, seed "
    text += f"{best['seed']}, subfolder `models/{best['model']}`). "
    chosen = (
        f"It was chosen on {main}, as every choice in this run is: its strategy has the best mean accuracy over "
        f"seeds there and it is that strategy's best seed there ({best['accuracy']:.2%})"
    )
    if other:
        text += (
            f"{chosen}; {other}, which no choice used, gives the figure to trust: {metric(best, other):.2%} "
            f"({_rows_text(config, *scored_rows(run, config, best, other), other)})."
        )
    else:
        text += f"{chosen}; the run has no other validation split to confirm it on, so that figure flatters it."
    return text


def publish_tree(run: Run, target: Path, repo: str | None = None) -> list[Path]:
    """Write into `target` (empty or new) what a published run holds: itself a valid run folder. Returns its files.

    Refuses a damaged run and one that is not completed.
    """
    from .plots import write_plots

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
    if not any(published(f"plots/{p.name}") for p in run.path.glob("plots/*.png")):
        write_plots(run)
    target.mkdir(parents=True, exist_ok=True)
    config = run.config()
    write_json(target / "config.json", _public_config(config))
    status = {k: v for k, v in run.status().items() if k not in ("pid", "host")}  # no server details
    write_json(target / "status.json", status)
    Run(target).write_summary(run.summary())  # as read: a model whose figure is not finite is failed, never NaN
    for name in RUN_FILES:
        if (run.path / name).is_file():
            shutil.copyfile(run.path / name, target / name)
    for folder, pattern in (("plots", "*.png"), ("probabilities", "*.npz")):
        for path in sorted(run.path.glob(f"{folder}/{pattern}")):
            if not published(f"{folder}/{path.name}"):  # a temporary file mid-write
                continue
            (target / folder).mkdir(exist_ok=True)
            shutil.copyfile(path, target / folder / path.name)
    for row in _published_models(run):
        source, folder = run.model_dir(row["model"]), target / "models" / row["model"]
        folder.mkdir(parents=True)
        for path in sorted(source.iterdir()):  # the allow-list: no `done` marker, history.json or checkpoint
            if path.is_file() and path.name != CARD and published(f"models/{row['model']}/{path.name}"):
                shutil.copyfile(path, folder / path.name)
        atomic_write(folder / CARD, str(model_card(run, row, repo, config)))
    atomic_write(target / CARD, str(repo_card(run, repo)))
    files = sorted(p for p in target.rglob("*") if p.is_file())
    stray = [str(p.relative_to(target)) for p in files if not published(p.relative_to(target))]
    if stray:  # a file this function wrote that the allow-list does not name: a bug here, never uploaded
        raise RuntimeError(f"publish wrote files outside its allow-list: {', '.join(stray)}")
    return files


def publish(run: Run, repo: str, *, private: bool = False, token: str | None = None) -> str:
    """Upload the run's published tree to the Hub model repo `repo` (created if needed); returns its URL.

    Any failure (network, permission, quota) is one UserError line, without the token.
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
                allow_patterns=list(PUBLISHED),
                delete_patterns=STALE,
            )
        except Exception as err:  # network, auth or quota: one line for the user, never a traceback
            text = first_line(err)
            if token:
                text = text.replace(token, "***")
            raise UserError(strip_paths(scrub(f"publishing to {repo} failed: {text[:300]}"))) from None
    return str(url)
