"""Browser: Debian's Chromium, driven by Playwright, visits every tab of the running studio.

Fails on console errors and on any request to a host other than the app's own. Screenshots go to
test-artifacts/ (one per tab, and one on failure).
"""

from __future__ import annotations

from tests.conftest import ARTIFACTS

TABS = ["Tokenize (VQ)", "Diffusion", "DiT", "Tokens vs noise", "Audio", "Video", "Similarity",
        "Worlds", "Models"]


def test_every_tab_opens_without_errors_or_foreign_requests(page, app_server: str) -> None:
    page.goto(app_server, wait_until="load")
    page.get_by_role("heading", name="mmstudio").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    for name in TABS:
        page.get_by_role("tab", name=name).click()
        page.wait_for_timeout(300)
        slug = name.lower().replace(" ", "-").replace("(", "").replace(")", "").replace("&", "and")
        page.screenshot(path=str(ARTIFACTS / f"tab-{slug}.png"), full_page=True)
    # The Models tab lists the catalog with availability.
    assert page.get_by_text("facebook/DiT-XL-2-256").first.is_visible()
    page.get_by_role("button", name="Refresh").click()
    page.get_by_text("Devices:").first.wait_for()
    assert page.console_errors == [], page.console_errors
    assert page.foreign_requests == [], page.foreign_requests
