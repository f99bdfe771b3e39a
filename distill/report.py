"""The comparison of a run: one row per strategy (mean and spread over seeds), paired tests, curves and plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError
from .evaluation import classification_metrics
from .results import Run, read_json
from .stats import paired_difference

TABLE_COLUMNS = [
    ("strategy", "strategy", "{}"),
    ("layers", "layers", "{}"),
    ("seeds", "seeds", "{}"),
    ("train_loss", "train loss", "{:.4f}"),
    ("loss", "val loss", "{:.4f}"),
    ("accuracy", "val acc", "{:.2%}"),
    ("accuracy_std", "± sd", "{:.2%}"),
    ("other_accuracy", "other split acc", "{:.2%}"),
    ("macro_f1", "macro-F1", "{:.3f}"),
    ("params_m", "params (M)", "{:.1f}"),
    ("speedup_b32", "speed-up", "{:.2f}x"),
    ("accuracy_kept", "acc kept", "{:.1%}"),
    ("vs_best", "vs best (95% CI)", "{}"),
    ("p_value", "p", "{:.3f}"),
]
SETTING_COLUMNS = [
    ("temperature", "T", "{:g}"),
    ("learning_rate", "lr", "{:g}"),
    ("weight_ce", "w ce", "{:.2f}"),
    ("weight_kl", "w kl", "{:.2f}"),
    ("weight_cos", "w cos", "{:.2f}"),
]
# A search's own table: its settings instead of layers and speed, which are the same for every row.
SEARCH_COLUMNS = [
    ("strategy", "setting", "{}"),
    *SETTING_COLUMNS,
    *(c for c in TABLE_COLUMNS if c[0] not in ("strategy", "layers", "params_m", "speedup_b32")),
]


def comparison(run: Run, ensemble: list[str] | None = None) -> list[dict[str, Any]]:
    """Teacher first, then every strategy; averaged over seeds, with spread and a paired test vs the best.

    With `ensemble` (two or more strategies), a last row averages those strategies' class probabilities,
    seed by seed, and is tested against the best single strategy like any other row.
    """
    rows = run.summary()
    if not rows:
        return []
    predictions = run.predictions()
    if ensemble:
        members, ensemble_predictions = ensemble_members(run, rows, ensemble)
        rows = rows + members
        predictions.update(ensemble_predictions)
    table = strategy_rows(rows, search=bool(run.config().get("search")))
    add_paired_tests(run, table, table[0]["eval_split"], predictions)
    return table


def strategy_rows(rows: list[dict], search: bool = False) -> list[dict[str, Any]]:
    """One row per strategy (teacher and ensembles included): means and spread over its seeds, and its speed
    and accuracy relative to the teacher."""
    if not rows:
        return []
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["strategy"]].append(row)
    split = rows[0].get("eval_split", "validation")
    other = next(
        (
            k.removesuffix("_accuracy")
            for k in rows[0]
            if k.endswith("_accuracy") and k != "accuracy" and not k.startswith(split) and "_accuracy_" not in k
        ),
        None,
    )
    table = []
    for strategy, members in groups.items():
        accs = [m["accuracy"] for m in members]
        table.append(
            {
                "strategy": strategy,
                "role": members[0]["role"],
                "layers": members[0]["layers"],
                "seeds": len(members),
                "models": [m["model"] for m in members],
                "train_loss": _mean(m.get("train_loss") for m in members),
                "loss": _mean(m["loss"] for m in members),
                "accuracy": float(np.mean(accs)),
                "accuracy_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                "other_split": other,
                "other_accuracy": _mean(m.get(f"{other}_accuracy") for m in members) if other else None,
                "macro_f1": _mean(m.get(f"{split}_macro_f1") for m in members),
                "params": members[0]["params"],
                "params_m": members[0]["params"] / 1e6,
                "size_mb": members[0]["size_mb"],
                "latency_b1_ms": _mean(m["latency_b1_ms"] for m in members),
                "latency_b32_ms": _mean(m["latency_b32_ms"] for m in members),
                "eval_split": split,
                "eval_rows": members[0].get("eval_rows"),
                "search": search,
                **{key: members[0].get(key) for key, _, _ in SETTING_COLUMNS},
            }
        )
    teacher = next((r for r in table if r["role"] == "teacher"), None)
    for r in table:
        r["speedup_b32"] = teacher["latency_b32_ms"] / r["latency_b32_ms"] if teacher else None
        r["speedup_b1"] = teacher["latency_b1_ms"] / r["latency_b1_ms"] if teacher else None
        r["accuracy_kept"] = r["accuracy"] / teacher["accuracy"] if teacher and teacher["accuracy"] else None
    return table


def ensemble_members(run: Run, rows: list[dict], strategies: list[str]) -> tuple[list[dict], dict]:
    """One summary-like row per seed for the ensemble of `strategies` (mean of their class probabilities),
    and its predicted labels per split."""
    labels = read_json(run.path / "labels.json", {})
    known = {r["strategy"] for r in rows if r["role"] == "student"}
    unknown = [s for s in strategies if s not in known]
    if len(set(strategies)) < 2 or unknown:
        raise ConfigError(
            f"an ensemble needs two or more of this run's strategies ({', '.join(sorted(known))})"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    name = "ensemble(" + "+".join(strategies) + ")"
    first_split = rows[0].get("eval_split", "validation")
    members, predictions = [], {}
    for seed in sorted({r["seed"] for r in rows if r["strategy"] in strategies}):
        parts = [r for r in rows if r["strategy"] in strategies and r["seed"] == seed]
        probabilities = [run.probabilities(r["model"]) for r in parts]
        if len(parts) < len(set(strategies)) or not all(probabilities):
            continue  # a seed that misses a member, or a run made before probabilities were kept
        model = f"{name}-seed{seed}"
        row = {
            "model": model,
            "role": "ensemble",
            "strategy": name,
            "layers": [],
            "seed": seed,
            "params": sum(r["params"] for r in parts),
            "size_mb": sum(r["size_mb"] for r in parts),
            "latency_b1_ms": sum(r["latency_b1_ms"] for r in parts),
            "latency_b32_ms": sum(r["latency_b32_ms"] for r in parts),
            "eval_split": first_split,
            "eval_rows": parts[0].get("eval_rows"),
        }
        predictions[model] = {}
        for split, split_labels in labels.items():
            mean = np.mean([p[split] for p in probabilities], axis=0)
            metrics = classification_metrics(np.log(np.clip(mean, 1e-7, 1.0)), np.asarray(split_labels))
            row.update({f"{split}_{k}": v for k, v in metrics.items()})
            predictions[model][split] = mean.argmax(axis=1).tolist()
        row["loss"], row["accuracy"] = row[f"{first_split}_loss"], row[f"{first_split}_accuracy"]
        members.append(row)
    if not members:
        raise ConfigError(f"run {run.name} kept no class probabilities for {', '.join(strategies)}")
    return members, predictions


def add_paired_tests(run: Run, table: list[dict], split: str, predictions: dict) -> None:
    """Each student (and ensemble) against the best student, on the same validation examples."""
    labels = read_json(run.path / "labels.json", {}).get(split)
    students = [r for r in table if r["role"] == "student"]
    if not students or labels is None:
        return
    correct = _correctness(predictions, np.asarray(labels), split)
    best = max(students, key=lambda r: r["accuracy"])
    best["best"] = True
    for r in table:
        if r is best or r["role"] == "teacher":
            continue
        test = paired_difference(correct(r), correct(best))
        r.update(
            diff_vs_best=test.difference,
            diff_low=test.low,
            diff_high=test.high,
            p_value=test.p_value,
            significant=test.significant,
        )


def _correctness(predictions: dict, labels: np.ndarray, split: str):
    def correct(row: dict) -> np.ndarray:  # share of seeds right, per example
        return np.mean([np.asarray(predictions[m][split]) == labels for m in row["models"] if m in predictions], axis=0)

    return correct


def pairwise(run: Run, split: str | None = None) -> list[dict[str, Any]]:
    """Every pair of strategies (higher mean accuracy first): the difference, its 95% paired-bootstrap
    interval and McNemar's p, on `split` (default: the run's main validation split)."""
    table = [r for r in strategy_rows(run.summary()) if r["role"] == "student"]
    if not table:
        return []
    split = split or table[0]["eval_split"]
    labels = read_json(run.path / "labels.json", {}).get(split)
    if labels is None:
        raise ConfigError(f"run {run.name} has no validation split {split!r}")
    correct = _correctness(run.predictions(), np.asarray(labels), split)
    ranked = sorted(table, key=lambda r: -float(np.mean(correct(r))))
    out = []
    for i, a in enumerate(ranked):
        for b in ranked[i + 1 :]:
            test = paired_difference(correct(a), correct(b))
            out.append(
                {
                    "better": a["strategy"],
                    "worse": b["strategy"],
                    "split": split,
                    "difference": test.difference,
                    "low": test.low,
                    "high": test.high,
                    "p_value": test.p_value,
                    "significant": test.significant,
                }
            )
    return out


def format_pairwise(rows: list[dict]) -> str:
    lines = [f"{'pair':<32} {'difference':>10}  {'95% CI':<18} {'p':>6}"]
    for r in rows:
        pair = f"{r['better']} - {r['worse']}"
        ci = f"[{r['low']:+.1%}, {r['high']:+.1%}]"
        mark = "" if r["significant"] else "  (n.s.)"
        lines.append(f"{pair:<32} {r['difference']:>+10.1%}  {ci:<18} {r['p_value']:>6.3f}{mark}")
    return "\n".join(lines)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def display_rows(table: list[dict]) -> list[dict[str, str]]:
    """The comparison as strings, for the terminal and the app's table (a search gets its own columns)."""
    columns = SEARCH_COLUMNS if any(r.get("search") for r in table) else TABLE_COLUMNS
    out = []
    for r in table:
        r = dict(r)
        r["layers"] = ",".join(str(i) for i in r["layers"])
        if r.get("best"):
            r["vs_best"] = "best"
        elif "diff_vs_best" in r:
            mark = "" if r["significant"] else " (n.s.)"
            r["vs_best"] = f"{r['diff_vs_best']:+.1%} [{r['diff_low']:+.1%}, {r['diff_high']:+.1%}]{mark}"
        out.append({title: _fmt(fmt, r.get(key)) for key, title, fmt in columns})
    return out


