"""The Video tab's handlers, as the server calls them, on a tiny 16-frame Latte in a temporary
catalog (with the shipped shapes-dit as the image model of the cost panel): a run streams its steps
and ends with a playable clip, the sliders scrub the kept trace without running again, the clip
downloads as MP4 and GIF, attention captures and views, the cost tables, clear messages for bad
input, and a plain note when the video model is not trained yet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from mmstudio import tiny_models
from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.ui import tab_video

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CPU = [DeviceInfo("cpu", 10**10, 10**10)]
CAPTION = "a red circle moving right on a navy background"
MODEL = "motion-tiny"
NAN = float("nan")


def _tab(manager: ModelManager) -> tuple[gr.Blocks, dict[str, Callable]]:
    with gr.Blocks() as demo:
        tab_video.build(manager)
    return demo, {fn.api_name: fn.fn for fn in demo.fns.values() if fn.api_name}


def _block(demo: gr.Blocks, elem_id: str) -> gr.components.Component:
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    root = tmp_path_factory.mktemp("video-ui-models")
    settings = Settings(offline=True, assets=ASSETS, hub_cache=root / "hub")
    shipped = Catalog.load(settings)
    specs = [
        ModelSpec(id=MODEL, tasks=("video",), source="local", loader="latte",
                  path=str(tiny_models.make_latte(root / "latte", "vae", frames=16)),
                  resolution=8, frames=16, steps=25, guidance=3.0, world="motion"),
        ModelSpec(id="vae", tasks=("autoencode",), source="local", loader="vae",
                  path=str(tiny_models.make_vae(root / "vae")), resolution=8),
        ModelSpec(id="t2v", tasks=("video",), source="local", loader="text_to_video",
                  path=str(tiny_models.make_text_to_video(root / "t2v")), resolution=16,
                  frames=4, steps=25, guidance=9.0),
        *(shipped.get(i) for i in ("shapes-dit", "shapes-vae", "shapes-clip")),
    ]
    return ModelManager(settings, Catalog(specs, settings), CPU)


@pytest.fixture(scope="module")
def tab(manager: ModelManager) -> tuple[gr.Blocks, dict[str, Callable]]:
    return _tab(manager)


@pytest.fixture(scope="module")
def fns(tab: tuple[gr.Blocks, dict[str, Callable]]) -> dict[str, Callable]:
    return tab[1]


@pytest.fixture(scope="module")
def run(fns: dict[str, Callable]) -> list[tuple]:
    """One streamed run of 4 steps: every update the page would get (no rate bound, so that the
    tiny model's fast steps are not all sent at once with the result), heartbeats left out."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mmstudio.pipelines.stream.UPDATE_INTERVAL", 0.0)
        updates = list(fns["video_generate"](CAPTION, MODEL, 4, 3.0, 7))
    return [u for u in updates if not all(_skipped(v) for v in u)]


def _skipped(value: object) -> bool:
    return isinstance(value, dict) and value == {"__type__": "update"}


def expect(message: str, call: Callable, *args) -> str:
    with pytest.raises(gr.Error, match=message) as info:
        out = call(*args)
        if hasattr(out, "__next__"):  # streamed handlers fail on their first step
            next(out)
    assert "Something went wrong" not in str(info.value)
    return str(info.value)


def test_every_event_has_a_stable_name(tab: tuple[gr.Blocks, dict[str, Callable]]) -> None:
    demo, fns = tab
    assert {"video_generate", "video_step", "video_frame", "video_files", "video_attention",
            "video_attention_view", "video_cost", "video_caption_example"} <= set(fns)
    assert not _block(demo, "video-missing").visible  # the tiny model loads: no note


def test_generate_streams_every_step_and_ends_with_a_clip(run: list[tuple]) -> None:
    *steps, done = run
    assert len(steps) >= 1
    for update in steps:  # streamed: both filmstrips and the step sentence
        x_t, x0, status = update[:3]
        assert x_t.shape == x0.shape == (140, 548, 3)  # 2 rows of 8 frames, 8 px x 8, margins
        assert status.startswith("step ") and " of 4" in status
    x_t, x0, status, video, final, step_slider, frame_slider, xt_frame, x0_frame, eps_frame, \
        state = done
    assert "**Done**" in status and "seed 7" in status
    assert "4 x 16 x 4 x 4" in status and "16 frames of 8 x 8 pixels: 2 s at 8 fps" in status
    assert Path(video).is_file() and video.endswith(".mp4") and Path(video).stat().st_size > 500
    assert "mmstudio-downloads" in video  # the bounded downloads folder
    assert final.shape == (140, 548, 3)
    assert step_slider["maximum"] == 4 and step_slider["value"] == 4 and step_slider["interactive"]
    assert frame_slider["maximum"] == 15 and frame_slider["interactive"]
    assert xt_frame.shape == x0_frame.shape == eps_frame.shape == (8, 8, 3)
    assert len(state["trace"]) == 4 and state["clip"].shape == (16, 8, 8, 3)
    assert np.array_equal(final, tab_video.strip(state["clip"]))


def test_sliders_scrub_the_kept_run_without_running_again(
        fns: dict[str, Callable], run: list[tuple], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_runs(*args, **kwargs):
        raise AssertionError("scrubbing ran the model")

    monkeypatch.setattr(tab_video, "stream_run", no_runs)
    monkeypatch.setattr("mmstudio.pipelines.denoise.denoise", no_runs)
    state = run[-1][-1]
    trace = state["trace"]
    x_t, x0, xt_frame, x0_frame, eps_frame, status = fns["video_step"](1, 0, state)
    assert status.startswith("step 1 of 4") and "frame 0" in status
    assert np.array_equal(x_t, tab_video.strip(trace.frames[0].x_t, 0))
    assert not np.array_equal(x0, run[-1][1])  # step 1's prediction is not step 4's
    assert np.array_equal(x0_frame, trace.frames[0].x0[0])
    x_t, x0, xt_frame, x0_frame, eps_frame, status = fns["video_frame"](3, 9, state)
    assert "frame 9 of 0 to 15 (at 1.125 s)" in status
    assert np.array_equal(xt_frame, trace.frames[2].x_t[9])
    assert np.array_equal(x0_frame, trace.frames[2].x0[9])
    assert np.array_equal(eps_frame, trace.frames[2].eps[9])
    # frame 9 (row 1, column 1) is outlined: its margin is the highlight colour
    assert tuple(x0[4 + 64 + 4 - 2, 4 + 64 + 4 + 10]) == tab_video.HIGHLIGHT
    assert tuple(tab_video.strip(trace.frames[2].x0)[4 + 64 + 4 - 2, 4 + 64 + 4 + 10]) == \
        (255, 255, 255)


def test_files_write_the_clip_as_mp4_and_gif(fns: dict[str, Callable], run: list[tuple]) -> None:
    from PIL import Image

    mp4, gif = fns["video_files"](run[-1][-1])
    assert mp4.endswith(".mp4") and Path(mp4).stat().st_size > 500
    with Image.open(gif) as image:
        assert image.n_frames == 16 and image.size == (256, 256)  # 8 px frames, x32


def test_attention_capture_and_views(fns: dict[str, Callable]) -> None:
    out = fns["video_attention"](CAPTION, MODEL, 3, 3.0, 0)
    state, step, layer, head, frame, patch, word, spatial, cross, temporal, text = out
    assert step["maximum"] == 3 and step["value"] == 3
    assert layer["choices"] == [tab_video.ALL_LAYERS, "0", "1"]
    assert head["choices"] == [tab_video.ALL_HEADS, "0", "1"]
    assert frame["maximum"] == 15 and patch["maximum"] == 3  # 2 x 2 patches a frame
    assert [w for w, _ in word["choices"]][:3] == ["a", "red", "circle"]
    assert word["value"] == 1  # the first content word: "red"
    assert spatial.shape == cross.shape == (256, 256, 3)
    assert temporal.shape[1] == 16 * 16 + 15 * 2  # the 16 frames side by side, bars below
    assert text.startswith("step 3, frame 0, patch 0 (row 0, column 0), all layers")
    assert "**Cross**: \"red\"" in text
    spatial2, cross2, temporal2, text2 = fns["video_attention_view"](state, 2, "1", "0", 9, 3, 2)
    assert text2.startswith("step 2, frame 9, patch 3 (row 1, column 1), layer 1, head 0")
    assert "\"circle\"" in text2
    assert not np.array_equal(temporal, temporal2)
    for args, message in (((state, 4, "1", "0", 0, 0, 1), "step 4 does not exist"),
                          ((state, 1, "1", "0", 16, 0, 1), "frame 16 does not exist"),
                          ((state, 1, "1", "0", 0, 4, 1), "patch 4 does not exist"),
                          ((state, 1, "7", "0", 0, 0, 1), "layer 7 does not exist"),
                          ((state, 1, "1", "9", 0, 0, 1), "head 9 does not exist"),
                          ((state, 1, "1", "0", NAN, 0, 1), "frame must be a whole number"),
                          ((None, 1, "1", "0", 0, 0, 1), "Capture attention first")):
        expect(message, fns["video_attention_view"], *args)


def test_cost_tables_compare_frames_and_the_image_model(fns: dict[str, Callable]) -> None:
    from matplotlib.figure import Figure

    steps, attention, plot, why = fns["video_cost"](MODEL, CAPTION)
    rows = steps["value"]
    assert [r[0] for r in rows] == ["shapes-dit: one image", f"{MODEL}: 4 frames",
                                    f"{MODEL}: 8 frames", f"{MODEL}: 16 frames"]
    assert [r[2] for r in rows] == [64, 4 * 4, 8 * 4, 16 * 4]  # tokens: shapes-dit's 8 x 8
    gflops = [float(r[3]) for r in rows[1:]]
    assert gflops[0] < gflops[1] < gflops[2]
    assert [r[0] for r in attention["value"]] == [4, 8, 16]
    assert attention["headers"][2:4] == ["pairs per layer, factorized", "pairs per layer, full"]
    assert attention["value"][-1][2:4] == [f"{16 * 4**2 + 4 * 16**2:,}", f"{(16 * 4) ** 2:,}"]
    assert isinstance(plot, Figure)
    assert "full space-time attention" in why and "shapes-dit (one image)" in why
    assert "SD-VAE latent" in why  # the full-scale sentence


def test_bad_input_gets_clear_messages(fns: dict[str, Callable], run: list[tuple]) -> None:
    generate, state = fns["video_generate"], run[-1][-1]
    expect("seed must be a finite number", generate, CAPTION, MODEL, 4, 3.0, NAN)
    expect("seed must be a whole number", generate, CAPTION, MODEL, 4, 3.0, 1e30)
    expect("steps must be a whole number from 1 to 100", generate, CAPTION, MODEL, 500, 3.0, 0)
    expect("guidance must be between 0 and 30", generate, CAPTION, MODEL, 4, 99.0, 0)
    expect("at most 1,000 are accepted", generate, "a red circle " * 100, MODEL, 4, 3.0, 0)
    expect("not in the catalog", generate, CAPTION, "no-such-model", 4, 3.0, 0)
    expect("Generate a clip first", fns["video_step"], 1, 0, None)
    expect("step 0 does not exist", fns["video_step"], 0, 0, state)
    expect("step 99 does not exist", fns["video_step"], 99, 0, state)
    expect("frame 16 does not exist", fns["video_frame"], 1, 16, state)
    expect("frame must be a whole number", fns["video_frame"], 1, NAN, state)
    expect("Generate a clip first", fns["video_files"], None)
    expect("seed must be a finite number", fns["video_attention"], CAPTION, MODEL, 2, 3.0, NAN)


def test_unknown_words_and_an_empty_caption_are_said(fns: dict[str, Callable]) -> None:
    *_, done = fns["video_generate"]("a red dragon moving right on a navy background", MODEL, 1,
                                     3.0, 0)
    assert "**Done**" in done[2] and "never learned this word ('dragon')" in done[2]
    assert "1 ddim step," in done[2]
    *_, done = fns["video_generate"]("", MODEL, 1, 3.0, 0)
    assert "No caption: an unconditional clip." in done[2]


def test_a_hub_text_to_video_model_generates_but_has_no_space_time_views(
        fns: dict[str, Callable]) -> None:
    """ModelScope's 3-D UNet (a tiny one of its architecture) runs through the same tab; the
    attention and cost panels need Latte's separate spatial and temporal blocks, and say so
    before loading anything."""
    *_, done = fns["video_generate"](CAPTION, "t2v", 2, 9.0, 0)
    assert "**Done**" in done[2] and "4 frames of 16 x 16 pixels" in done[2]
    assert Path(done[3]).is_file() and done[4].shape[1] < done[4].shape[0] * 8  # one row
    assert fns["video_frame"](2, 3, done[-1])[-1].endswith("frame 3 of 0 to 3 (at 0.375 s)")
    expect("t2v is not a Latte transformer", fns["video_attention"], CAPTION, "t2v", 2, 9.0, 0)
    expect("t2v is not a Latte transformer", fns["video_cost"], "t2v", CAPTION)


def test_a_video_model_not_trained_yet_is_said_plainly(tmp_path: Path) -> None:
    settings = Settings(offline=True, assets=tmp_path / "assets", hub_cache=tmp_path / "hub")
    spec = ModelSpec(id="motion-dit", tasks=("video",), source="assets", loader="latte",
                     path="models/motion-dit", resolution=32, frames=16, steps=25,
                     guidance=3.0, world="motion")
    demo, fns = _tab(ModelManager(settings, Catalog([spec], settings), CPU))
    note = _block(demo, "video-missing")
    assert note.visible and "motion-dit is not trained yet" in note.value
    assert "`python -m mmstudio train motion-dit --out " in note.value
    message = expect("motion-dit is not trained yet", fns["video_generate"], CAPTION,
                     "motion-dit", 4, 3.0, 0)
    assert "python -m mmstudio train motion-dit" in message
    expect("motion-dit is not trained yet", fns["video_attention"], CAPTION, "motion-dit", 4,
           3.0, 0)
    steps, attention, plot, why = fns["video_cost"]("motion-dit", CAPTION)
    assert why.startswith("**Not measured.** motion-dit is not trained yet") and plot is None


def test_the_tab_builds_on_the_real_catalog() -> None:
    manager = ModelManager()
    demo, fns = _tab(manager)
    note = _block(demo, "video-missing")
    shipped = manager.catalog.availability("motion-dit").available
    assert note.visible is not shipped
    if not shipped:
        assert "python -m mmstudio train motion-dit" in note.value
