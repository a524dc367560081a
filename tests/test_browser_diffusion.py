"""Browser: the Diffusion tab end to end: generate, wait for the stream to end, scrub the steps."""

from __future__ import annotations

import re

from tests.conftest import ARTIFACTS

PANELS = ["#diffusion-xt", "#diffusion-x0", "#diffusion-eps"]


def panel_sources(page) -> list[str]:
    return [page.locator(f"{panel} img").first.get_attribute("src") or "" for panel in PANELS]


def test_generate_stream_and_scrub(page, app_server: str) -> None:
    page.goto(app_server, wait_until="load")
    page.get_by_role("tab", name="Diffusion").click()
    steps = page.locator("#diffusion-steps input[type=number]")
    steps.fill("10")
    steps.press("Enter")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text(re.compile(r"Done in [0-9.]+ s")).first.wait_for(timeout=120_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "diffusion-generated.png"), full_page=True)
    last = panel_sources(page)
    assert all(last), "the three panels show the last step"
    page.locator("#diffusion-step input[type=range]").fill("1")
    page.get_by_text("step 1 of 10").first.wait_for(timeout=30_000)
    first = panel_sources(page)
    assert all(first) and all(a != b for a, b in zip(first, last, strict=True)), \
        "scrubbing to step 1 changes x_t, predicted x0 and predicted noise"
    page.screenshot(path=str(ARTIFACTS / "diffusion-scrubbed.png"), full_page=True)
    # The forward process panel fills when opened: x_0, x_t, the noise and the schedules.
    page.get_by_text("Forward process: how noise is added").click()
    page.get_by_text(re.compile(r"t = 400: signal share ab = 0\.\d+")).first.wait_for(
        timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "diffusion-forward.png"), full_page=True)
    assert page.console_errors == [], page.console_errors
    assert page.foreign_requests == [], page.foreign_requests
