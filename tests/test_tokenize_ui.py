"""The Tokenize tab's handlers (no server): tokenize, edits that compose, codebook views, the
side-by-side comparison, caption renders, and clear messages for bad inputs."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.ui import tab_tokenize
from mmstudio.ui.tab_tokenize import TokenizeTab, grid_cell_px, render_token_grid

CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]
EXAMPLE = Settings.from_env().examples_dir / "shapes-green-triangle.png"


@pytest.fixture(scope="module")
def tab() -> TokenizeTab:
    settings = Settings.from_env()
    return TokenizeTab(ModelManager(settings, Catalog.load(settings), devices=CPU))


@pytest.fixture(scope="module")
def first(tab: TokenizeTab) -> tuple:
    return tab.tokenize("shapes-vqvae", str(EXAMPLE))


def test_examples_are_shipped(tab: TokenizeTab) -> None:
    names = {Path(p).stem for p in tab_tokenize.example_files(tab.manager)}
    assert {"shapes-green-triangle", "gradient", "checkerboard", "photo-like-landscape",
            "grayscale-rings", "transparent-sticker"} <= names


def test_examples_are_reproducible(tmp_path: Path) -> None:
    from mmstudio.cli.tokenize import write_examples

    for path in write_examples(tmp_path):
        shipped = Settings.from_env().examples_dir / path.name
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(shipped)))


def test_tokenize_outputs(tab: TokenizeTab, first: tuple) -> None:
    state, view_in, grid, recon, error, figures, notes, hist = first
    assert np.asarray(state["indices"]).shape == (8, 8) and state["model"] == "shapes-vqvae"
    assert view_in.shape == (256, 256, 3) and recon.shape == (256, 256, 3)
    assert error.shape == (256, 256, 3)
    cell = grid_cell_px(8)
    assert grid.shape == (8 * cell, 8 * cell, 3)
    assert "PSNR" in figures and "compression" in figures and "43x" in figures
    assert "576 (64 x 9)" in figures
    assert "32 x 32 RGB (used as is)" in notes
    assert hist.ndim == 3 and hist.shape[1] > 300


def test_answers_in_about_a_second(tab: TokenizeTab, first: tuple) -> None:
    start = time.perf_counter()
    tab.tokenize("shapes-vqvae", str(EXAMPLE))
    assert time.perf_counter() - start < 3.0  # about a second; slack for a busy CI machine


def test_edits_compose_and_reset(tab: TokenizeTab, first: tuple) -> None:
    state = first[0]
    original = np.asarray(state["indices"])
    code = int((original[2, 3] + 1) % 512)
    out = tab.set_token(state, 2, 3, code)
    edited = np.asarray(out[0]["indices"])
    assert edited[2, 3] == code and (edited != original).sum() == 1
    assert "1 token(s) edited" in out[5]
    assert not np.array_equal(out[3], first[3])  # the reconstruction changed
    old = int(edited[0, 0])
    out = tab.replace_code(out[0], old, 7)
    replaced = np.asarray(out[0]["indices"])
    assert not (replaced == old).any() and replaced[2, 3] == code  # the first edit is kept
    assert "Replaced" in out[5]
    out = tab.randomize(out[0], 3, 1)
    assert "Randomized 3 token(s)" in out[5]
    out = tab.reset(out[0])
    assert np.array_equal(np.asarray(out[0]["indices"]), original)
    assert np.array_equal(out[3], first[3])


def test_select_cell_from_a_click(tab: TokenizeTab, first: tuple) -> None:
    state = first[0]
    cell = grid_cell_px(8)

    class Click:  # what gradio passes: pixel coordinates (x, y) in the token-grid image
        index = [5 * cell + 3, 2 * cell + cell // 2]

    out = tab.select_cell(state, Click())  # type: ignore[arg-type]
    new_state, grid, row, col, code, text = out
    assert (row, col) == (2, 5) and code == np.asarray(state["indices"])[2, 5]
    assert new_state["selected"] == [2, 5] and "row 2, column 5" in text
    assert not np.array_equal(grid, first[2])  # the selected cell is outlined


def test_token_grid_drawing() -> None:
    grid = np.array([[0, 1], [1, 8191]])
    image = render_token_grid(grid)
    cell = grid_cell_px(2)
    assert image.shape == (2 * cell, 2 * cell, 3)
    centre = image[cell // 4, cell // 4]  # corner of cell (0, 0): its code colour
    assert tuple(centre) == tab_tokenize.code_color(0)
    assert tuple(image[cell + cell // 4, cell // 4]) == tab_tokenize.code_color(1)


def test_codebook_views(tab: TokenizeTab, first: tuple) -> None:
    atlas, text = tab.browse("shapes-vqvae", 0, tab_tokenize.BROWSE_MODES[0], None)
    assert atlas.shape[0] > 300 and "Codes 0 to 63 of 512" in text
    atlas, text = tab.browse("shapes-vqvae", 500, tab_tokenize.BROWSE_MODES[1], first[0])
    assert "Codes 500 to 511" in text and "centre cell" in text
    hist, text = tab.eval_histogram("shapes-vqvae")
    assert hist.ndim == 3 and "500 evaluation renders" in text and "codes** are used" in text


def test_side_by_side(tab: TokenizeTab) -> None:
    out = tab.compare(str(EXAMPLE), None)
    assert len(out) == 9
    table = out[-1]
    assert "`shapes-vqvae`" in table and "`shapes-vqgan`" in table and "sharpness" in table
    assert "the same tokens" in table  # the VQGAN kept the VQ-VAE's encoder and codebook
    assert np.array_equal(out[1], out[5])  # so the token-grid images are identical


def test_caption_render(tab: TokenizeTab) -> None:
    path = tab.render_caption("a large purple triangle on a navy background", 3)
    image = np.asarray(Image.open(path))
    assert image.shape == (32, 32, 3)
    from mmstudio.worlds import shapes

    described = shapes.describe(image)
    assert (described.color, described.shape) == ("purple", "triangle")


@pytest.mark.parametrize("call, message", [
    (lambda t: t.tokenize("shapes-vqvae", None), "upload an image"),
    (lambda t: t.render_caption("", 0), "type a shapes caption"),
    (lambda t: t.render_caption("a fluffy dog", 0), "unknown word"),
    (lambda t: t.set_token(None, 0, 0, 1), "tokenize an image first"),
    (lambda t: t.tokenize("shapes-clip", str(EXAMPLE)), "not a tokenize model"),
    (lambda t: t.browse("shapes-vqvae", 9999, tab_tokenize.BROWSE_MODES[0], None),
     "between 0 and 511"),
])
def test_bad_requests_give_messages(tab: TokenizeTab, call, message: str) -> None:
    from mmstudio.ui.common import user_errors

    with pytest.raises(gr.Error, match=message):
        user_errors(call)(tab)


def test_bad_edit_values(tab: TokenizeTab, first: tuple) -> None:
    from mmstudio.ui.common import user_errors

    with pytest.raises(gr.Error, match="code must be between 0 and 511"):
        user_errors(tab.set_token)(first[0], 0, 0, 600)
    with pytest.raises(gr.Error, match="row must be a whole number"):
        user_errors(tab.set_token)(first[0], 0.5, 0, 1)
    with pytest.raises(gr.Error, match="row must be between 0 and 7"):
        user_errors(tab.set_token)(first[0], 9, 0, 1)


def test_bad_files_give_messages(tab: TokenizeTab, tmp_path: Path) -> None:
    from mmstudio.ui.common import user_errors

    text = tmp_path / "x.png"
    text.write_text("hello")
    with pytest.raises(gr.Error, match="not an image that can be read"):
        user_errors(tab.tokenize)("shapes-vqvae", str(text))
    huge = tmp_path / "huge.png"
    Image.new("L", (10_000, 10_000)).save(huge)
    with pytest.raises(gr.Error, match="10000 x 10000 pixels"):
        user_errors(tab.tokenize)("shapes-vqvae", str(huge))
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (64, 64), (255, 0, 0, 128)).save(rgba)
    notes = tab.tokenize("shapes-vqvae", str(rgba))[6]
    assert "transparency" in notes and "resized from 64 x 64" in notes


def test_hub_model_offline_gets_a_reason(offline_settings: Settings) -> None:
    from mmstudio.ui.common import user_errors

    tab = TokenizeTab(ModelManager(offline_settings, Catalog.load(offline_settings), devices=CPU))
    assert "amused/amused-256:vqvae" in tab.model_choices()
    with pytest.raises(gr.Error, match="is not on this machine: it is not in the local Hugging"):
        user_errors(tab.tokenize)("amused/amused-256:vqvae", str(EXAMPLE))


def test_amused_like_model_in_the_tab(tmp_path: Path, offline_settings: Settings) -> None:
    """The tab runs aMUSEd's VQ (a tiny random one of its config shape) like the embedded ones:
    256 x 256 input, 16 x 16 tokens, edits, codebook pages."""
    from tests import tiny_models
    from tests.test_tokenize import make_amused_like_vq

    folder = make_amused_like_vq(tmp_path / "build")
    assert offline_settings.hub_cache is not None
    tiny_models.install_in_hub_cache(folder, "amused/amused-256", offline_settings.hub_cache)
    tab = TokenizeTab(ModelManager(offline_settings, Catalog.load(offline_settings), devices=CPU))
    out = tab.tokenize("amused/amused-256:vqvae", str(EXAMPLE))
    state = out[0]
    assert np.asarray(state["indices"]).shape == (16, 16)
    assert out[1].shape == (256, 256, 3) and "resized from 32 x 32" in out[6]
    assert "1,536 (256 x 6)" in out[5]  # 64 codes: 6 bits per token
    edited = tab.set_token(state, 15, 15, 63)
    assert np.asarray(edited[0]["indices"])[15, 15] == 63
    atlas, text = tab.browse("amused/amused-256:vqvae", 0, tab_tokenize.BROWSE_MODES[0], None)
    assert "Codes 0 to 15 of 64" in text


def test_code_histogram_draws_each_used_code_in_its_grid_colour() -> None:
    from mmstudio.ui.tab_tokenize import code_color, histogram_image

    counts = np.zeros(512, dtype=np.int64)
    counts[[7, 300]] = [5, 2]
    picture = histogram_image(counts, "two codes")
    assert picture.dtype == np.uint8 and picture.shape == (216, 648, 3)
    pixels = picture.reshape(-1, 3)
    tall, short = ((pixels == code_color(c)).all(1).sum() for c in (7, 300))
    assert tall > short > 0  # 5 tokens draw a taller bar than 2
    assert not (pixels == code_color(8)).all(1).any()  # unused codes draw nothing
    assert histogram_image(np.zeros(16, dtype=np.int64), "none").shape == (216, 648, 3)
