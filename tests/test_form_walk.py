"""Every input of the Distill form, given nonsense (empty, text, a negative number, a number out of range), is
refused before any job is queued, at its own field, in a message that names the field by its label: through the
API (gradio_client) and in Debian's Chromium, as a person would type it."""

from __future__ import annotations

import re

import pytest
from gradio_client import Client
from test_app import job_args
from test_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, open_section

import app

SEARCH = {"search": True, "strategies": ["top_k"]}  # a search tunes one strategy
# (field, value sent, other settings it needs): each must be refused at `field`.
NUMBER_CASES = [
    *[(name, value, {}) for name in app.NUMBERS for value in (None, "", "abc", -3)],
    *[
        (name, value, {})
        for name, value in {
            "train_size": 10**8,
            "eval_size": 10**8,
            "student_layers": 9,  # the embedded teacher has 6 layers
            "epochs": 101,
            "teacher_epochs": 101,
            "batch_size": 5000,
            "learning_rate": 2,
            "temperature": 101,
            "weight_ce": 101,
            "weight_kl": 101,
            "weight_cos": 101,
            "weight_hidden": 101,
        }.items()
    ],
    ("train_size", 2.5, {}),
    ("weight_ce", 0, {"weight_kl": 0, "weight_cos": 0}),  # no loss at all
]
TEXT_CASES = [
    ("seeds", "", {}),
    ("seeds", "abc", {}),
    ("seeds", "-1", {}),
    ("seeds", "4294967296", {}),
    ("seeds", "1 1", {}),
    ("teacher_seeds", "abc", {}),
    ("teacher_seeds", "-1", {}),
    ("teacher_seeds", "1 1", {}),
    ("teacher_seeds", "0 1", {}),  # 3 seeds: not a multiple of 2 teachers
    ("layer_list", "abc", {}),
    ("layer_list", "-1", {}),
    ("layer_list", "0,9", {}),
    ("layer_list", "0,1,2,3,4,5", {}),
    ("layer_list", "2,0", {}),
    ("layer_list", "0,0", {"strategies": []}),
    ("layer_list", "top_k,odd", {"strategies": []}),
    ("run_name", "../x", {}),
    ("run_name", "x" * 100, {}),
    *[(name, value, SEARCH) for name in ("search_temperatures", "search_learning_rates") for value in ("", "abc")],
    ("search_temperatures", "-1", SEARCH),
    ("search_temperatures", "1000", SEARCH),
    ("search_learning_rates", "-1", SEARCH),
    ("search_learning_rates", "5", SEARCH),
    ("search_loss_weights", "", SEARCH),
    ("search_loss_weights", "abc", SEARCH),
    ("search_loss_weights", "-1:1:1", SEARCH),
    ("search_loss_weights", "1:1", SEARCH),
]
# What only an API client can send: choices outside a dropdown's, text for a checkbox, no file.
CHOICE_CASES = [
    ("teacher", "", {}),
    ("teacher", "no-such-org/no-such-model", {}),
    ("data", "", {}),
    ("data", "abc", {}),
    ("data_file", None, {"data": "upload"}),
    ("strategies", [], {}),
    ("strategies", ["nope"], {}),
    ("strategies", [3], {}),
    ("precision", "fp8", {}),
    *[(name, "abc", {}) for name in ("teacher_8bit", "optimizer_8bit", "search")],
]
INTERNAL_NAME = re.compile(rf"\b({'|'.join(n for n in app.LABELS if '_' in n)})\b")  # the form never says them


def refused_at(text: str) -> tuple[str, str]:
    """The field and message of Gradio's validation refusal as gradio_client raises it ("1 parameter(s) failed
    validation:" then "- <field>: <message>")."""
    lines = text.strip().splitlines()
    assert len(lines) == 2 and lines[0] == "1 parameter(s) failed validation:", text
    field, message = re.fullmatch(r"- (\w+): (.*)", lines[1]).groups()
    return field, message


def api_refusal(client: Client, field: str, value, needs: dict) -> str:
    """The message /run_job refuses `value` of `field` with; it fails unless the refusal is at `field`."""
    with pytest.raises(Exception) as refused:
        client.predict(**job_args(**{**needs, field: value}), api_name="/run_job")
    at, message = refused_at(str(refused.value))
    assert at == field, f"{field}={value!r} was refused at {at}: {message}"
    return message


def test_form_labels_are_the_components_labels():
    """The labels the messages use are the ones the form shows: every field of /run_job has one."""
    assert set(app.LABELS) == {p for p in app.inspect.signature(app.run_job).parameters} - {"progress", "request"}
    assert app.in_form_words("learning_rate must be a positive number, not 0", "learning_rate") == (
        "Learning rate must be a positive number, not 0"
    )


