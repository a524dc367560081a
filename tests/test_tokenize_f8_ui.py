"""The Tokenize tab's side by side at either compression: its handlers, and in Chromium
(Playwright) against `python app.py`, picking the higher compression (f8: 4 x 4 tokens), running
the side by side and reading both edge-sharpness figures.

Until shapes-vqvae-f8 / shapes-vqgan-f8 are shipped, untrained stand-ins of exactly their
architecture (``tests.stand_ins.stand_in_vq_f8``) serve, measured by the real `eval --write`, so the
explanation's words come from a real metrics.json; the f8 choice without the models installed
gets a clear message."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.pipelines import tokenize as tk
from mmstudio.ui.tab_tokenize import TokenizeTab, grid_cell_px, pair_summary
from tests.conftest import ARTIFACTS, serve_app
from tests.stand_ins import assets_with

CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]
EXAMPLE = Settings.from_env().examples_dir / "shapes-blue-square.png"
TIMEOUT = 90_000
PLAIN, GAN = tk.PAIRS["f8"]
SHARPNESS_ROW = re.compile(r"edge sharpness \(1\.0 = as the input\)\s+([0-9.]+)\s+([0-9.]+)")


def _tab(assets: Path) -> TokenizeTab:
    settings = Settings(offline=True, assets=assets)
    return TokenizeTab(ModelManager(settings, Catalog.load(settings), devices=CPU))


@pytest.fixture(scope="module")
def f8_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped assets, with f8 stand-ins where the f8 pair is not shipped, measured by
    `python -m mmstudio eval ... --write` (on 40 renders) into their folders."""
    from mmstudio.evaluation.vq import main as evaluate

    root = assets_with(tmp_path_factory.mktemp("f8-assets"), clap=False, vq_f8=True)
    if not (root / "models" / PLAIN).is_symlink():  # stand-ins: measure them
        previous = os.environ.get("MMSTUDIO_ASSETS")
        os.environ["MMSTUDIO_ASSETS"] = str(root)
        try:
            for model_id in (PLAIN, GAN):
                evaluate(model_id, ["--n", "40", "--write"])
        finally:
            if previous is None:
                os.environ.pop("MMSTUDIO_ASSETS")
            else:
                os.environ["MMSTUDIO_ASSETS"] = previous
    return root


@pytest.fixture(scope="module")
def tab(f8_assets: Path) -> TokenizeTab:
    return _tab(f8_assets)


def _own_sharpness(assets: Path, image: Path) -> tuple[float, float]:
    """Both models' edge sharpness on ``image``, computed here with the tokenize pipeline."""
    manager = _tab(assets).manager
    values = []
    for model_id in (PLAIN, GAN):
        with manager.use(model_id) as loaded:
            result = tk.tokenize_image(loaded["vq"], image, model_id, 32)
        values.append(tk.edge_sharpness(result.image, result.reconstruction))
    return values[0], values[1]


def test_side_by_side_at_f8(tab: TokenizeTab, f8_assets: Path) -> None:
    out = tab.compare(str(EXAMPLE), None, "f8")
    assert len(out) == 9
    table = out[-1]
    assert f"`{PLAIN}`" in table and f"`{GAN}`" in table
    assert "| token grid | 4 x 4 | 4 x 4 |" in table and "144 (16 x 9)" in table
    assert "| compression | 171x | 171x |" in table
    cell = grid_cell_px(4)
    assert out[1].shape == (4 * cell, 4 * cell, 3)
    assert "the same tokens" in table and np.array_equal(out[1], out[5])
    row = re.search(r"\| edge sharpness \(1\.0 = as the input\) \| ([0-9.]+) \| ([0-9.]+) \|",
                    table)
    assert row, table
    plain, gan = _own_sharpness(f8_assets, EXAMPLE)
    assert (float(row[1]), float(row[2])) == (round(plain, 3), round(gan, 3))
    assert "**On this image**" in table
    # the f4 pair still compares as before
    assert "| token grid | 8 x 8 | 8 x 8 |" in tab.compare(str(EXAMPLE), None, "f4")[-1]


def test_the_explanation_reads_the_measured_figures(tab: TokenizeTab, f8_assets: Path) -> None:
    text = tab.pair_explanation("f8")
    f8, f4 = text.split("\n\n")
    assert f8.startswith("**f8: 4 x 4 tokens") and "(chosen)" in f8 and "(chosen)" not in f4
    plain = json.loads((f8_assets / "models" / PLAIN / "metrics.json").read_text())
    gan = json.loads((f8_assets / "models" / GAN / "metrics.json").read_text())
    assert f"the VQ-VAE's edges are {plain['sharpness']:.2f}" in f8
    assert f"the VQGAN's {gan['sharpness']:.2f}" in f8 and f"over {gan['n']} evaluation" in f8
    assert "PSNR" in f8 and f"{plain['agreement']:.0%} (VQ-VAE)" in f8
    assert tab.pair_explanation("f4").startswith("**f4: 8 x 8 tokens")
    explanation, button = tab.choose_compression("f8")
    assert explanation == text and button["value"] == f"Compare {PLAIN} and {GAN}"


