"""The comparison's plots: per-epoch curves in long form, the run's PNG plots, and a job's live loss curve."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .comparison import finished, strategy_rows
from .results import Run, temporary_path


def curves(run: Run) -> list[dict[str, Any]]:
    """Per-epoch curves in long form (model, strategy, seed, epoch, curve, value): one line per model."""
    split = next(iter(run.labels()), None)  # the main validation split
    out = []
    for row in run.metrics:
        for key, value in row.items():
            if key.startswith("train_") or (split and key in (f"{split}_loss", f"{split}_accuracy")):
                curve = key.replace(f"{split}_", "val_") if split else key
                out.append(
                    {
                        "model": row["model"],
                        "strategy": row["strategy"],
                        "seed": row["seed"],
                        "epoch": row["epoch"],
                        "curve": curve,
                        "value": value,
                    }
                )
    return out


def write_plots(run: Run) -> list[Path]:
    """The run's plots, those of the experiment this project grew from: loss curves per strategy, validation
    accuracy per epoch, and accuracy vs latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder = run.path / "plots"
    folder.mkdir(exist_ok=True)
    points = curves(run)
    strategies = list(dict.fromkeys(p["strategy"] for p in points))
    paths = []
    if strategies:
        fig, axes = plt.subplots(1, len(strategies), figsize=(4.2 * len(strategies), 3.6), squeeze=False, sharey=True)
        for ax, strategy in zip(axes[0], strategies, strict=True):
            for curve in ("train_loss", "train_ce", "train_kl", "train_cos", "val_loss"):
                epochs, values = _series(points, strategy, curve)
                if epochs:
                    ax.plot(epochs, values, marker="o", label=curve.replace("train_", ""))
            ax.set_title(strategy)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs: no tick at 1.25
        axes[0][0].set_ylabel("loss (mean over seeds)")
        axes[0][-1].legend()
        paths.append(_save(fig, folder / "loss_curves.png"))

        fig, ax = plt.subplots(figsize=(6, 4))
        for strategy in strategies:
            epochs, values = _series(points, strategy, "val_accuracy")
            ax.plot(epochs, values, marker="o", label=strategy)
        ax.set(xlabel="epoch", ylabel="validation accuracy (mean over seeds)", title="Validation accuracy per epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        paths.append(_save(fig, folder / "val_accuracy.png"))

    table = strategy_rows(finished(run.summary()))
    if table:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in table:  # a legend, not labels: students of one depth share one latency, so one vertical line
            yerr = r["accuracy_std"] or None
            ax.errorbar(r["latency_b32_ms"], r["accuracy"], yerr=yerr, fmt="o", capsize=3, label=r["strategy"])
        ax.set(xlabel="latency per example at batch 32 (ms)", ylabel="validation accuracy", title="Accuracy vs latency")
        ax.legend(fontsize="small")
        paths.append(_save(fig, folder / "accuracy_latency.png"))
    return paths


def step_loss_figure(points: list[dict]):
    """The live training-loss curve of a job: one line per stage (teacher, then each student)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(9, 3))
    stages: dict[str, list[dict]] = defaultdict(list)
    for p in points:
        stages[p["stage"]].append(p)
    for stage, rows in stages.items():
        marker = "o" if len(rows) == 1 else None  # a line needs two points: one is drawn as a marker
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=stage, linewidth=1, marker=marker)
    ax.set(xlabel="training step of the job", ylabel="loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if stages:
        ax.legend(fontsize="small", ncol=min(len(stages), 6))
    fig.tight_layout()
    plt.close(fig)
    return fig


def _series(points: list[dict], strategy: str, curve: str) -> tuple[list[int], list[float]]:
    by_epoch: dict[int, list[float]] = defaultdict(list)
    for p in points:
        if p["strategy"] == strategy and p["curve"] == curve:
            by_epoch[p["epoch"]].append(p["value"])
    epochs = sorted(by_epoch)
    return epochs, [float(np.mean(by_epoch[e])) for e in epochs]


def _save(fig, path: Path) -> Path:
    tmp = temporary_path(path)
    fig.tight_layout()
    fig.savefig(tmp, dpi=110, format="png")
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    tmp.replace(path)
    return path
