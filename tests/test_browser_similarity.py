"""Browser: the Similarity tab end to end in Chromium (Playwright) against `python app.py`.

Clicks Compare with the default inputs, waits for the heatmap, the zero-shot bar chart, the
retrieval gallery and the map; switches the zero-shot classes; then checks that a bad input shows
a clear message and the tab keeps working. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re

from tests.conftest import ARTIFACTS

TIMEOUT = 60_000


def _open_tab(page, app_server: str) -> None:
    page.goto(app_server, wait_until="load", timeout=TIMEOUT)
    page.get_by_role("tab", name="Similarity").click(timeout=TIMEOUT)
    page.get_by_role("button", name="Compare").wait_for(timeout=TIMEOUT)


def test_similarity_tab_end_to_end(page, app_server: str) -> None:
    _open_tab(page, app_server)
    page.get_by_role("button", name="Compare").click()
    heatmap = page.locator("#similarity-matrix img")
    bars = page.locator("#similarity-zero-shot img")
    pca = page.locator("#similarity-map img")
    for picture in (heatmap, bars, pca):  # images load lazily: each is scrolled to, as read
        picture.wait_for(state="attached", timeout=TIMEOUT)
        picture.scroll_into_view_if_needed(timeout=TIMEOUT)
        picture.wait_for(timeout=TIMEOUT)
        page.wait_for_function("img => img.complete && img.naturalWidth > 300",
                               arg=picture.element_handle(), timeout=TIMEOUT)
    page.get_by_text("Logit scale").first.wait_for(timeout=TIMEOUT)
    page.get_by_text("images x 8 texts").first.wait_for(timeout=TIMEOUT)
    page.get_by_text(re.compile(r"#1\s+cos ")).first.wait_for(timeout=TIMEOUT)  # retrieval
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "similarity-compare.png"), full_page=True)

    # another class set for the bar chart: the image changes
    before = bars.get_attribute("src")
    page.get_by_label("Classes").click()
    page.get_by_role("option", name="shapes position").click()
    page.wait_for_function(
        "old => { const i = document.querySelector('#similarity-zero-shot img');"
        " return i && i.src !== old; }", arg=before, timeout=TIMEOUT)
    page.locator("#similarity-zero-shot").screenshot(
        path=str(ARTIFACTS / "similarity-zero-shot-position.png"))
    assert page.console_errors == [], page.console_errors
    assert page.foreign_requests == [], page.foreign_requests


def test_similarity_tab_bad_input_message(page, app_server: str) -> None:
    _open_tab(page, app_server)
    texts = page.get_by_label("Texts (one per line", exact=False)
    texts.fill("x" * 10_000)
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("10,000 characters").first.wait_for(timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "similarity-bad-input.png"), full_page=True)
    texts.fill("a red circle\na blue square")
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("images x 2 texts").first.wait_for(timeout=TIMEOUT)
    assert page.foreign_requests == [], page.foreign_requests
