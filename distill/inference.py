"""Chat: classify a (context, query) pair with a saved teacher, student or ensemble; models stay loaded and warm."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .config import ConfigError
from .data import LABELS
from .errors import echo
from .results import DamagedRun, Roots, Run, intact_runs, open_run

MAX_TEXT_CHARS = 10_000
TEMPERATURE_RANGE = (0.05, 10.0)
MAX_LENGTH_RANGE = (8, 512)
ENSEMBLE = "ensemble"


class ModelCache:
    """The most recently used models, loaded once and kept in eval mode (no reload per message)."""

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self.models: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, folder: Path) -> tuple[Any, Any]:
        key = str(folder.resolve())
        with self.lock:
            if key in self.models:
                self.models.move_to_end(key)
                return self.models[key]
        try:
            model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=False).eval()
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        except Exception as err:  # a cut or overwritten file raises one of many types, from several libraries
            raise DamagedRun(
                f"model {folder.parent.parent.name}/{folder.name} cannot be loaded: its files are damaged"
            ) from err
        with self.lock:
            self.models[key] = (model, tokenizer)
            while len(self.models) > self.capacity:
                self.models.popitem(last=False)
        return model, tokenizer


CACHE = ModelCache()


def chat_models(results_dir: Roots) -> list[str]:
    """Every model a user can chat with, as 'run/model', plus 'run/ensemble' for runs with several students."""
    return [name for run in intact_runs(results_dir) for name in run_chat_models(run)]


def run_chat_models(run: Run) -> list[str]:
    """The chat models of one run: its saved models, and its ensemble when it has several students."""
    models = [r["model"] for r in run.summary() if not r.get("failed") and run.model_dir(r["model"]).is_dir()]
    ensemble = [ENSEMBLE] if sum(m != "teacher" for m in models) > 1 else []
    return [f"{run.name}/{m}" for m in models + ensemble]


def resolve_chat_model(name: str, results_dir: Roots) -> list[Path]:
    """The model folders behind a chat model name ('run/model' or 'run/ensemble')."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("pick a model to chat with: /models gives their names (run/model)")
    run_name, _, model = name.partition("/")
    if not model or "/" in model or ".." in name:
        raise ConfigError(f"unknown model {echo(name)}; pick one from the list (run/model)")
    run = open_run(run_name, results_dir, allow_paths=False)
    run.check()
    students = [r["model"] for r in run.summary() if r["role"] == "student" and not r.get("failed")]
    members = students if model == ENSEMBLE else [model]
    folders = [run.model_dir(m) for m in members]
    if not folders or not all(f.is_dir() for f in folders):
        raise ConfigError(f"unknown model {echo(name)}; pick one from the list (run/model)")
    return folders


def check_chat_input(query: str, context: str | None, temperature: float, max_length: int) -> tuple[str, str]:
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("type a query: it is the hypothesis to classify")
    context = context if isinstance(context, str) else ""
    for what, text in (("query", query), ("context", context)):
        if len(text) > MAX_TEXT_CHARS:
            raise ConfigError(f"the {what} has {len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    number = isinstance(temperature, int | float) and not isinstance(temperature, bool)
    if not number or not TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1]:
        raise ConfigError(f"temperature must be between {TEMPERATURE_RANGE[0]} and {TEMPERATURE_RANGE[1]}")
    if isinstance(max_length, float) and max_length.is_integer():
        max_length = int(max_length)
    whole = isinstance(max_length, int) and not isinstance(max_length, bool)
    if not whole or not MAX_LENGTH_RANGE[0] <= max_length <= MAX_LENGTH_RANGE[1]:
        raise ConfigError(f"max length must be a whole number between {MAX_LENGTH_RANGE[0]} and {MAX_LENGTH_RANGE[1]}")
    clean = "".join(ch for ch in query if ch.isprintable() or ch in "\n\t").strip()
    if not clean:
        raise ConfigError("the query has no printable text")
    return clean, "".join(ch for ch in context if ch.isprintable() or ch in "\n\t").strip()


@torch.inference_mode()
def predict(
    folders: list[Path], query: str, context: str | None = None, temperature: float = 1.0, max_length: int = 128
) -> dict[str, Any]:
    """Label and probabilities, softmax(logits / T), averaged over the folders' models for an ensemble."""
    query, context = check_chat_input(query, context, temperature, max_length)
    probabilities = torch.zeros(len(LABELS))
    truncated = False
    tokens = 0
    for folder in folders:
        model, tokenizer = CACHE.get(folder)
        pair = (context, query) if context else (query,)
        full = len(tokenizer(*pair)["input_ids"])
        enc = tokenizer(*pair, truncation=True, max_length=max_length, return_tensors="pt")
        tokens = enc["input_ids"].shape[1]
        truncated = truncated or full > tokens
        logits = model(**enc).logits[0].float()
        probabilities += torch.softmax(logits / temperature, dim=-1)
    probabilities /= len(folders)
    best = int(probabilities.argmax())
    return {
        "label": LABELS[best],
        "probability": float(probabilities[best]),
        "probabilities": {name: float(p) for name, p in zip(LABELS, probabilities, strict=True)},
        "truncated": truncated,
        "tokens": tokens,
        "used_context": bool(context),
        "temperature": temperature,
        "models": len(folders),
    }


def describe(prediction: dict[str, Any], model: str) -> str:
    """One readable reply for the chat box."""
    lines = [f"**{prediction['label']}** ({prediction['probability']:.1%}) — {model}"]
    lines.append(" · ".join(f"{k} {v:.1%}" for k, v in prediction["probabilities"].items()))
    if not prediction["used_context"]:
        lines.append("_No context given: the query alone was classified._")
    if prediction["truncated"]:
        lines.append(f"_The input was truncated to {prediction['tokens']} tokens (max length)._")
    return "\n\n".join(lines)


def chat(
    name: str,
    query: str,
    context: str | None,
    temperature: float,
    max_length: int,
    every_model: bool,
    results_dir: Roots,
) -> dict[str, Any]:
    """The chat endpoint: one model's answer, plus every model of the same run side by side on request."""
    if not isinstance(every_model, bool):
        raise ConfigError("every_model must be true or false")
    result = {"model": name, **predict(resolve_chat_model(name, results_dir), query, context, temperature, max_length)}
    if every_model:  # only this run's models: no need to read every other run
        others = run_chat_models(open_run(name.partition("/")[0], results_dir, allow_paths=False))
        result["answers"] = [
            {"model": m, **predict(resolve_chat_model(m, results_dir), query, context, temperature, max_length)}
            for m in others
        ]
    return result
