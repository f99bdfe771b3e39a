"""Drive the real app in Debian's Chromium, as a person would: run a tiny job, compare it, chat with a student.

Needs /usr/bin/chromium (never `playwright install`). Without it the test is skipped locally and fails under CI.
Screenshots of each tab go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
JOB_TIMEOUT_S = 240
RUN = "browser-run"
REPLY = re.compile(r"\b(entailment|neutral|contradiction)\b.*\d+(\.\d+)?%", re.S)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser_context():
    in_ci = bool(os.environ.get("CI"))
    if not CHROMIUM.exists():
        if in_ci:
            pytest.fail(f"{CHROMIUM} is missing; CI must install Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed")
    if in_ci:
        import playwright.sync_api as sync_api  # CI installs it: missing is a failure, not a skip
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser.new_context(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(browser_context):
    return browser_context.new_page()


def _wait_for_job(page, header, log) -> str:
    """Poll the job header until the run finishes; return the header's final text."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    text = ""
    while time.monotonic() < deadline:
        text = header.inner_text() if header.count() else ""
        if re.search(r"\b(completed|failed|stopped)\b", text):
            return text
        page.wait_for_timeout(500)
    pytest.fail(f"job did not finish in {JOB_TIMEOUT_S} s; header {text!r}; log:\n{log.input_value()}")


def open_section(page, title: str) -> None:
    """Open a folded section of the form, as a person would, and wait out its first drawing: for under 100 ms
    (measured, Gradio 6.31) that can reset what is typed into its fields, faster than a person types."""
    page.get_by_role("button", name=title).click()
    page.wait_for_timeout(300)


def _choose(page, dropdown_label: str, option: str) -> None:
    """Pick an option from a Gradio dropdown, as a person would: open it, click the option."""
    box = page.get_by_label(dropdown_label, exact=True)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    _expect()(box).to_have_value(option)


def _expect():
    from playwright.sync_api import expect  # imported late: the module must import without Playwright

    return expect


# The entries of a plot's legend that a person sees: Vega-Lite draws it in SVG, one text per entry; an entry cut
# off by the plot's box (as a fixed height once did) does not count.
LEGEND_JS = """id => {
    const plot = document.getElementById(id);
    if (!plot) return [];
    const box = plot.getBoundingClientRect();
    return [...plot.querySelectorAll('.role-legend-label text')].filter(text => {
        const r = text.getBoundingClientRect();
        return r.width > 0 && r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
    }).map(text => text.textContent);
}"""


