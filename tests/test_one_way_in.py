"""A job's way in: its settings, teacher and data are checked once, into the plan that runs, whichever door it
comes through (the app's API with its validator, the command line with a job file and flags, `JobRunner`)."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml
from gradio_client import Client
from test_app import job_args
from tiny import TINY

import distill.job
import distill.plan
from distill.cli import main
from distill.config import JobConfig
from distill.service import JobRunner

# What a job's way in must do once each: (where it is looked up, its name).
COUNTED = {
    "settings checked": (JobConfig, "validated"),
    "teacher config read": (distill.plan, "load_model_config"),
    "data read": (distill.plan, "load_job_data"),
}
ONCE = dict.fromkeys([*COUNTED, "model cards written"], 1)


@pytest.fixture
def counts(monkeypatch) -> Counter:
    """How often each step of COUNTED ran for the job named `counted` (other runs the app reads are not it) up to
    its last step: once it ends, its model cards read the run back from its folder, as any later reader does."""
    counted, running = Counter(), Counter()
    for what, (owner, name) in COUNTED.items():
        original = getattr(owner, name)

        def counting(first, *args, _what=what, _original=original, **kwargs):
            if getattr(first, "run_name", "counted") == "counted":
                running[_what] += 1
            return _original(first, *args, **kwargs)

        monkeypatch.setattr(owner, name, counting)
    write_cards = distill.job.write_model_cards

    def cards_at_the_end(run):
        if run.name == "counted":
            counted.update(running)
            counted["model cards written"] += 1
        return write_cards(run)

    monkeypatch.setattr(distill.job, "write_model_cards", cards_at_the_end)
    return counted


@pytest.mark.slow
def test_a_job_sent_to_the_apps_api_is_checked_once_between_its_validator_and_its_last_step(app_server, counts):
    """The validator checks the job before it joins the queue; the job's own request and the worker run that
    check's plan, rather than checking and reading everything again."""
    client = Client(app_server[0], verbose=False)
    final = list(client.submit(**job_args(run_name="counted", strategies=["top_k"]), api_name="/run_job"))[-1]
    assert final["state"] == "completed" and final["run"] == "counted"
    assert counts == ONCE, counts


@pytest.mark.slow
def test_a_job_run_from_a_job_file_and_flags_is_checked_once(tiny_bert, tmp_path, counts):
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({**TINY, "teacher": str(tiny_bert), "strategies": ["top_k"]}))
    flags = ["--run-name", "counted", "--seeds", "0", "--results-dir", str(tmp_path / "runs"), "--quiet"]
    assert main(["run", "--config", str(job_file), *flags]) == 0
    assert counts == ONCE, counts


@pytest.mark.slow
def test_a_job_handed_to_the_runner_is_checked_once(tiny_cfg, counts):
    cfg = tiny_cfg.replace(run_name="counted")
    final = list(JobRunner().stream(cfg, poll_seconds=0.1))[-1]
    assert final["state"] == "completed"
    assert counts == ONCE, counts  # the `replace` above, the caller's own, is the one check of the settings


def test_a_job_that_cannot_work_is_refused_when_it_is_handed_over(tiny_cfg):
    """`JobRunner.submit` plans the job at once: a layer list the teacher cannot give is refused there, not after
    the jobs ahead of it."""
    with pytest.raises(distill.config.ConfigError, match="out of range") as refused:
        JobRunner().submit(tiny_cfg.replace(strategies=["0,9"]))
    assert refused.value.setting == "layer_list"
