"""Browser: the Diffusion tab's Stop button ends a streamed run: the steps stop coming, no result
arrives, and the next Generate runs to the end."""

from __future__ import annotations

import re
import time

from tests.conftest import ARTIFACTS


def test_stop_ends_a_streamed_run(page, app_server: str) -> None:
    page.goto(app_server, wait_until="load")
    page.get_by_role("tab", name="Diffusion").click()
    steps = page.locator("#diffusion-steps input[type=number]")
    steps.fill("100")
    steps.press("Enter")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text(re.compile(r"step \d+ of 100")).first.wait_for(timeout=120_000)
    page.locator("#diffusion-stop").click()
    time.sleep(1.0)  # what was in flight when Stop was pressed has arrived
    stopped_at = page.get_by_text(re.compile(r"step \d+ of 100")).first.inner_text()
    time.sleep(2.0)  # a running loop would be 30+ steps further by now
    assert page.get_by_text(re.compile(r"step \d+ of 100")).first.inner_text() == stopped_at
    assert page.get_by_text(re.compile(r"Done in")).count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "diffusion-stopped.png"), full_page=True)
    steps.fill("5")
    steps.press("Enter")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text(re.compile(r"Done in [0-9.]+ s: 5 ddim steps")).first.wait_for(
        timeout=120_000)
    assert page.console_errors == [], page.console_errors
