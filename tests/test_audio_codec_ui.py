"""The Audio tab's codec section: handlers, API (gradio_client) and a browser run.

Where sounds-codec is not shipped yet, a codec of exactly its architecture and folder layout
stands in, its codebooks started by k-means on world sounds (so codes vary; untrained otherwise:
the reconstructions are noise, but every view, loader and shape is the real one)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client
from PIL import Image

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines import sound as snd
from mmstudio.ui import audio_codec
from tests.conftest import ARTIFACTS, serve_app

ASSETS = Path(__file__).resolve().parent.parent / "assets"
TIMEOUT = 90_000


def _stand_in_codec(folder: Path) -> None:
    import torch

    from mmstudio.training import codec as train_codec

    torch.manual_seed(0)
    model = train_codec.build_codec()
    x = torch.from_numpy(train_codec.crops_for_step(3, 0, 32, 3200))[:, None]
    train_codec.init_codebooks(model, x, torch.Generator().manual_seed(0), iters=3)
    model.save_pretrained(folder, safe_serialization=True)


def _assets(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "examples").symlink_to(ASSETS / "examples")
    for shipped in (ASSETS / "models").iterdir():
        (root / "models" / shipped.name).symlink_to(shipped)
    if not (root / "models" / "sounds-codec").exists():
        _stand_in_codec(root / "models" / "sounds-codec")
    return root


@pytest.fixture(scope="module")
def codec_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _assets(tmp_path_factory.mktemp("codec-assets"))


@pytest.fixture(scope="module")
def section(codec_assets: Path) -> audio_codec.CodecSection:
    settings = Settings(offline=True, assets=codec_assets)
    return audio_codec.CodecSection(ModelManager(settings, Catalog.load(settings)))


def test_tokenize_levels_edit_and_cell(section: audio_codec.CodecSection) -> None:
    sound = snd.render_sound("two short beeps of a mid square wave", 3)
    view = section.view(sound, "sounds-codec", None)
    state = view["state"]
    assert state["codes"].shape == (4, 50) and view["levels"] == 4 and view["k"] == 4
    assert "16,000 samples" in view["numbers"] and "50 frames" in view["numbers"]
    assert view["grid"].shape[1] == 960 and view["grid"].shape[0] > 4 * 30
    assert sf.info(view["recon"]).frames == 16_000
    assert "50 frames/s x 4 levels x 10 bits = 2 kbit/s" == view["bitrate"]
    ladder = view["ladder"].splitlines()
    assert len(ladder) == 2 + 4 and "the analyzer hears" in ladder[0]
    assert "0.5 kbit/s" in ladder[2] and "2 kbit/s" in ladder[5]

    player, mel, bitrate, grid = section.levels(state, 2)
    assert "2 levels" in bitrate and "1 kbit/s" in bitrate and sf.info(player).frames == 16_000
    assert mel.shape == (270, 960, 3)
    assert not np.array_equal(grid, view["grid"])  # levels 3 and 4 drawn pale

    dropped, _, note, _ = section.edit(state, 1, audio_codec.EDITS[0], 0)
    scrambled, _, note2, _ = section.edit(state, 1, audio_codec.EDITS[1], 0)
    a, b = sf.read(dropped)[0], sf.read(scrambled)[0]
    assert "Level 2 dropped" in note and "random codes" in note2 and not np.array_equal(a, b)

    with pytest.raises(UserError, match="choose one of"):
        section.edit(state, 1, "shuffle", 0)
    with pytest.raises(UserError, match="k must be"):
        section.levels(state, 9)
    with pytest.raises(UserError, match="level must be"):
        section.edit(state, 4, audio_codec.EDITS[0], 0)

    class Click:
        index = (400, 24 + 34 * 2 + 10)  # inside the third row

    text = section.cell(state, Click())  # type: ignore[arg-type]
    assert text.startswith("Level 3, frame ") and "code **" in text


@pytest.mark.parametrize("call,message", [
    (lambda s: s.view(None, "sounds-codec", None), "render or upload a sound first"),
    (lambda s: s.view(snd.render_sound("", 0), "shapes-vqvae", None), "not an audio codec"),
    (lambda s: s.levels(None, 2), "tokenize a sound first"),
])
def test_messages(section, call, message: str) -> None:
    with pytest.raises(UserError, match=message):
        call(section)


def test_section_is_in_the_tab(codec_assets: Path) -> None:
    from mmstudio.ui import tab_audio

    settings = Settings(offline=True, assets=codec_assets)
    with gr.Blocks() as demo:
        with gr.Tab("Audio"):
            tab_audio.build(ModelManager(settings, Catalog.load(settings)))
    names = {getattr(fn, "api_name", None) for fn in demo.fns.values()}
    assert {"audio_codec_tokenize", "audio_codec_levels", "audio_codec_edit"} <= names


# --------------------------------------------------------------------------- server


@pytest.fixture(scope="module")
def codec_server(tmp_path_factory: pytest.TempPathFactory):
    root = _assets(tmp_path_factory.mktemp("codec-server-assets"))
    yield from serve_app(tmp_path_factory, MMSTUDIO_ASSETS=str(root))


def test_codec_api(codec_server: str) -> None:
    client = Client(codec_server, verbose=False)
    client.predict("three short beeps of a high square wave", 5, 10, api_name="/audio_render")
    out = client.predict("sounds-codec", 4, api_name="/audio_codec_tokenize")
    numbers, grid, k, recon, mel, bitrate, ladder, level, cell = out
    assert "three short beeps of a high square wave" in numbers
    assert np.asarray(Image.open(grid)).shape[1] == 960
    assert sf.info(recon).frames == 16_000 and "2 kbit/s" in bitrate
    player, _, bitrate1, _ = client.predict(1, api_name="/audio_codec_levels")
    assert "0.5 kbit/s" in bitrate1 and sf.info(player).frames == 16_000
    edited, _, note, _ = client.predict(0, audio_codec.EDITS[1], 3, api_name="/audio_codec_edit")
    assert "Level 1 replaced by random codes" in note
    with pytest.raises(Exception, match="k must be|greater than maximum value 4"):
        client.predict(9, api_name="/audio_codec_levels")
    out = client.predict("sounds-codec", 2, api_name="/audio_codec_tokenize")  # still serving
    assert "1 kbit/s" in out[5]


def test_browser_codec_grid_and_k(browser, codec_server: str,
                                  request: pytest.FixtureRequest) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(codec_server, wait_until="load", timeout=TIMEOUT)
        page.get_by_role("tab", name="Audio", exact=True).click(timeout=TIMEOUT)
        page.locator("#audio-caption textarea").fill("one long note of a mid sine wave")
        page.locator("#audio-render").click()
        numbers = page.locator("#codec-numbers")
        numbers.get_by_text("one long note of a mid sine wave").wait_for(timeout=TIMEOUT)
        # the section sits far below the fold and gradio's images load lazily: bring it into
        # view first (an image outside the viewport stays 0 x 0, "hidden", until scrolled to)
        page.locator("#codec-grid").scroll_into_view_if_needed(timeout=TIMEOUT)
        grid = page.locator("#codec-grid img")
        grid.wait_for(timeout=TIMEOUT)
        page.wait_for_function(
            "() => { const i = document.querySelector('#codec-grid img');"
            " return i && i.complete && i.naturalWidth > 0; }", timeout=TIMEOUT)
        box = grid.bounding_box()
        assert box and box["width"] >= 600
        # click a cell: its code is named
        grid.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.3})
        page.locator("#codec-cell").get_by_text("code").wait_for(timeout=TIMEOUT)
        # k = 1: the bitrate line and the player follow
        slider = page.locator("#codec-k input[type=range]")
        slider.fill("1")
        slider.dispatch_event("pointerup")
        page.locator("#codec-bitrate").get_by_text("0.5 kbit/s").wait_for(timeout=TIMEOUT)
        link = page.locator("#codec-recon a.download-link")
        link.wait_for(state="attached", timeout=TIMEOUT)
        duration = page.evaluate(
            "href => new Promise((ok, fail) => { const a = new Audio();"
            " a.preload = 'metadata'; a.onloadedmetadata = () => ok(a.duration);"
            " a.onerror = () => fail(new Error('no audio')); a.src = href; })",
            link.get_attribute("href"))
        assert duration > 0.9
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "audio-codec.png"), full_page=True)
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"), full_page=True)
        raise
    finally:
        page.close()
