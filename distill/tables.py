"""The comparison as text: its rows as strings (the terminal's table and the app's), and every pair's tests."""

from __future__ import annotations

from typing import Any

from .comparison import Row
from .wording import NOT_CLEAR, RANDOM_START, plain_test

TABLE_COLUMNS = [  # the answer first (accuracy, the difference to the best, how sure), the details after
    ("strategy", "strategy", "{}"),
    ("layers", "teacher layers", "{}"),
    ("seeds", "seeds", "{}"),
    ("accuracy", "accuracy", "{:.2%}"),
    ("accuracy_std", "± spread over seeds", "{:.2%}"),
    ("vs_best", "vs best student (95% range)", "{}"),
    ("p_value", "sure? (p)", "p"),
    ("other_accuracy", "accuracy, other check set", "{:.2%}"),
    ("other_vs_best", "vs best, other check set", "{}"),
    ("accuracy_kept", "accuracy kept vs teacher", "{:.1%}"),
    ("speedup_b32", "speed-up vs teacher", "{:.2f}x"),
    ("params_m", "size (M parameters)", "{:.1f}"),
    ("macro_f1", "balanced score (macro-F1)", "{:.3f}"),
    ("train_loss", "training loss", "{:.4f}"),
    ("loss", "validation loss", "{:.4f}"),
]

SETTING_COLUMNS = [
    ("temperature", "temperature (T)", "{:g}"),
    ("learning_rate", "learning rate (lr)", "{:g}"),
    ("weight_ce", "weight: labels (ce)", "{:.2f}"),
    ("weight_kl", "weight: teacher's answers (kl)", "{:.2f}"),
    ("weight_cos", "weight: teacher's logits (cos)", "{:.2f}"),
]

# A search's own table: its settings instead of layers and speed, which are the same for every row.
SEARCH_COLUMNS = [
    ("strategy", "setting", "{}"),
    *SETTING_COLUMNS,
    *(c for c in TABLE_COLUMNS if c[0] not in ("strategy", "layers", "params_m", "speedup_b32")),
]


def display_rows(table: list[Row]) -> list[dict[str, str]]:
    """The comparison as strings, for the terminal and the app's table (a search gets its own columns)."""
    columns = SEARCH_COLUMNS if any(r.get("search") for r in table) else TABLE_COLUMNS
    out = []
    for row in table:
        r: dict[str, Any] = dict(row)
        r["layers"] = ",".join(str(i) for i in r["layers"]) or (RANDOM_START if r["role"] == "student" else "-")
        if r.get("seeds") == 1:
            r["accuracy_std"] = None  # one seed has no spread to show
        if r.get("failed_seeds"):
            r["seeds"] = f"{r['seeds']} (+{r['failed_seeds']} failed)"
        r["vs_best"] = "best" if r.get("best") else difference_cell(row, r.get("eval_split"), main=True)
        r["other_vs_best"] = difference_cell(row, r.get("other_split"), main=False)
        out.append({title: _fmt(fmt, r.get(key)) for key, title, fmt in columns})
    return out


def difference_cell(row: Row, split: str | None, main: bool) -> str | None:
    """A row's test on `split` as one cell, in plain words: '-1.2% (-2.0% to -0.4%), clearly behind' on the main
    split, '-1.2%, p 0.004, clearly behind' on the other, '... not clear (could be noise)' or "-1.2% (fewer than 3
    seeds: can't tell yet, run 3 or more)"; a failed strategy's reason on the main split."""
    test = row.get("vs_best", {}).get(split) if split else None
    if test is None:
        return plain_test(row.get("test")) if main else None
    difference = test["difference"]
    if difference is None:
        return plain_test(test["test"])
    against = f" vs {test['against']}" if row["role"] == "ensemble" else ""
    if test["p_value"] is None:
        return f"{difference:+.1%}{against} ({plain_test(test['test'])})"
    mark = f", {NOT_CLEAR}"
    if test["significant"]:
        mark = ", clearly ahead" if difference > 0 else ", clearly behind"
    if not main:
        return f"{difference:+.1%}{against}, p {_p(test['p_value'])}{mark}"
    return f"{difference:+.1%}{against} ({test['low']:+.1%} to {test['high']:+.1%}){mark}"


def _fmt(fmt: str, value: Any) -> str:
    if value is None:
        return "-"
    return _p(value) if fmt == "p" else fmt.format(value)


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def format_table(table: list[Row]) -> str:
    rows = display_rows(table)
    if not rows:
        return "(no finished models yet)"
    titles = list(rows[0])
    widths = {t: max(len(t), *(len(r[t]) for r in rows)) for t in titles}
    lines = ["  ".join(t.ljust(widths[t]) for t in titles), "  ".join("-" * widths[t] for t in titles)]
    lines += ["  ".join(r[t].ljust(widths[t]) for t in titles) for r in rows]
    return "\n".join(lines)


def format_pairwise(rows: list[dict]) -> str:
    width = max([32, *(len(r["better"]) + len(r["worse"]) + 3 for r in rows)])
    lines = [f"{'pair':<{width}} {'difference':>10}  {'95% CI (Holm)':<18} {'p (Holm)':>8}"]
    for r in rows:
        pair = f"{r['better']} - {r['worse']}"
        if r["p_value"] is None:
            lines.append(f"{pair:<{width}} {r['difference']:>+10.1%}  {r['test']}")
            continue
        ci = f"[{r['low']:+.1%}, {r['high']:+.1%}]"
        mark = "" if r["significant"] else "  (n.s.)"
        lines.append(f"{pair:<{width}} {r['difference']:>+10.1%}  {ci:<18} {_p(r['p_value']):>8}{mark}")
    return "\n".join(lines)
