"""Browser: the Video tab end to end in Chromium (Playwright) against `python app.py`.

Generates a clip (streamed filmstrips, then the clip plays as a video), scrubs a step and a frame
of the finished run, and checks the clip's video element really plays. Until motion-dit is
shipped, the app is served with the shipped assets plus a motion-dit of random weights in the
shipped folder layout (16 frames over shapes-vae latents): the flow is the same, only the frames
are noise. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import pytest

from mmstudio.config import Settings
from tests import tiny_models
from tests.conftest import ARTIFACTS, serve_app

TIMEOUT = 120_000
SHIPPED = Settings.from_env().models_dir


@pytest.fixture(scope="module")
def video_server(tmp_path_factory: pytest.TempPathFactory):
    if any((SHIPPED / "motion-dit").rglob("*.safetensors")):
        yield from serve_app(tmp_path_factory)
        return
    assets = tmp_path_factory.mktemp("video-assets")
    for entry in SHIPPED.parent.iterdir():  # examples/ and the other models as they ship
        if entry.name != "models":
            (assets / entry.name).symlink_to(entry)
    (assets / "models").mkdir()
    for model in SHIPPED.iterdir():
        if model.name != "motion-dit":
            (assets / "models" / model.name).symlink_to(model)
    tiny_models.make_latte(assets / "models" / "motion-dit", "shapes-vae", frames=16,
                           sample_size=8)
    yield from serve_app(tmp_path_factory, MMSTUDIO_ASSETS=str(assets))


@pytest.fixture
def video_page(browser, video_server: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(video_server, wait_until="load", timeout=TIMEOUT)
    page.get_by_role("tab", name="Video").click(timeout=TIMEOUT)
    page.locator("#video-generate").wait_for(timeout=TIMEOUT)
    yield page
    assert not errors, errors
    context.close()


def _src(page, selector: str) -> str:
    return page.locator(f"{selector} img").first.get_attribute("src") or ""


def _wait_for_new_picture(page, selector: str, before: str) -> None:
    """Until the panel shows a loaded picture other than ``before``."""
    page.wait_for_function(
        f"() => {{ const img = document.querySelector('{selector} img');"
        f" return img && img.src && img.src !== {before!r} && img.complete"
        " && img.naturalWidth > 0; }", timeout=TIMEOUT)
    page.locator("#video-status").get_by_text("step 2 of 6").wait_for(timeout=TIMEOUT)


def test_generate_scrub_and_play(video_page) -> None:
    page = video_page
    page.locator("#video-steps input[type=number]").fill("6")
    page.locator("#video-steps input[type=number]").press("Enter")
    page.locator("#video-generate").click()
    page.locator("#video-status").get_by_text("Done").wait_for(timeout=TIMEOUT)
    assert "16 frames" in page.locator("#video-status").inner_text()
    strip = page.locator("#video-x0 img").first
    assert strip.evaluate("img => img.naturalWidth") > strip.evaluate("img => img.naturalHeight")

    video = page.locator("#video-clip video")
    video.wait_for(timeout=TIMEOUT)
    page.wait_for_function(
        "() => { const v = document.querySelector('#video-clip video');"
        " return v && v.readyState >= 2 && v.duration > 1.5; }", timeout=TIMEOUT)
    duration = video.evaluate("v => v.duration")
    assert 1.8 <= duration <= 2.2  # 16 frames at 8 fps
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "() => document.querySelector('#video-clip video').currentTime > 0.2", timeout=TIMEOUT)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "video-generated.png"), full_page=True)

    # scrub back to step 2 and to frame 5: new pictures, no new run
    before_step, before_frame = _src(page, "#video-x0"), _src(page, "#video-frame-x0")
    step = page.locator("#video-step input[type=number]")
    step.fill("2")
    step.press("Enter")
    _wait_for_new_picture(page, "#video-x0", before_step)
    frame = page.locator("#video-frame input[type=number]")
    frame.fill("5")
    frame.press("Enter")
    _wait_for_new_picture(page, "#video-frame-x0", before_frame)
    # the pictures and the status line arrive in one update but render one after the other
    page.locator("#video-status").get_by_text("frame 5 of 0 to 15").wait_for(timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "video-scrubbed.png"), full_page=True)


def test_bad_input_gets_a_clear_message_and_the_server_keeps_serving(video_page) -> None:
    page = video_page
    caption = page.locator("#video-caption textarea")
    caption.fill("a red circle " * 100)  # 1,300 characters
    page.locator("#video-generate").click()
    toast = page.locator(".toast-body").first
    toast.wait_for(timeout=TIMEOUT)
    assert "characters long" in " ".join(toast.inner_text().split())
    caption.fill("a blue square moving up on a gray background")
    page.locator("#video-steps input[type=number]").fill("2")
    page.locator("#video-steps input[type=number]").press("Enter")
    page.locator("#video-generate").click()
    page.locator("#video-status").get_by_text("Done").wait_for(timeout=TIMEOUT)
