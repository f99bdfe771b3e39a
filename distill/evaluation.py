"""Measuring a model: predictions, loss, accuracy, macro-F1, per-class accuracy, latency and size."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import LABELS, Batcher, Encoded


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k not in ("labels", "rows")}


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for forward passes; fp32 runs as it is."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@torch.inference_mode()
def forward_all(
    model: nn.Module,
    loader,
    n_rows: int,
    precision: str,
    *,
    accelerator=None,
    cls_hidden: bool = False,
    hidden_file: Path | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits for every row (in row order), and optionally the [CLS] vector after the embeddings and each layer.

    The [CLS] vectors are kept in half precision, in memory or, when `hidden_file` is given, in a file on disk.
    """
    model.eval()
    device = next(model.parameters()).device
    logits = np.zeros((n_rows, len(LABELS)), dtype=np.float32)
    hidden = None
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device, precision):
            out = model(**model_inputs(batch), output_hidden_states=cls_hidden)
        batch_logits, rows = out.logits.float(), batch["rows"]
        cls = torch.stack([h[:, 0] for h in out.hidden_states], dim=1).float() if cls_hidden else None
        if accelerator is not None and accelerator.num_processes > 1:
            gathered = accelerator.gather_for_metrics([t for t in (batch_logits, rows, cls) if t is not None])
            batch_logits, rows, cls = gathered[0], gathered[1], (gathered[2] if cls_hidden else None)
        rows = rows.cpu().numpy()
        logits[rows] = batch_logits.cpu().numpy()
        if cls is not None:
            if hidden is None:
                shape = (n_rows, *cls.shape[1:])
                hidden = (
                    np.lib.format.open_memmap(hidden_file, mode="w+", dtype=np.float16, shape=shape)
                    if hidden_file
                    else np.zeros(shape, dtype=np.float16)
                )
            hidden[rows] = cls.cpu().numpy().astype(np.float16)
    return logits, hidden


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Loss, accuracy, macro-F1 and accuracy per class, from logits in GLUE label order."""
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    predicted = logits.argmax(axis=1)
    metrics = {"loss": loss, "accuracy": float((predicted == labels).mean())}
    f1s = []
    for c, name in enumerate(LABELS):
        true_c, pred_c = labels == c, predicted == c
        tp = float((true_c & pred_c).sum())
        precision = tp / pred_c.sum() if pred_c.any() else 0.0
        recall = tp / true_c.sum() if true_c.any() else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        metrics[f"accuracy_{name}"] = recall
    metrics["macro_f1"] = float(np.mean(f1s))
    return metrics


def evaluate(
    model: nn.Module, loaders: dict, data: dict[str, Encoded], precision: str, accelerator=None
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Metrics and logits for every validation split."""
    metrics, logits = {}, {}
    for split, loader in loaders.items():
        logits[split], _ = forward_all(model, loader, len(data[split]), precision, accelerator=accelerator)
        metrics[split] = classification_metrics(logits[split], data[split].labels)
    return metrics, logits


def probabilities(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()


class TimingCut(Exception):
    """Raised by `latency_ms` when its `time_is_up` says so: the timing is left unfinished, not made up."""


@torch.inference_mode()
def latency_ms(
    model: nn.Module,
    data: Encoded,
    pad_id: int,
    precision: str,
    n_examples: int,
    time_is_up: Callable[[], bool] = lambda: False,
) -> dict[str, float]:
    """Milliseconds per example at batch size 1 (median over examples) and at batch size 32 (over all batches).

    Teacher and students are timed on the same examples, in the same precision, after a warm-up. `time_is_up`
    is asked before every forward pass; TimingCut when it says yes.
    """
    model.eval()
    device = next(model.parameters()).device
    batcher = Batcher(data, pad_id)
    rows = list(range(min(n_examples, len(data))))

    def run(batch_rows: list[int]) -> float:
        if time_is_up():
            raise TimingCut
        batch = {k: v.to(device) for k, v in batcher(batch_rows).items()}
        start = time.perf_counter()
        with autocast(device, precision):
            model(**model_inputs(batch))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for i in rows[:8]:  # warm-up: first calls pay for allocation and kernel selection
        run([i])
    run(rows[:32])
    single = [run([i]) for i in rows]
    batched = sum(run(rows[i : i + 32]) for i in range(0, len(rows), 32))
    return {"latency_b1_ms": 1000 * float(np.median(single)), "latency_b32_ms": 1000 * batched / len(rows)}


def folder_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20
