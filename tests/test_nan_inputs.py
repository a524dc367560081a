"""A number field of the UI can hold NaN, infinity or a fraction (gradio passes what the browser
sends). Every handler that takes a seed, a position or a count answers with a clear message that
names the field, never "Something went wrong"."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import pytest

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.ui import tab_diffusion, tab_similarity, tab_tokenize, tab_worlds
from mmstudio.ui.common import user_errors

CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]
NAN, INF = float("nan"), float("inf")
EXAMPLE = Settings.from_env().examples_dir / "shapes-green-triangle.png"


@pytest.fixture(scope="module")
def manager() -> ModelManager:
    settings = Settings.from_env()
    return ModelManager(settings, Catalog.load(settings), devices=CPU)


@pytest.fixture(scope="module")
def diffusion(manager: ModelManager) -> dict[str, Callable]:
    """The Diffusion tab's handlers by api_name, as the server calls them."""
    with gr.Blocks() as demo:
        tab_diffusion.build(manager)
    return {fn.api_name: fn.fn for fn in demo.fns.values() if fn.api_name}


def expect(message: str, call: Callable, *args) -> None:
    with pytest.raises(gr.Error, match=message) as info:
        out = call(*args)
        if hasattr(out, "__next__"):  # streamed handlers fail on their first step
            next(out)
    assert "Something went wrong" not in str(info.value)


@pytest.mark.parametrize("bad", [NAN, INF, 2.5])
def test_diffusion_grid_seed_count(diffusion: dict, bad: float) -> None:
    expect("the number of seeds must be a whole number from 1 to 8", diffusion["denoise_grid"],
           "a red circle", "shapes-unet", "ddim", 5, "0, 3", bad)


@pytest.mark.parametrize("bad", [NAN, INF, None])
def test_diffusion_forward_view_timestep(diffusion: dict, bad: float | None) -> None:
    expect("timestep must be a whole number from 0 to 999", diffusion["forward_noise"],
           "a red circle", None, bad, "cosine")


@pytest.mark.parametrize("bad", [NAN, INF])
def test_diffusion_generate_seed_and_steps(diffusion: dict, bad: float) -> None:
    expect("seed must be a finite number", diffusion["denoise"],
           "a red circle", "shapes-unet", "ddim", 5, 1.5, bad)
    expect("steps must be a finite number", diffusion["denoise"],
           "a red circle", "shapes-unet", "ddim", bad, 1.5, 0)


@pytest.mark.parametrize("bad", [NAN, INF, -1])
def test_tokenize_render_seed(manager: ModelManager, bad: float) -> None:
    tab = tab_tokenize.TokenizeTab(manager)
    expect("the render seed must be a whole number", user_errors(tab.render_caption),
           "a red circle", bad)


def test_tokenize_token_edits(manager: ModelManager) -> None:
    tab = tab_tokenize.TokenizeTab(manager)
    state = tab.tokenize("shapes-vqvae", str(EXAMPLE))[0]
    expect("row must be a whole number", user_errors(tab.set_token), state, NAN, 0, 1)
    expect("column must be a whole number", user_errors(tab.set_token), state, 0, INF, 1)
    expect("code must be a whole number", user_errors(tab.set_token), state, 0, 0, NAN)
    expect("old code must be a whole number", user_errors(tab.replace_code), state, NAN, 1)
    expect("k must be a whole number", user_errors(tab.randomize), state, NAN, 0)
    expect("seed must be a whole number", user_errors(tab.randomize), state, 2, NAN)
    expect("first code must be a whole number", user_errors(tab.browse), "shapes-vqvae", NAN,
           tab_tokenize.BROWSE_MODES[0], state)


@pytest.mark.parametrize("bad", [NAN, INF, 0.5, None])
def test_similarity_render_seed(manager: ModelManager, bad: float | None) -> None:
    tab = tab_similarity.SimilarityTab(manager)
    args = ("shapes-clip", "a red circle", bad, None, "a red circle")
    expect("the render seed must be a whole number from 0 to 2147483647",
           user_errors(tab.compare), *args, "color x shape", "yours")
    expect("the render seed must be", user_errors(tab.zero_shot), *args, 0, "color x shape")
    expect("the render seed must be", user_errors(tab.retrieve), *args, 0, "yours")


@pytest.mark.parametrize("bad", [NAN, INF, None])
def test_worlds_render_seed(bad: float | None) -> None:
    expect("the seed must be a whole number from 0 to 2147483647", tab_worlds.on_render,
           bad, "")
