"""The Tokens vs noise tab (tokens + a GPT against diffusion) through its API (gradio_client)
and in a browser: token by token, scrubbing, forcing a candidate, the comparison on two prompts,
clear messages for bad input.

The server runs on the shipped models; until shapes-gpt is shipped, an untrained shapes-gpt of
exactly the trainer's architecture and folder layout stands in (its images are noise, but every
view, loader and shape is the real one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, serve_app

PROMPT = "a large red circle in the top left on a navy background"
TWO_PROMPTS = "a red circle\na purple triangle on a gray background"


@pytest.fixture(scope="module")
def tokens_server(tmp_path_factory: pytest.TempPathFactory):
    from tests.stand_ins import assets_with

    root = assets_with(tmp_path_factory.mktemp("tokens-assets"), clap=False, gpt=True)
    yield from serve_app(tmp_path_factory, MMSTUDIO_ASSETS=str(root), MMSTUDIO_OFFLINE="1")


def _done(status: str) -> bool:
    return "**Done**" in status or status.startswith("Done")


def test_tokens_api_generate_scrub_force_compare_and_errors(tokens_server: str) -> None:
    from gradio_client import Client

    client = Client(tokens_server, verbose=False)
    grid, image, candidates, choice, status, position = client.predict(
        PROMPT, 1.0, 0, 1.0, 3.0, 7, 0, api_name="/tokens_generate")
    assert _done(status) and "64 transformer passes" in status and "seed 7" in status
    assert all(Path(p).is_file() for p in (grid, image, candidates))
    assert position["maximum"] == 64 and position["interactive"]

    # scrub to token 10: its candidates; the taken token is named
    grid, image, candidates, choice, status = client.predict(10, api_name="/tokens_position")
    found = re.match(r"token 10 of 64 \(row 1, column 1\): code (\d+), drawn; the model gave "
                     r"it (\d+\.\d)%", status)
    assert found, status
    taken = int(found.group(1))
    assert float(found.group(2)) > 0  # drawn: it had some probability
    codes = [int(value) for _, value in choice["choices"]]
    assert len(codes) == 8 and choice["value"] in (taken, None)
    other = next(c for c in codes if c != taken)

    # force token 10 to another code: 9 kept, 54 written again
    out = client.predict(other, 10, 0, api_name="/tokens_force")
    assert f"Token 10 was forced to code {other}; tokens 1 to 9 were kept and 54 written" in out[4]
    again = client.predict(10, api_name="/tokens_position")
    assert again[4].startswith(f"token 10 of 64 (row 1, column 1): code {other}, forced")

    # the run downloads as a GIF (one frame per token) and an MP4
    gif, mp4 = client.predict(api_name="/tokens_trace_files")
    from PIL import Image

    assert Image.open(gif).n_frames == 64 and Path(mp4).stat().st_size > 1000

    # the comparison on two prompts: one row per model, the figures and the pictures
    status, table, findings, scatter, samples = client.predict(
        TWO_PROMPTS, ["shapes-gpt", "shapes-dit"], 1, 0, api_name="/tokens_compare")
    assert "2 prompts x 1 images per model" in status
    frame = table["value"] if table.get("__type__") == "update" else table
    rows = frame["data"]
    assert [r[0] for r in rows] == ["shapes-gpt", "shapes-dit"]
    assert rows[0][1] == "tokens + autoregression" and rows[0][3] == "64"
    assert rows[1][1] == "latent diffusion" and rows[1][3] == "25"
    assert "Speed:" in findings and "Quality:" in findings
    assert Path(scatter).is_file() and Path(samples).is_file()

    # bad input: one clear sentence each, and the server keeps serving
    for args, api, message in (
        ((PROMPT, 9.0, 0, 1.0, 3.0, 0, 0), "/tokens_generate", "greater than maximum value 2"),
        ((PROMPT, 1.0, 0, 0.0, 3.0, 0, 0), "/tokens_generate", "less than minimum value 0.05"),
        (("x" * 2000, 1.0, 0, 1.0, 3.0, 0, 0), "/tokens_generate", "characters long"),
        (("a dragon", ["shapes-gpt"], 1, 0), "/tokens_compare", "not a shapes caption"),
        ((TWO_PROMPTS, [], 1, 0), "/tokens_compare", "Tick at least one model"),
    ):
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name=api)
    fresh = Client(tokens_server, verbose=False)  # a new session: nothing generated yet
    with pytest.raises(Exception, match="Generate first"):
        fresh.predict(5, api_name="/tokens_position")
    assert _done(client.predict(PROMPT, 0.0, 0, 1.0, 1.0, 0, 0,
                                api_name="/tokens_generate")[4])


def test_tokens_tab_in_a_browser(tokens_server: str, browser) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(tokens_server)
        page.get_by_role("tab", name="Tokens vs noise").click()
        # slow enough to watch: the grid fills while the run goes
        pace = page.locator("#tokens-pace input[type=number]")
        pace.fill("60")
        pace.press("Enter")
        page.locator("#tokens-generate").click()
        page.wait_for_function(
            "document.querySelector('#tokens-status').innerText.startsWith('writing token')",
            timeout=60_000)
        midway = page.locator("#tokens-status").inner_text()
        written = int(re.search(r"writing token (\d+) of 64", midway).group(1))
        assert written < 64
        page.wait_for_function(
            "document.querySelector('#tokens-status').innerText.includes('Done')",
            timeout=60_000)
        for view in ("#tokens-grid", "#tokens-image", "#tokens-candidates"):
            page.locator(f"{view} img").wait_for(state="visible", timeout=10_000)

        # scrub to token 12 and force its second candidate
        number = page.locator("#tokens-position input[type=number]")
        number.fill("12")
        number.press("Enter")
        page.wait_for_function(
            "document.querySelector('#tokens-status').innerText.startsWith('token 12 of 64')",
            timeout=30_000)
        option = page.locator("#tokens-candidate label").nth(1)
        code = int(re.search(r"code (\d+)", option.inner_text()).group(1))
        option.click()
        page.wait_for_function(
            "document.querySelector('#tokens-status').innerText.includes('was forced')",
            timeout=60_000)
        assert (f"Token 12 was forced to code {code}; tokens 1 to 11 were kept"
                in page.locator("#tokens-status").inner_text())

        # the comparison on two prompts, the token prior and the latent DiT
        page.locator("#tokens-compare-prompts textarea").fill(TWO_PROMPTS)
        boxes = page.locator("#tokens-compare-models label")
        for i in range(boxes.count()):
            label = boxes.nth(i)
            wanted = label.inner_text().strip() in ("shapes-gpt", "shapes-dit")
            if label.locator("input").is_checked() != wanted:
                label.click()
        page.locator("#tokens-compare").click()
        page.wait_for_function(
            "document.querySelector('#tokens-compare-status').innerText.includes('Done')",
            timeout=180_000)
        table = page.locator("#tokens-compare-table").inner_text()
        assert "shapes-gpt" in table and "shapes-dit" in table and "shapes-unet" not in table
        assert "Speed:" in page.locator("#tokens-compare-findings").inner_text()
        for view in ("#tokens-compare-scatter", "#tokens-compare-samples"):
            page.locator(f"{view} img").wait_for(state="visible", timeout=10_000)
        assert not errors, errors
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "FAILED-tokens-tab.png"), full_page=True)
        raise
    finally:
        context.close()
