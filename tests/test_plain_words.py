"""The Compare tab in plain words (issue #26): true run labels, a table and notes a reader who knows what accuracy
is can follow, a glossary and the statistics docs on the Hub, whole-epoch axes, and a finished job's link."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd
import pytest

import app
from distill.comparison import comparison
from distill.plots import step_loss_figure
from distill.results import Run, open_run, run_label
from distill.wording import notes

RESULTS = Path(__file__).resolve().parent.parent / "results"
LABELS = {
    "reference": "reference",
    "search": "hyperparameter search",
    "control-random": "control: random layers",
    "control-hard-labels": "control: hard labels only",
}
DOCS = "https://huggingface.co/spaces/{}/blob/main/docs/statistics.md"
JARGON = ("acc kept", "(n.s.)", "untested", "replicate", "validation_matched", "`embedded`", "committed reference run")


@pytest.fixture(autouse=True)
def original_space(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)  # not on a Space: the docs link names the original Space


@pytest.mark.slow
def test_each_committed_run_is_labelled_by_what_it_is():
    for name, label in LABELS.items():
        assert run_label(open_run(RESULTS / name), committed=True) == label
    choices = dict((value, shown) for shown, value in app.run_choices())
    assert choices["reference"] == "reference"
    for name in ("search", "control-random", "control-hard-labels"):
        assert choices[name] == f"{name} · {LABELS[name]}"
    for name, label in LABELS.items():
        header = app.show_comparison(name)["header"]
        assert f"### Run `{name}` · {label} · completed · teacher: all-MiniLM-L6-v2 (packaged)" in header


def test_a_run_of_the_results_folder_is_yours_or_a_visitors(tmp_path):
    for name in ("reference", "search"):
        (tmp_path / name).mkdir()
        shutil.copy(RESULTS / name / "config.json", tmp_path / name / "config.json")
    mine, search = Run(tmp_path / "reference"), Run(tmp_path / "search")
    assert run_label(mine) == "your run"
    assert run_label(search) == "your run (hyperparameter search)"
    mine.set_owner("alice")
    assert run_label(mine, viewer="alice", shared=True) == "your run"
    assert run_label(mine, viewer="bob", shared=True) == "a visitor's run"
    assert run_label(search, shared=True) == "a visitor's run (hyperparameter search)"


@pytest.mark.slow
def test_table_notes_and_glossary_read_in_plain_words(monkeypatch):
    shown = app.show_comparison("reference", ["odd", "importance"])
    titles = list(shown["table"]["value"].columns)
    for title in ("accuracy kept vs teacher", "balanced score (macro-F1)", "sure? (p)", "vs best student (95% range)"):
        assert title in titles
    cells = " ".join(" ".join(map(str, row)) for row in shown["table"]["value"].itertuples())
    assert "not clear (could be noise)" in cells and "can't tell yet, run more seeds" in cells
    text = shown["header"] + cells + " ".join(titles)
    assert not [word for word in JARGON if word in text]
    assert "Accuracy on MNLI validation, matched genres (9815 examples)" in shown["header"]
    # the glossary, under the table: each technical word with a short explanation, and how sure is sure
    for term in (
        "balanced score (macro-F1)",
        "accuracy kept vs teacher",
        "sure? (p)",
        "vs best student (95% range)",
        "ensemble",
    ):
        assert f"- **{term}" in shown["glossary"]
    link = f"docs/statistics.md]({DOCS.format('distill-lab/layer-distill')})"  # a Markdown link, on the Hub
    assert link in shown["glossary"] and link in shown["header"]
    monkeypatch.setenv("SPACE_ID", "someone/a-duplicate")  # on a Space: its own repo
    assert DOCS.format("someone/a-duplicate") in app.show_comparison("search")["glossary"]


@pytest.mark.slow
def test_the_notes_name_the_family_each_p_is_adjusted_over():
    reference = open_run(RESULTS / "reference")
    said = app.show_comparison("reference")["header"]
    assert "With 3 seeds this run can tell apart differences of about 1.1 points" in said  # the planner, on Compare
    assert "Each p is adjusted (Holm) for the 10 comparisons between the 5 students in this table" in said
    assert "one p per pair" in said
    controls = [open_run(RESULTS / "control-random"), open_run(RESULTS / "control-hard-labels")]
    with_controls = notes(comparison(reference, controls=controls), "docs")
    assert "for the 10 comparisons between the 5 students in this table" in with_controls  # others: untested
    search = app.show_comparison("search")["header"]
    assert "adjusted (Holm)" not in search and "A student with fewer than 3 seeds gets no p: can't tell yet" in search
    assert "adjusted" not in app.show_comparison("control-random")["header"]  # one student: no pair at all


def test_epoch_axes_show_whole_epochs():
    tab = {c.elem_id: c for c in app.demo.blocks.values() if getattr(c, "elem_id", None)}
    for plot in ("accuracy-plot", "loss-plot"):
        assert tab[plot].x == "epoch" and tab[plot].y_aggregate == "mean"
    shown = app.show_comparison("control-random")
    curve = shown["accuracy_plot"]
    assert curve["sort"] == ["0", "1", "2", "3"]  # the axis's ticks, one per whole epoch, in order
    assert set(curve["value"]["epoch"]) == {"0", "1", "2", "3"}
    payload = gr.LinePlot(x="epoch", y="value", color="strategy").postprocess(curve["value"])
    assert payload.datatypes["epoch"] == "nominal"  # text: one tick per epoch, none at 1.1, 1.2 ...
    colours = app.redraw_plot(payload.model_dump())["colors_in_legend"]
    assert colours == ["teacher", "random"]  # the legend's colours are the strategies', not the epochs
    assert shown["loss_plot"]["sort"] == ["0", "1", "2"]


def test_a_one_point_series_is_drawn_and_said():
    means = pd.DataFrame({"strategy": ["teacher", "top_k", "top_k"], "epoch": [2, 0, 1], "value": [0.62, 0.35, 0.5]})
    update = app._whole_epochs(means, "strategy", "Validation accuracy per epoch (mean over seeds)")
    drawn = update["value"]
    assert list(drawn["strategy"]) == ["teacher"] * 3 + ["top_k"] * 2  # the legend's order kept
    assert list(drawn["epoch"]) == ["0", "1", "2", "0", "1"] and set(drawn["value"][:3]) == {0.62}
    assert update["label"] == "Validation accuracy per epoch (mean over seeds; teacher: measured once, drawn flat)"
    # the job's live loss figure: a one-point stage is a marker, the steps whole numbers
    curve = [{"stage": "teacher", "step": s, "loss": 1.0 / s} for s in (1, 2, 3)]
    figure = step_loss_figure([*curve, {"stage": "top_k-seed0", "step": 4, "loss": 0.9}])
    assert [line.get_marker() for line in figure.axes[0].lines] == ["None", "o"]
    assert all(float(t).is_integer() for t in figure.axes[0].get_xticks())


def test_a_finished_job_links_to_its_comparison():
    done = {"run": "api-run", "state": "completed", "stage": "done", "models": [{"accuracy": 0.6}]}
    assert "[see how its models compare](?compare=api-run)" in app.render_job(done)["header"]
    stopped = {**done, "state": "stopped"}
    assert "?compare=api-run" in app.render_job(stopped)["header"]
    assert "?compare=" not in app.render_job({**stopped, "models": []})["header"]
    assert "?compare=" not in app.render_job({**done, "state": "running"})["header"]


def test_the_status_line_draws_the_jobs_progress_for_every_watcher():
    running = {"run": "api-run", "state": "running", "stage": "top_k-seed0", "done": 8, "total": 24}
    header = app.render_job(running)["header"]
    assert "step 8/24" in header
    assert '<progress value="8" max="24"' in header and header.index("33%") > header.index("<progress")
    assert "100%" in app.render_job({**running, "done": 24})["header"]
    assert "<progress" not in app.render_job({**running, "total": 0})["header"]  # queued: nothing counted yet


def test_stop_says_so_when_there_is_nothing_to_stop(capsys):
    """The Stop button changes nothing on the page when no job runs: it says why (gr.Info, printed outside a
    request)."""
    assert app.stop_shown(None, "") == {"stopped": False}
    assert "no job is running: nothing to stop" in capsys.readouterr().out
    assert app.stop_shown({"run": "reference", "state": "completed"}, "") == {"stopped": False}
    assert "run reference is not queued or running: nothing to stop" in capsys.readouterr().out


def test_a_watched_run_fills_the_form_with_its_own_settings(tmp_path, monkeypatch):
    watch = lambda run: app.watched_settings(SimpleNamespace(query_params={"run": run}))  # noqa: E731
    reference = watch("reference")
    assert set(reference) == set(app.FORM_START)  # every field of the form, each given a value
    assert reference["teacher_epochs"] == 3 and reference["run_name"] == "reference"
    assert reference["strategies"] == ["top_k", "bottom_k", "odd", "even", "importance"]
    as_opened = dict.fromkeys(app.FORM_START, gr.skip())  # every field left as it is
    assert watch("no-such-run") == as_opened and app.watched_settings(SimpleNamespace(query_params={})) == as_opened
    # a CLI run of a local teacher and an explicit list: the folder's name, never its path; the list in its field
    run = tmp_path / "cli-run"
    shutil.copytree(RESULTS / "reference", run)
    config = json.loads((run / "config.json").read_text())
    config.update(teacher=str(tmp_path / "my-teacher"), strategies=["odd", "0,2,5"], seeds=[3, 4])
    (run / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(app.space, "results_dir", lambda: str(tmp_path))
    shown = watch("cli-run")
    fields = ("teacher", "strategies", "layer_list", "seeds")
    assert [shown[k] for k in fields] == ["my-teacher", ["odd"], "0,2,5", "3 4"]
    (run / "config.json").write_text("{")  # damaged: the form stays as it opens
    assert watch("cli-run") == as_opened


@pytest.mark.slow
def test_the_compare_link_opens_the_compare_tab_on_that_run():
    linked = app.open_comparison("reference", SimpleNamespace(query_params={"compare": "search"}))
    assert linked["tabs"]["selected"] == "compare" and linked["run"]["value"] == "search"
    assert "### Run `search`" in linked["header"]
    plain = app.open_comparison("reference", SimpleNamespace(query_params={}))
    assert "selected" not in plain["tabs"] and "value" not in plain["run"]
    assert "### Run `reference`" in plain["header"]
    assert any(getattr(f.fn, "__name__", "") == "open_comparison" for f in app.demo.fns.values())  # on page load