def test_the_words_follow_the_figures(f8_assets: Path, tmp_path: Path) -> None:
    """What the GAN loss buys and what it costs, for figures where it buys much and costs PSNR,
    and for figures where it changes nothing."""
    root = tmp_path / "assets"
    (root / "models").mkdir(parents=True)
    for model_id in (PLAIN, GAN):
        folder = root / "models" / model_id
        folder.mkdir()
        for name in ("config.json", "diffusion_pytorch_model.safetensors"):
            (folder / name).symlink_to(f8_assets / "models" / model_id / name)

    def words(plain: dict, gan: dict) -> str:
        for model_id, figures in ((PLAIN, plain), (GAN, gan)):
            (root / "models" / model_id / "metrics.json").write_text(json.dumps(
                {"n": 500, **figures}))
        return pair_summary(Catalog.load(Settings(offline=True, assets=root)), "f8")

    blur = {"psnr": 31.2, "sharpness": 0.78, "agreement": 0.97}
    sharp = {"psnr": 29.9, "sharpness": 0.96, "agreement": 0.96, "closer_to_one_share": 0.91}
    text = words(blur, sharp)
    assert "What the GAN loss buys" in text and "on 91% of the renders" in text
    assert "What it costs: 1.3 dB of PSNR (31.2 dB for the VQ-VAE, 29.9 dB" in text
    text = words(blur, {**blur, "psnr": 31.25, "sharpness": 0.79})
    assert "practically as sharp" in text and "practically no PSNR" in text
    text = words({**blur, "sharpness": 0.95}, {**blur, "sharpness": 0.7})
    assert "did not bring the edges closer" in text
    (root / "models" / GAN / "metrics.json").unlink()
    assert "not measured yet" in pair_summary(Catalog.load(Settings(offline=True, assets=root)),
                                              "f8")


def test_f8_not_installed_says_so(tmp_path: Path) -> None:
    from mmstudio.ui.common import user_errors

    tab = _tab(assets_with(tmp_path / "assets", clap=False, skip=tk.PAIRS["f8"]))
    with pytest.raises(gr.Error, match="The f8 models .* are not installed here"):
        user_errors(tab.compare)(str(EXAMPLE), None, "f8")
    assert "not installed here" in tab.pair_explanation("f8").split("\n\n")[0]
    assert len(tab.compare(str(EXAMPLE), None, "f4")) == 9  # the f4 pair still works
    with pytest.raises(gr.Error, match="choose a compression"):
        user_errors(tab.compare)(str(EXAMPLE), None, "f16")


# ------------------------------------------------------------------------------ browser


@pytest.fixture(scope="module")
def f8_server(tmp_path_factory: pytest.TempPathFactory, f8_assets: Path):
    yield from serve_app(tmp_path_factory, MMSTUDIO_ASSETS=str(f8_assets))


def test_api_side_by_side_at_f8(f8_server: str, f8_assets: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(f8_server, verbose=False)
    out = client.predict(handle_file(str(EXAMPLE)), "f8", api_name="/vq_compare")
    table = out[-1]
    assert "| token grid | 4 x 4 | 4 x 4 |" in table
    row = re.search(r"\| edge sharpness \(1\.0 = as the input\) \| ([0-9.]+) \| ([0-9.]+) \|",
                    table)
    plain, gan = _own_sharpness(f8_assets, EXAMPLE)
    assert row and (float(row[1]), float(row[2])) == (round(plain, 3), round(gan, 3))
    assert "8 x 8" in client.predict(handle_file(str(EXAMPLE)), "f4", api_name="/vq_compare")[-1]


def test_browser_side_by_side_at_the_higher_compression(
        browser, f8_server: str, f8_assets: Path, request: pytest.FixtureRequest) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f8_server, wait_until="load", timeout=TIMEOUT)
        page.get_by_role("tab", name="Tokenize (VQ)").click(timeout=TIMEOUT)
        page.locator("#vq-input input[type=file]").set_input_files(str(EXAMPLE))
        page.locator("#vq-figures").get_by_text("PSNR").wait_for(timeout=TIMEOUT)
        page.get_by_text("Side by side: VQ-VAE vs VQGAN").click()
        choice = page.locator("#vq-cmp-compression").get_by_text("f8: 4 x 4 tokens")
        choice.scroll_into_view_if_needed(timeout=TIMEOUT)
        choice.click()
        button = page.get_by_role("button", name=f"Compare {PLAIN} and {GAN}")
        button.wait_for(timeout=TIMEOUT)
        explain = page.locator("#vq-cmp-explain")
        explain.get_by_text("(chosen)").wait_for(timeout=TIMEOUT)
        assert explain.inner_text().startswith("f8: 4 x 4 tokens")
        button.click()
        table = page.locator("#vq-cmp-table")
        table.get_by_text("On this image").wait_for(timeout=TIMEOUT)
        text = table.inner_text()
        assert PLAIN in text and GAN in text and "4 x 4" in text
        match = SHARPNESS_ROW.search(text)
        assert match, text
        shown = float(match[1]), float(match[2])
        plain, gan = _own_sharpness(f8_assets, EXAMPLE)
        assert shown == (round(plain, 3), round(gan, 3))
        grid = page.locator("#vq-cmp-vqvae-token img")
        grid.scroll_into_view_if_needed(timeout=TIMEOUT)
        page.wait_for_function(
            "() => { const i = document.querySelector('#vq-cmp-vqvae-token img');"
            " return i && i.complete && i.naturalWidth > 0; }", timeout=TIMEOUT)
        assert grid.evaluate("img => img.naturalWidth") == 4 * grid_cell_px(4)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "tokenize-compare-f8.png"), full_page=True)
        assert errors == [], errors
    except Exception:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
        raise
    finally:
        page.close()
