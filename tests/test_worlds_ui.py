"""The Worlds tab builds, and its handler returns what the components expect."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from mmstudio.ui import tab_worlds


def test_build_inside_a_tab() -> None:
    with gr.Blocks() as demo:
        with gr.Tab("Worlds"):
            tab_worlds.build(None)
    names = {getattr(fn, "api_name", None) for fn in demo.fns.values()}
    assert "worlds_render" in names


def test_render_handler_outputs() -> None:
    out = tab_worlds.on_render(3, "a small yellow square in the center")
    n = tab_worlds.N_SHAPES + tab_worlds.N_SOUNDS + tab_worlds.N_CLIPS
    assert len(out) == 1 + tab_worlds.N_SOUNDS + tab_worlds.N_CLIPS <= n
    gallery = out[0]
    assert len(gallery) == tab_worlds.N_SHAPES
    img, caption = gallery[0]
    assert img.shape == (192, 192, 3) and img.dtype == np.uint8
    assert caption.startswith("a small yellow square in the center") and "(held out)" in caption
    for update in out[1:]:
        assert Path(update["value"]).is_file() and update["label"]
    assert out[1]["value"].endswith(".wav") and out[-1]["value"].endswith(".mp4")


def test_render_handler_bad_input() -> None:
    with pytest.raises(gr.Error, match="'pink'"):
        tab_worlds.on_render(0, "a pink circle")
    with pytest.raises(gr.Error, match="seed"):
        tab_worlds.on_render(-1, "")
    with pytest.raises(gr.Error, match="whole number"):
        tab_worlds.on_render(1.5, "")