@pytest.mark.slow
def test_every_field_refuses_nonsense_through_the_api(app_server):
    url, results = app_server
    client = Client(url, verbose=False)
    before = sorted(results.iterdir())
    for field, value, needs in NUMBER_CASES + TEXT_CASES + CHOICE_CASES:
        message = api_refusal(client, field, value, needs)
        case = f"{field}={value!r}: {message}"
        assert message.startswith(app.short_label(field)), case
        assert not INTERNAL_NAME.search(message), case
    assert sorted(results.iterdir()) == before, "no job started"
    # The issue's own examples, word for word.
    for field, value, expected in [
        ("train_size", "abc", "Train examples must be a whole number (0 = all), not 'abc'"),
        ("train_size", None, "Train examples must be a whole number (0 = all)"),
        ("learning_rate", 0, "Learning rate must be a positive number, not 0"),
        ("eval_size", -1, "Validation examples per split must be a whole number from 0 (all) to 10,000,000"),
        ("layer_list", "0,9", "Explicit layer list: layer index 9 is out of range: the teacher's layers are 0..5"),
    ]:
        assert api_refusal(client, field, value, {}) == expected
    # Every refused field at once, a taken run name not hiding the others.
    with pytest.raises(Exception) as refused:
        client.predict(
            **job_args(train_size=-1, seeds="abc", layer_list="0,9", run_name="reference"), api_name="/run_job"
        )
    assert str(refused.value).startswith("4 parameter(s) failed validation:")
    assert re.findall(r"^- (\w+):", str(refused.value), re.M) == ["train_size", "layer_list", "seeds", "run_name"]


TYPED = {"": "", None: ""}  # what a person leaves in an emptied field


@pytest.mark.slow
@pytest.mark.browser
def test_every_field_refuses_nonsense_in_chromium(app_server):
    """In the browser: each number and text field, given each case, is refused at that field (its label shows the
    message) and nothing runs; letters typed into a number field empty it, which is refused too."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    url, results = app_server
    client = Client(url, verbose=False)
    before = sorted(results.iterdir())
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        # The page's own opening events first: in Gradio 6.31 an event that ends as a validator's answer arrives
        # can wipe the marks that answer set (the line by the Run button stays).
        page.wait_for_load_state("networkidle")
        run = page.get_by_role("button", name="Run", exact=True)
        header = page.locator("#job-header")
        # Several faults at once, one of them in a section folded away: each is marked, the section opens, and
        # the line by the Run button says what to fix.
        open_section(page, "Training settings")
        page.get_by_label(app.LABELS["batch_size"], exact=True).fill("0")
        page.get_by_text("Training settings", exact=True).click()
        page.get_by_label(app.LABELS["train_size"], exact=True).fill("-1")
        run.click()
        sync_api.expect(header).to_contain_text("Not started: fix the 2 setting(s) marked in red", timeout=10_000)
        sync_api.expect(header).to_contain_text("Train examples must be a whole number from 0 (all)")
        sync_api.expect(header).to_contain_text("Batch size must be a positive number, not 0")
        sync_api.expect(page.locator("div.validation-error")).to_have_count(2)
        sync_api.expect(page.get_by_label(app.LABELS["batch_size"], exact=True)).to_be_visible()  # opened
        page.screenshot(path=str(ARTIFACTS / "form-refused.png"))
        page.get_by_label(app.LABELS["batch_size"], exact=True).fill(str(app.FORM_START["batch_size"]))
        page.get_by_label(app.LABELS["train_size"], exact=True).fill(str(app.FORM_START["train_size"]))
        strategies = page.locator("#job-strategies")
        for name in app.FORM_START["strategies"][1:]:  # one strategy, as a search needs
            strategies.get_by_label(name, exact=True).uncheck()
        open_section(page, "Hyperparameter search (a job mode)")
        search = page.get_by_label(app.LABELS["search"], exact=True)
        errors = page.locator("div.validation-error")
        typed = [case for case in NUMBER_CASES + TEXT_CASES if set(case[2]) <= {"search", "strategies"}]
        for name, value, needs in typed:  # with the other fields as the form has them
            field = page.locator(
                f"xpath=//label[normalize-space(span[@data-testid='block-info']/text()[1])=\"{app.LABELS[name]}\"]"
            )
            box = field.locator("input, textarea").first
            kept = box.input_value()
            search.set_checked(bool(needs.get("search")))
            box.click()
            box.press("Control+a")
            box.press("Delete")
            # A number input drops the letters, as for a person; typed at a person's pace (Gradio 6.31 can write
            # a number back into its box between two keys a robot types at once: "2.5" became "52")
            page.keyboard.type(str(TYPED.get(value, value)), delay=40)
            run.click()
            sent = box.input_value() if name not in app.NUMBERS or box.input_value() else None
            expected = api_refusal(client, name, sent, needs)  # the API's message for what the form holds
            sync_api.expect(field.locator("div.validation-error")).to_have_text(expected, timeout=10_000)
            sync_api.expect(errors).to_have_count(1)
            box.fill(kept)
        search.set_checked(False)
        page.screenshot(path=str(ARTIFACTS / "form-walk.png"))
        browser.close()
    assert sorted(results.iterdir()) == before, "no job started"
