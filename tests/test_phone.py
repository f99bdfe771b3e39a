"""Compare on a phone (390×844, Debian Chromium): the comparison table keeps readable columns and scrolls
sideways inside its own frame, under a line that says so (on a phone only), the page itself does not, and no
header is clipped. A screenshot is kept in
tests/artifacts/compare-phone.png."""

from __future__ import annotations

import pytest
from test_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Per header and body cell: its box, and whether its text is cut off (wider than the cell shows).
CELLS = """() => [...document.querySelectorAll('#comparison-table :is(th.header-cell, .body-cell)')].map(cell => {
  const text = cell.querySelector('span') || cell;
  const ruler = document.createElement('canvas').getContext('2d');
  ruler.font = getComputedStyle(text).font;
  const words = cell.textContent.trim().split(/(?<=-)|\\s+/).map(word => ruler.measureText(word).width);
  return {header: cell.tagName === 'TH', text: cell.textContent.trim(), width: cell.getBoundingClientRect().width,
          clipped: text.scrollWidth > text.clientWidth + 1, cut: Math.max(...words) > text.clientWidth + 1};
})"""


def test_compare_on_a_phone_scrolls_the_table_not_the_page(app_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    url, _ = app_server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        page = phone.new_page()
        page.goto(url + "?compare=reference")
        table = page.locator("#comparison-table")
        sync_api.expect(table.locator("th.header-cell").first).to_be_visible(timeout=60_000)
        sync_api.expect(table.locator(".body-cell").first).to_be_visible()
        table.scroll_into_view_if_needed()
        cells = page.evaluate(CELLS)
        frame = table.locator(".virtual-table-viewport")
        widths = frame.evaluate("e => [e.scrollWidth, e.clientWidth]")
        page_width = page.evaluate("() => document.scrollingElement.scrollWidth")
        page.screenshot(path=str(ARTIFACTS / "compare-phone.png"))
        frame.evaluate("e => e.scrollLeft = e.scrollWidth")  # the last columns, one swipe away
        page.screenshot(path=str(ARTIFACTS / "compare-phone-scrolled.png"))
        cue = page.locator("#swipe-cue")
        sync_api.expect(cue).to_be_visible()
        sync_api.expect(cue).to_contain_text("Swipe the table sideways")
        cue_above = cue.bounding_box()["y"] < table.bounding_box()["y"]
        desk = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        desk.goto(url + "?compare=reference")
        sync_api.expect(desk.locator("#comparison-table .body-cell").first).to_be_visible(timeout=60_000)
        sync_api.expect(desk.locator("#swipe-cue")).to_be_hidden()  # a desktop's table fits: no cue
        browser.close()
    assert cue_above, "the cue is read before the table"
    headers = [c for c in cells if c["header"]]
    assert len(headers) >= 10, headers
    assert all(c["width"] >= 50 for c in cells), [c for c in cells if c["width"] < 50][:3]
    assert not [c["text"] for c in headers if c["clipped"] or c["cut"]], "a header is cut off, or a word of it"
    assert widths[0] > widths[1] + 200, "the table scrolls sideways in its frame"
    assert page_width <= 390, "the page itself does not scroll sideways"