def _expect_legend(page, plot_id: str, names: list[str]) -> None:
    """Wait until the plot's visible legend names exactly `names` (in any order)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    wanted = sorted(names)
    try:
        page.wait_for_function(
            f"([id, wanted]) => JSON.stringify(({LEGEND_JS})(id).sort()) === JSON.stringify(wanted)",
            arg=[plot_id, wanted],
            timeout=30_000,
        )
    except PlaywrightTimeout:
        pytest.fail(f"legend of #{plot_id} shows {page.evaluate(LEGEND_JS, plot_id)}, expected {wanted}")


def _expect_answer_in_view(grid) -> None:
    """The columns of the answer (accuracy, the difference to the best, how sure) lie inside the table's box
    without scrolling; the details after them may take a sideways scroll, no word of theirs cut."""
    right = grid.bounding_box()["x"] + grid.bounding_box()["width"]
    headers = grid.get_by_role("columnheader")
    titles = [headers.nth(i).inner_text().replace("⋮", "").strip() for i in range(headers.count())]
    assert "sure? (p)" in titles, titles
    for i in range(titles.index("sure? (p)") + 1):
        box = headers.nth(i).bounding_box()
        assert box["x"] + box["width"] <= right + 1, f"column {titles[i]!r} is out of view"


def test_distill_compare_chat(app_server, page):
    expect = _expect()
    url, results = app_server
    page.set_default_timeout(30_000)
    page.goto(url)

    # 1. the three tabs
    for name in ("Distill", "Compare", "Chat"):
        expect(page.get_by_role("tab", name=name)).to_be_visible()

    # 1b. on a fresh start, Compare shows the committed reference run, labelled as such; an ensemble adds a row
    page.get_by_role("tab", name="Compare").click()
    # the table is computed on page load (paired bootstraps over 9,815 examples): allow it time on a busy CPU
    heading = page.get_by_role("heading", name=re.compile(r"^Run reference · reference · completed · teacher: "))
    expect(heading).to_be_visible(timeout=60_000)
    reference = page.get_by_role("grid", name="Strategy comparison")
    reference_strategies = ["teacher", "top_k", "bottom_k", "odd", "even", "importance"]
    for strategy in reference_strategies:
        row = reference.get_by_role("row").filter(has=page.get_by_role("gridcell", name=strategy, exact=True))
        expect(row).to_have_count(1, timeout=30_000)
    # the verdict, in bold above the table, says what the tests say: the best, the runner-ups within its noise,
    # the ones it beats, and the confirmation on the other split
    verdict = page.locator("strong").filter(
        has_text=re.compile(r"^Layer choice matters here.*odd is best \(64\.2%\), but not clearly ahead of")
    )
    expect(verdict).to_be_visible()
    expect(verdict).to_contain_text("importance (-0.6 points, 95% range -1.4 to +0.3) and top_k (-0.9 points)")
    expect(verdict).to_contain_text("confirmed on the other check set (MNLI validation, unseen genres)")
    _expect_answer_in_view(reference)
    expect(reference.get_by_role("columnheader", name="vs best, other check set")).to_be_visible()
    for plot in ("accuracy-plot", "latency-plot"):  # each plot names every strategy it draws
        _expect_legend(page, plot, reference_strategies)
    losses = ["training loss", "labels (ce)", "teacher's answers (kl)"]
    _expect_legend(page, "loss-plot", [*losses, "teacher's logits (cos)", "validation loss"])
    expect(page.locator("#loss-plot")).to_contain_text("Loss curves of top_k")
    ensemble = page.locator("#ensemble-picker")
    ensemble.get_by_role("checkbox", name="top_k", exact=True).check()
    ensemble.get_by_role("checkbox", name="odd", exact=True).check()
    expect(reference.get_by_role("gridcell", name="ensemble(top_k+odd)", exact=True)).to_have_count(1, timeout=60_000)
    _expect_legend(page, "latency-plot", [*reference_strategies, "ensemble(top_k+odd)", "odd×2 seeds"])
    _expect_answer_in_view(reference)
    page.screenshot(path=ARTIFACTS / "reference.png", full_page=True)

    # 2. a tiny job from the Distill tab
    page.get_by_role("tab", name="Distill").click()
    page.get_by_label("Train examples (0 = all)", exact=True).fill("64")
    page.get_by_label("Validation examples per split (0 = all)", exact=True).fill("32")
    for strategy, keep in (("top_k", True), ("bottom_k", False), ("odd", False), ("even", True)):
        page.get_by_role("checkbox", name=strategy, exact=True).set_checked(keep)
    open_section(page, "Training settings")
    page.get_by_label("Student epochs", exact=True).fill("1")
    page.get_by_label("Teacher epochs", exact=True).fill("1")
    page.get_by_label("Run name (optional)", exact=True).fill(RUN)
    page.get_by_role("button", name="Run", exact=True).click()

    header = page.locator(".prose").filter(has_text=re.compile(r"· run\b")).first
    log = page.get_by_label("Log", exact=True)
    final = _wait_for_job(page, header, log)
    assert re.search(rf"^completed · run {RUN}\b", final), f"header {final!r}; log:\n{log.input_value()}"
    expect(log).to_have_value(re.compile(rf"run {RUN} completed"))
    assert (results / RUN).is_dir()
    page.screenshot(path=ARTIFACTS / "distill.png", full_page=True)

    link = page.get_by_role("link", name="see how its models compare")  # the finished job points to its results
    expect(link).to_have_attribute("href", f"?compare={RUN}")

    # 3. the run in the Compare tab, which the job's end opened on it: no refresh, no picking
    page.get_by_role("tab", name="Compare").click()
    expect(page.get_by_label("Run", exact=True)).to_have_value(f"{RUN} · your run")
    table = page.get_by_role("grid", name="Strategy comparison")
    for strategy in ("teacher", "top_k", "even"):  # one row each, its first cell the strategy, then a % accuracy
        row = table.get_by_role("row").filter(has=page.get_by_role("gridcell", name=strategy, exact=True))
        expect(row).to_have_count(1)
        expect(row).to_contain_text(re.compile(r"\d+\.\d+%"))
    expect(table.get_by_role("row")).to_have_count(4)  # the header and three models, nothing from unchecked strategies
    expect(table).not_to_contain_text("bottom_k")
    expect(
        page.locator("strong").filter(
            # a teacher trained on 64 pairs may be no better than guessing, and two students may tie: both are said
            has_text=re.compile(
                r"^(The teacher is no better than guessing .+? epochs\. )?(.+?\)\. )?"
                r"(top_k|even) (is best|scored highest|is level with (top_k|even) at the top) \(\d+\.\d%\)"
            )
        )
    ).to_be_visible()
    for plot in ("accuracy-plot", "latency-plot"):  # redrawn for the new run: its strategies only, each named
        _expect_legend(page, plot, ["teacher", "top_k", "even"])
    page.screenshot(path=ARTIFACTS / "compare.png", full_page=True)

    # 4. a student in the Chat tab
    page.get_by_role("tab", name="Chat").click()
    page.get_by_role("button", name="Refresh models").click()
    _choose(page, "Model (run/model)", f"{RUN}/top_k-seed0")
    query = page.get_by_label("Query (hypothesis)", exact=True)
    context = page.get_by_label("Context (premise, optional)", exact=True)
    send = page.get_by_role("button", name="Send", exact=True)
    bot = page.get_by_test_id("bot")
    query.fill("A man is sleeping.")
    context.fill("A man sleeps in his bed.")
    send.click()
    expect(bot).to_have_count(1, timeout=60_000)
    expect(bot.last).to_contain_text(REPLY)
    expect(bot.last).to_contain_text(f"{RUN}/top_k-seed0")
    expect(page.get_by_test_id("user").last).to_contain_text("A man is sleeping.")
    expect(query).to_have_value("")  # the box is cleared for the next question

    # 5. bad input: an empty query is refused with a readable message, and the page keeps working
    send.click()
    toast = page.get_by_test_id("toast-body").filter(has_text="type a query")
    expect(toast).to_be_visible()
    expect(bot).to_have_count(1)  # nothing was added to the conversation
    page.screenshot(path=ARTIFACTS / "chat-error.png", full_page=True)
    page.get_by_test_id("toast-close").first.click()
    expect(toast).to_have_count(0)
    query.click()
    query.fill("Nobody is in bed.")
    send.click()
    expect(bot).to_have_count(2, timeout=60_000)
    expect(bot.last).to_contain_text(REPLY)
    page.screenshot(path=ARTIFACTS / "chat.png", full_page=True)


def test_a_job_outlives_its_tab_and_its_link_watches_it(app_server, browser_context):
    """Start a job, close its tab mid-training: the job goes on; a fresh page opened at ?run=NAME (as another
    browser would) follows it live to the end, and again after a reload."""
    expect = _expect()
    url, results = app_server
    name = "tab-closed"
    first = browser_context.new_page()
    first.set_default_timeout(30_000)
    first.goto(url)
    first.get_by_label("Train examples (0 = all)", exact=True).fill("640")
    first.get_by_label("Validation examples per split (0 = all)", exact=True).fill("32")
    for strategy in ("top_k", "bottom_k", "odd", "even"):
        first.get_by_role("checkbox", name=strategy, exact=True).set_checked(strategy in ("top_k", "odd"))
    open_section(first, "Training settings")
    first.get_by_label("Student epochs", exact=True).fill("2")
    first.get_by_label("Teacher epochs", exact=True).fill("1")
    first.get_by_label("Run name (optional)", exact=True).fill(name)
    expect(first.locator("#where-jobs-run")).to_contain_text("you can close this tab")
    first.get_by_role("button", name="Run", exact=True).click()
    header = first.locator(".prose").filter(has_text=re.compile(r"· run\b")).first
    expect(header).to_contain_text(re.compile(r"running · run tab-closed · \S+ · step [1-9]"), timeout=120_000)
    expect(header.get_by_role("link", name="link to watch this run")).to_have_attribute("href", f"?run={name}")
    assert f"run={name}" in first.url, "the page's address names the run, so a reload watches it"
    first.screenshot(path=ARTIFACTS / "detached-before-close.png", full_page=True)
    first.close()

    time.sleep(3)  # the app has noticed the page is gone by now
    status = __import__("json").loads((results / name / "status.json").read_text())
    assert status["state"] == "running", f"closing the tab must not stop the job: {status}"

    second = browser_context.new_page()
    second.set_default_timeout(30_000)
    second.goto(f"{url}?run={name}")
    header = second.locator(".prose").filter(has_text=re.compile(r"· run\b")).first
    log = second.get_by_label("Log", exact=True)
    expect(header).to_contain_text(re.compile(rf"running · run {name}"), timeout=60_000)
    expect(header.locator("progress")).to_have_attribute("max", re.compile(r"^[1-9]\d*$"))  # a bar for any watcher
    # the form above shows the watched run's settings, not the defaults
    expect(second.get_by_label("Train examples (0 = all)", exact=True)).to_have_value("640")
    expect(second.get_by_role("checkbox", name="odd", exact=True)).to_be_checked()
    expect(second.get_by_role("checkbox", name="even", exact=True)).not_to_be_checked()
    final = _wait_for_job(second, header, log)
    assert re.search(rf"^completed · run {name}\b", final), f"header {final!r}; log:\n{log.input_value()}"
    expect(log).to_have_value(re.compile(rf"run {name} completed"))
    assert "stopped by the user" not in log.input_value()
    second.screenshot(path=ARTIFACTS / "detached-watched.png", full_page=True)
    second.reload()
    header = second.locator(".prose").filter(has_text=re.compile(r"· run\b")).first
    expect(header).to_contain_text(re.compile(rf"completed · run {name} · step (\d+)/\1"), timeout=60_000)
    expect(second.get_by_label("Log", exact=True)).to_have_value(re.compile(rf"run {name} completed"))
    second.close()