def _fmt(fmt: str, value: Any) -> str:
    if value is None:
        return "-"
    return fmt.format(value)


def format_table(table: list[dict]) -> str:
    rows = display_rows(table)
    if not rows:
        return "(no finished models yet)"
    titles = list(rows[0])
    widths = {t: max(len(t), *(len(r[t]) for r in rows)) for t in titles}
    lines = ["  ".join(t.ljust(widths[t]) for t in titles), "  ".join("-" * widths[t] for t in titles)]
    lines += ["  ".join(r[t].ljust(widths[t]) for t in titles) for r in rows]
    return "\n".join(lines)


def curves(run: Run) -> list[dict[str, Any]]:
    """Per-epoch curves in long form (model, strategy, seed, epoch, curve, value): one line per model."""
    split = next((r.get("eval_split") for r in run.summary()), None)
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
    """The original's plots: loss curves per strategy, validation accuracy per epoch, and accuracy vs latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        axes[0][0].set_ylabel("loss (mean over seeds)")
        axes[0][-1].legend()
        paths.append(_save(fig, folder / "loss_curves.png"))

        fig, ax = plt.subplots(figsize=(6, 4))
        for strategy in strategies:
            epochs, values = _series(points, strategy, "val_accuracy")
            ax.plot(epochs, values, marker="o", label=strategy)
        ax.set(xlabel="epoch", ylabel="validation accuracy (mean over seeds)", title="Validation accuracy per epoch")
        ax.legend()
        paths.append(_save(fig, folder / "val_accuracy.png"))

    table = strategy_rows(run.summary())
    if table:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in table:
            ax.errorbar(r["latency_b32_ms"], r["accuracy"], yerr=r["accuracy_std"] or None, fmt="o", capsize=3)
            ax.annotate(r["strategy"], (r["latency_b32_ms"], r["accuracy"]), textcoords="offset points", xytext=(5, 5))
        ax.set(xlabel="latency per example at batch 32 (ms)", ylabel="validation accuracy", title="Accuracy vs latency")
        paths.append(_save(fig, folder / "accuracy_latency.png"))
    return paths


def step_loss_figure(points: list[dict]):
    """The live training-loss curve of a job: one line per stage (teacher, then each student)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3))
    stages: dict[str, list[dict]] = defaultdict(list)
    for p in points:
        stages[p["stage"]].append(p)
    for stage, rows in stages.items():
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=stage, linewidth=1)
    ax.set(xlabel="training step of the job", ylabel="loss")
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
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    tmp.replace(path)
    return path
