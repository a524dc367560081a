"""Browser: the Tokenize (VQ) tab end to end in Chromium (Playwright) against `python app.py`.

Uploads an image, waits for the token grid, reconstruction and figures, clicks a cell of the token
grid, gives it another code and checks that the decoded image changes; then compares VQ-VAE and
VQGAN side by side, and checks that a bad upload gets a clear message. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

from mmstudio.config import Settings
from tests.conftest import ARTIFACTS

TIMEOUT = 90_000
EXAMPLES = Settings.from_env().examples_dir


def _open_tab(page, app_server: str) -> None:
    page.goto(app_server, wait_until="load", timeout=TIMEOUT)
    page.get_by_role("tab", name="Tokenize (VQ)").click(timeout=TIMEOUT)
    page.locator("#vq-tokenize").wait_for(timeout=TIMEOUT)


def _upload(page, path) -> None:
    page.locator("#vq-input input[type=file]").set_input_files(str(path))


def _src(page, selector: str) -> str:
    return page.locator(f"{selector} img").first.get_attribute("src") or ""


def test_upload_tokenize_and_edit_a_token(page, app_server: str) -> None:
    _open_tab(page, app_server)
    _upload(page, EXAMPLES / "shapes-blue-square.png")
    page.locator("#vq-figures").get_by_text("PSNR").wait_for(timeout=TIMEOUT)
    page.locator("#vq-notes").get_by_text("32 x 32 RGB (used as is)").wait_for(timeout=TIMEOUT)
    figures = page.locator("#vq-figures").inner_text()
    assert "dB" in figures and "576 (64 x 9)" in figures and "43x" in figures
    grid = page.locator("#vq-grid img")
    assert grid.evaluate("img => img.naturalWidth") >= 256
    recon = page.locator("#vq-recon img")
    assert recon.evaluate("img => img.naturalWidth") == 256
    before = _src(page, "#vq-recon")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "tokenize-upload.png"), full_page=True)

    # click the cell in row 3, column 4 of the 8 x 8 token grid
    box = grid.bounding_box()
    natural = grid.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    scale = min(box["width"] / natural[0], box["height"] / natural[1])
    left = (box["width"] - natural[0] * scale) / 2
    top = (box["height"] - natural[1] * scale) / 2
    cell = natural[0] * scale / 8
    grid.click(position={"x": left + 4.5 * cell, "y": top + 3.5 * cell})
    page.get_by_text("Selected cell (row 3, column 4)").wait_for(timeout=TIMEOUT)
    assert page.locator("#vq-row input").input_value() == "3"
    assert page.locator("#vq-col input").input_value() == "4"
    old_code = int(page.locator("#vq-code input").input_value())
    new_code = (old_code + 137) % 512
    page.locator("#vq-code input").fill(str(new_code))
    page.locator("#vq-set").click()
    page.get_by_text("1 token(s) edited").wait_for(timeout=TIMEOUT)
    page.get_by_text(f"now holds code {new_code}").wait_for(timeout=TIMEOUT)
    page.get_by_text(f"Selected cell (row 3, column 4) holding code {new_code}").wait_for(
        timeout=TIMEOUT)
    page.wait_for_function(
        "old => { const i = document.querySelector('#vq-recon img'); return i && i.src !== old; }",
        arg=before, timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "tokenize-edited.png"), full_page=True)

    # side by side: VQ-VAE and VQGAN on the same image
    page.get_by_text("Side by side: VQ-VAE vs VQGAN").click()
    page.get_by_role("button", name="Compare shapes-vqvae and shapes-vqgan").click()
    page.get_by_text("Edge sharpness = the reconstruction's").wait_for(timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "tokenize-compare.png"), full_page=True)
    assert page.console_errors == [], page.console_errors
    assert page.foreign_requests == [], page.foreign_requests


def test_bad_upload_gets_a_message(page, app_server: str, tmp_path) -> None:
    from PIL import Image

    _open_tab(page, app_server)
    huge = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000)).save(huge)
    _upload(page, huge)
    page.get_by_text("10000 x 10000 pixels").first.wait_for(timeout=TIMEOUT)
    page.screenshot(path=str(ARTIFACTS / "tokenize-bad-upload.png"), full_page=True)
    # the tab keeps working
    _upload(page, EXAMPLES / "grayscale-rings.png")
    page.locator("#vq-notes").get_by_text("converted from mode L to RGB").wait_for(
        timeout=TIMEOUT)
    assert page.foreign_requests == [], page.foreign_requests
