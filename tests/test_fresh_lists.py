"""Compare's runs and Chat's models are the ones that exist now: on page load (a run written after the app
started, such as the Space's own quick student or a resumed run, is listed without a button) and when the job
on screen ends."""

from __future__ import annotations

import re

import pytest
from test_browser import CHROMIUM, LAUNCH_ARGS
from tiny import copy_run


def options(page, label: str) -> list[str]:
    """A Gradio dropdown's options, as a person sees them when they open it."""
    page.get_by_label(label, exact=True).click()
    shown = page.get_by_role("option")
    shown.first.wait_for()
    names = [text.split("\n")[-1] for text in shown.all_inner_texts()]  # the picked one has a tick first
    page.keyboard.press("Escape")
    return names


@pytest.mark.slow
@pytest.mark.browser
def test_lists_are_fresh_on_page_load(app_server, good_run):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    url, results = app_server
    copy_run(good_run, results, "written-after-start")  # the page was built before it existed
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_role("tab", name="Compare").click()
        sync_api.expect(page.get_by_label("Run", exact=True)).not_to_have_value("", timeout=60_000)
        runs = options(page, "Run")
        page.get_by_role("tab", name="Chat").click()
        models = options(page, "Model (run/model)")
        browser.close()
    assert any(re.match(r"written-after-start\b", name) for name in runs), runs
    assert "written-after-start/top_k-seed0" in models, models


def test_lists_follow_the_job_on_screen(app_server, good_run):
    import app

    _, results = app_server
    copy_run(good_run, results, "just-ended")
    running = app.lists_after({"run": "just-ended", "state": "running", "models": []})
    assert all(update == app.gr.skip() for update in running.values()), "nothing changes while it runs"
    ended = app.lists_after({"run": "just-ended", "state": "completed", "models": []})
    assert ended["compare_run"]["value"] == "just-ended", "Compare opens on the job's run"
    assert "just-ended" in [value for _, value in ended["compare_run"]["choices"]]
    assert "just-ended/even-seed0" in ended["model"]["choices"]
    failed = app.lists_after({"run": "just-ended", "state": "failed", "models": []})  # nothing to compare
    assert "value" not in failed["compare_run"] and "just-ended/top_k-seed0" in failed["model"]["choices"]
