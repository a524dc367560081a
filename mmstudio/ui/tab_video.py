"""Video tab: a caption becomes a 16-frame clip, step by step and frame by frame (a Latte video
diffusion transformer over per-frame latents); spatial attention within a frame against temporal
attention across frames; and why a clip costs so much more than an image, measured here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.ui import downloads
from mmstudio.ui.common import (
    explain,
    model_work,
    task_model_choices,
    unknown_words_note,
    user_errors,
)
from mmstudio.ui.trace_viewer import (
    BATCHED_RUNS,
    HEARTBEAT,
    step_panel,
    step_sentence,
    stream_run,
)

TASK = "video"
IMAGE_MODEL = "shapes-dit"  # the image model the cost panel compares with
EXPLAIN = """
**What you are seeing.** A video is a stack of images over time: here 16 frames of 32 x 32
pixels, 2 seconds at 8 frames per second. Each frame is squeezed by the shapes autoencoder into an
8 x 8 x 4 latent, so the model denoises one block of 16 latents, of shape (channels, frames,
height, width), in the same loop as an image. Its transformer (Latte) cuts every frame into
patches and alternates two kinds of attention: **spatial** (the patches of one frame look at each
other, and at the caption's words: what is where) and **temporal** (one patch position looks at
itself in every frame: how it changes). At each step you see all 16 frames of the model's input
x_t and of the clip it predicts (x0); when the run ends, the clip plays.
"""
SCRUB_EXPLAIN = """
**Scrub the finished run.** *Step* shows the 16 frames at any step of the run; *frame* picks one
frame (outlined in the filmstrips) and shows it large: the model's input, its predicted clean
frame and the noise it predicts in that frame. Nothing is run again.
"""
ATTENTION_EXPLAIN = """
**Space vs time.** Capture runs the same sampling once more with attention recording on (plain
runs never pay for it). Pick a frame and a patch (outlined in green). *Spatial*: which patches of
the same frame that patch draws from (the heat map over the frame). *Temporal*: how much the same
patch position in each of the 16 frames contributes (the bars under the frames; the query frame in
green): a moving object needs the frames next to it to know where it goes. *Cross*: which patches
of the frame look at a word of the caption.
"""
COST_EXPLAIN = """
**Why video is expensive.** A clip of F frames is F images' worth of patches in every block of
every step. Spatial blocks cost about F times an image's; temporal blocks add N F^2 pairs (N
patches per frame). Attending over space and time at once would relate every patch of every frame
to every other, (F N)^2 pairs: the factorized blocks (F N^2 + N F^2) are how video transformers
stay affordable. Measure runs one guided step of the video model at 4, 8 and 16 frames (the same
weights) and one of the image model at the same resolution, here and now.
"""
DEFAULT_CAPTION = "a red circle moving right on a navy background"
EXAMPLES = [
    "a red circle moving right on a navy background",
    "a yellow triangle moving up on a black background",
    "a blue square moving left on a gray background",
    "a white cross moving down on a darkgreen background",
    "a purple triangle moving left on a black background",  # a held-out colour / shape pair
]
MAX_STEPS = 100  # the slider's range; a run's trace is kept per step
ALL_HEADS = "mean over heads"
ALL_LAYERS = "mean over layers"
STRIP_CELL = 64  # pixels a filmstrip frame is enlarged to (nearest neighbour)
GAP = 4  # pixels between filmstrip frames (the highlight outline is drawn in it)
HIGHLIGHT = (20, 160, 90)
FUNCTION_WORDS = ("a", "an", "on", "moving", "background")


# ---------------------------------------------------------------------------------- model state
def missing_reason(manager: ModelManager, model_id: str | None) -> str:
    """"" when ``model_id`` can load here; else one plain sentence saying why not and, for an
    embedded model not trained yet, how to get it."""
    if not model_id:
        return "No video model is in the catalog."
    if model_id not in manager.catalog:
        return f"{model_id} is not in the catalog."
    status = manager.catalog.availability(model_id)
    if status.available:
        return ""
    spec = manager.catalog.get(model_id)
    if not spec.embedded:
        return f"{model_id} is not available here: {status.reason}."
    folder = _shown(manager.catalog.settings.assets / str(spec.path))
    return (f"{model_id} is not trained yet: its weights are not shipped with the studio (no "
            f"weights in {folder}/), so there is no model to generate with. To get it, train it "
            f"on this machine: `python -m mmstudio train {model_id} --out {folder}` (or train "
            f"into runs/{model_id}/export and copy that folder to {folder}); the tab uses it as "
            "soon as the weights are there.")


def _shown(path: Path) -> str:
    from mmstudio.config import REPO_ROOT

    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _note(manager: ModelManager, model_id: str | None) -> dict[str, Any]:
    reason = missing_reason(manager, model_id)
    return gr.update(value=f"**Not ready.** {reason}" if reason else "", visible=bool(reason))


def _require(manager: ModelManager, model_id: str | None) -> None:
    reason = missing_reason(manager, model_id)
    if reason:
        raise UserError(reason)


def _settings(caption: str | None, n_steps: float, scale: float, seed_value: float | None) -> Any:
    from mmstudio.pipelines.denoise import DenoiseSettings

    settings = DenoiseSettings((caption or "",), steps=n_steps, guidance=scale,
                               seed=seed_value if seed_value is not None else float("nan"))
    settings = settings.validated()
    if settings.steps > MAX_STEPS:
        raise UserError(f"steps must be a whole number from 1 to {MAX_STEPS} here, not "
                        f"{settings.steps}")
    return settings


def _require_latte(manager: ModelManager, model_id: str, view: str) -> None:
    """Before loading anything: the space-time views need a Latte (spatial + temporal blocks)."""
    _require(manager, model_id)
    if manager.catalog.get(model_id).loader != "latte":
        raise UserError(f"{model_id} is not a Latte transformer: {view} needs a model with "
                        "separate spatial and temporal attention blocks, such as motion-dit")


def _whole_in(value: Any, name: str, low: int, high: int, owner: str) -> int:
    """``value`` as a whole number from ``low`` to ``high``, or a ``UserError`` naming the field
    and what ``owner`` ("the run", "the clip") has."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"the {name} must be a whole number from {low} to {high}") from None
    if not np.isfinite(number) or number != int(number):
        raise UserError(f"the {name} must be a whole number from {low} to {high}, not {value}")
    if not low <= number <= high:
        raise UserError(f"{name} {int(number)} does not exist: {owner} has {name}s {low} to "
                        f"{high}")
    return int(number)


def _pick(value: Any, everything: str, name: str, count: int) -> int | None:
    """A layer or head dropdown's value: None for the mean, else its index."""
    if value in (None, everything):
        return None
    return _whole_in(value, name, 0, count - 1, "the model")


# ---------------------------------------------------------------------------------- pictures
def strip(frames: np.ndarray, highlight: int | None = None) -> np.ndarray:
    """(F, H, W, 3) uint8 frames as a filmstrip (8 a row, crisp enlarged pixels) with a white
    margin, frame ``highlight`` outlined in it."""
    from mmstudio.pipelines.video import filmstrip

    scale = max(1, STRIP_CELL // frames.shape[1])
    picture = filmstrip(frames, scale=scale, gap=GAP)
    picture = np.pad(picture, ((GAP, GAP), (GAP, GAP), (0, 0)), constant_values=255)
    if highlight is not None:
        h, w = frames.shape[1] * scale, frames.shape[2] * scale
        row, col = divmod(highlight, 8)
        y, x = GAP + row * (h + GAP), GAP + col * (w + GAP)
        cell = picture[y:y + h, x:x + w].copy()
        m = GAP - 1  # leaves a pixel of white to the neighbours
        picture[y - m:y + h + m, x - m:x + w + m] = HIGHLIGHT
        picture[y:y + h, x:x + w] = cell
    return picture


def _mark_patch(frames: np.ndarray, patch: int, grid: tuple[int, int]) -> np.ndarray:
    """The frames with the patch ``patch`` outlined in each (a copy)."""
    marked = np.array(frames, copy=True)
    rows, cols = grid
    ch, cw = marked.shape[1] // rows, marked.shape[2] // cols
    r, c = divmod(patch, cols)
    y0, y1, x0, x1 = r * ch, (r + 1) * ch - 1, c * cw, (c + 1) * cw - 1
    for y in (y0, y1):
        marked[:, y, x0:x1 + 1] = HIGHLIGHT
    for x in (x0, x1):
        marked[:, y0:y1 + 1, x] = HIGHLIGHT
    return marked


def _clip_scale(clip: np.ndarray) -> int:
    return max(1, 256 // clip.shape[1])


def write_clip_mp4(clip: np.ndarray, path: Path, fps: int) -> Path:
    from mmstudio.worlds.media import write_mp4

    return write_mp4(clip, path, fps=fps, scale=_clip_scale(clip))


def write_clip_gif(clip: np.ndarray, path: Path, fps: int) -> Path:
    from PIL import Image

    from mmstudio.worlds.media import upscale_nearest

    frames = [Image.fromarray(f) for f in upscale_nearest(clip, _clip_scale(clip))]
    frames[0].save(path, save_all=True, append_images=frames[1:],
                   duration=int(round(1000 / fps)), loop=0)
    return Path(path)


def cost_plot(steps: list[Any], attention: list[Any], image: Any | None):
    """GFLOPs and milliseconds against frames: one step of the video model, its factorized
    attention and full space-time attention; the image model's step as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = [a.frames for a in attention]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), dpi=100)
    left.plot(frames, [s.gflops_per_step for s in steps], "o-", label="one step (counted)")
    left.plot(frames, [a.factorized_gflops for a in attention], "s-",
              label="attention, factorized")
    left.plot(frames, [a.full_gflops for a in attention], "^--", label="attention, full")
    full_ms = [(a.frames, a.full_ms) for a in attention if a.full_ms is not None]
    right.plot(frames, [s.ms_per_step for s in steps], "o-", label="one step")
    right.plot(frames, [a.factorized_ms for a in attention], "s-", label="attention, factorized")
    if full_ms:
        right.plot(*zip(*full_ms, strict=True), "^--", label="attention, full")
    if image is not None:
        left.axhline(image.gflops_per_step, color="gray", linestyle=":", label="image step")
        right.axhline(image.ms_per_step, color="gray", linestyle=":", label="image step")
    left.set_title("GFLOPs (log scale)", fontsize=10)
    right.set_title("milliseconds here (log scale)", fontsize=10)
    for ax in (left, right):
        ax.set_yscale("log")
        ax.set_xlabel("frames")
        ax.set_xticks(frames)
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


# ---------------------------------------------------------------------------------- the tab
def build(manager: ModelManager) -> None:
    explain(EXPLAIN)
    default_id = manager.catalog.default_for(TASK)
    spec = manager.catalog.get(default_id) if default_id else None
    first = _note(manager, default_id)
    note = gr.Markdown(first["value"], visible=first["visible"], elem_id="video-missing")
    with gr.Row():
        caption = gr.Textbox(DEFAULT_CAPTION, label="Caption", scale=3, elem_id="video-caption",
                             info="Motion grammar: a color shape moving left/right/up/down on a "
                             "background background; empty means unconditional")
        model = gr.Dropdown(task_model_choices(manager, TASK), value=default_id, label="Model",
                            scale=2, elem_id="video-model")
    unknown_words_note(manager, caption, model, elem_id="video-unknown-words")
    gr.Examples([[c] for c in EXAMPLES], [caption], label="Captions (the last one is a colour / "
                "shape pair never seen in training)", api_name="video_caption_example")
    with gr.Row():
        steps = gr.Slider(1, MAX_STEPS, value=(spec.steps if spec else 25) or 25, step=1,
                          label="Steps", elem_id="video-steps")
        guidance = gr.Slider(0, 15, value=(spec.guidance if spec else 3.0) or 0, step=0.25,
                             label="Guidance (1 or less: off)", elem_id="video-guidance")
        seed = gr.Number(0, precision=0, label="Seed", minimum=0, elem_id="video-seed")
        go = gr.Button("Generate", variant="primary", elem_id="video-generate")
        stop = gr.Button("Stop", variant="stop", elem_id="video-stop")
    with gr.Row(equal_height=True):
        x_t_view = step_panel("x_t: every frame the model sees (decoded)", "video-xt",
                              height=190)
        x0_view = step_panel("predicted clip x0 (decoded)", "video-x0", height=190)
    status = gr.Markdown(elem_id="video-status")
    with gr.Row(equal_height=True):
        with gr.Column(min_width=200, scale=1):
            gr.Markdown("**The clip** (plays in a loop)", elem_classes=["mm-caption"])
            video_view = gr.Video(show_label=False, interactive=False, autoplay=True, loop=True,
                                  height=256, elem_id="video-clip", buttons=[])
        with gr.Column(scale=3):
            final_view = step_panel("result: the final clip's frames", "video-result",
                                    height=256)
    explain(SCRUB_EXPLAIN)
    with gr.Row():
        step_slider = gr.Slider(1, 25, value=1, step=1, label="Step (scrub the finished run)",
                                interactive=False, elem_id="video-step")
        frame_count = (spec.frames if spec else 16) or 16
        frame_slider = gr.Slider(0, frame_count - 1, value=0, step=1,
                                 label="Frame (0 = first; scrub the finished run)",
                                 interactive=False, elem_id="video-frame")
    with gr.Row(equal_height=True):
        x_t_frame = step_panel("x_t, this frame", "video-frame-xt")
        x0_frame = step_panel("predicted x0, this frame", "video-frame-x0")
        eps_frame = step_panel("predicted noise, this frame", "video-frame-eps")
    trace_state = gr.State(None)
    with gr.Accordion("Downloads: the clip as MP4 and GIF", open=False):
        make_files = gr.Button("Make MP4 and GIF of the last clip", elem_id="video-files")
        with gr.Row():
            mp4_file = gr.File(label="Clip as MP4", interactive=False, elem_id="video-mp4")
            gif_file = gr.File(label="Clip as GIF", interactive=False, elem_id="video-gif")

    def model_changed(model_id: str):
        chosen = manager.catalog.get(model_id)
        return (gr.update(value=chosen.steps or 25), gr.update(value=chosen.guidance or 0.0),
                _note(manager, model_id))

    model.change(user_errors(model_changed), model, [steps, guidance, note], api_name=False)

    def generate(caption_text: str, model_id: str, n_steps: float, scale: float,
                 seed_value: float, progress: gr.Progress = gr.Progress()):
        from mmstudio.pipelines.denoise import denoiser_for
        from mmstudio.pipelines.trace import Trace, step_frames
        from mmstudio.pipelines.video import FPS

        settings = _settings(caption_text, n_steps, scale, seed_value)
        _require(manager, model_id)
        progress(0, desc=f"loading {model_id}")
        trace = Trace()
        with denoiser_for(manager, model_id) as denoiser:
            shape = denoiser.sample_shape

            def on_step(step: Any) -> None:
                trace.frames.append(step_frames(step, denoiser))

            for result in stream_run(denoiser, settings, on_step, progress):
                if result is HEARTBEAT:
                    yield (gr.skip(),) * 11
                    continue
                last = trace.frames[-1]
                sentence = step_sentence(len(trace), settings.steps, last.timestep,
                                         last.alpha_bar)
                if result is None:
                    yield (strip(last.x_t), strip(last.x0), sentence, *(gr.skip(),) * 8)
                    continue
                clip = result.images[0]  # (F, H, W, 3)
                video = write_clip_mp4(clip, downloads.new_folder("video") / "clip.mp4", FPS)
                state = {"trace": trace, "clip": clip, "fps": FPS}
                yield (strip(last.x_t, 0), strip(last.x0, 0),
                       _done(manager, model_id, settings, result.seconds, shape, clip, FPS),
                       str(video), strip(clip),
                       gr.update(minimum=1, maximum=len(trace), value=len(trace),
                                 interactive=True),
                       gr.update(minimum=0, maximum=clip.shape[0] - 1, value=0,
                                 interactive=True),
                       last.x_t[0], last.x0[0], last.eps[0], state)

    def scrub(step_value: float, frame_value: float, state: dict | None):
        if not state:
            raise UserError("Generate a clip first; then the sliders scrub through its steps "
                            "and frames.")
        trace = state["trace"]
        i = _whole_in(step_value, "step", 1, len(trace), "the run") - 1
        frames = trace.frames[i]
        f = _whole_in(frame_value, "frame", 0, frames.x_t.shape[0] - 1, "the clip")
        sentence = (f"{step_sentence(i + 1, len(trace), frames.timestep, frames.alpha_bar)}; "
                    f"frame {f} of 0 to {frames.x_t.shape[0] - 1} (at {f / state['fps']:.3f} s)")
        return (strip(frames.x_t, f), strip(frames.x0, f), frames.x_t[f], frames.x0[f],
                frames.eps[f], sentence)

    def files(state: dict | None):
        if not state:
            raise UserError("Generate a clip first; then it downloads as MP4 and GIF.")
        folder = downloads.new_folder("video")
        clip, fps = state["clip"], state["fps"]
        return (str(write_clip_mp4(clip, folder / "clip.mp4", fps)),
                str(write_clip_gif(clip, folder / "clip.gif", fps)))

    inputs = [caption, model, steps, guidance, seed]
    run_event = go.click(model_work(manager, generate), inputs,
                         [x_t_view, x0_view, status, video_view, final_view, step_slider,
                          frame_slider, x_t_frame, x0_frame, eps_frame, trace_state],
                         api_name="video_generate", concurrency_limit=BATCHED_RUNS)
    stop.click(None, None, None, cancels=[run_event], api_visibility="private")
    scrub_outputs = [x_t_view, x0_view, x_t_frame, x0_frame, eps_frame, status]
    scrubber = user_errors(scrub)
    step_slider.input(scrubber, [step_slider, frame_slider, trace_state], scrub_outputs,
                      api_name="video_step", trigger_mode="always_last")
    frame_slider.input(scrubber, [step_slider, frame_slider, trace_state], scrub_outputs,
                       api_name="video_frame", trigger_mode="always_last")
    make_files.click(user_errors(files), trace_state, [mp4_file, gif_file],
                     api_name="video_files")

    _attention_panel(manager, inputs)
    _cost_panel(manager, caption, model)


def _done(manager: ModelManager, model_id: str, settings: Any, seconds: float,
          shape: tuple[int, ...], clip: np.ndarray, fps: int) -> str:
    c, f, h, w = shape
    plural = "s" if settings.steps != 1 else ""
    text = (f"**Done** in {seconds:.2f} s: {settings.steps} {settings.scheduler} step{plural}, "
            f"guidance {settings.guidance:g}, seed {settings.seed}; one sample of {c} x {f} x "
            f"{h} x {w} (channels x frames x height x width: a {h} x {w} latent per frame) "
            f"through the same loop as an image, decoded frame by frame into {f} frames of "
            f"{clip.shape[1]} x {clip.shape[2]} pixels: {f / fps:g} s at {fps} fps.")
    if not settings.prompts[0].strip():
        text += " No caption: an unconditional clip."
    unknown = manager.catalog.unknown_words_message(model_id, settings.prompts[0])
    if unknown:
        text += f" Note: {unknown}"
    return text


# ---------------------------------------------------------------------------------- space vs time
def _attention_panel(manager: ModelManager, inputs: list) -> None:
    with gr.Accordion("Space vs time: spatial attention within a frame, temporal attention "
                      "across frames", open=False):
        explain(ATTENTION_EXPLAIN)
        capture = gr.Button("Capture attention (runs the sampling once more)",
                            elem_id="video-capture")
        with gr.Row():
            att_step = gr.Slider(1, 25, value=25, step=1, label="Step", elem_id="video-att-step")
            layer = gr.Dropdown([ALL_LAYERS], value=ALL_LAYERS, label="Layer",
                                elem_id="video-att-layer")
            head = gr.Dropdown([ALL_HEADS], value=ALL_HEADS, label="Head",
                               elem_id="video-att-head")
        with gr.Row():
            att_frame = gr.Slider(0, 15, value=0, step=1, label="Frame (0 = first)",
                                  elem_id="video-att-frame")
            patch = gr.Slider(0, 15, value=0, step=1, label="Query patch (raster order)",
                              elem_id="video-att-patch")
        word = gr.Radio([], label="Word (cross-attention)", elem_id="video-att-word")
        with gr.Row():
            spatial_view = gr.Image(label="Spatial: the query patch (green) attends within its "
                                    "frame", interactive=False, height=280, format="png",
                                    elem_classes=["mm-pixelated"], elem_id="video-spatial-map")
            cross_view = gr.Image(label="Cross-attention of the frame's patches to the word",
                                  interactive=False, height=280, format="png",
                                  elem_classes=["mm-pixelated"], elem_id="video-cross-map")
        temporal_view = gr.Image(label="Temporal: the same patch position in every frame (bar = "
                                 "attention weight; green = the query frame)",
                                 interactive=False, height=200, format="png",
                                 elem_classes=["mm-pixelated"], elem_id="video-temporal-map")
        att_status = gr.Markdown(elem_id="video-att-status")
        att_state = gr.State(None)

    def run_capture(caption_text: str, model_id: str, n_steps: float, scale: float,
                    seed_value: float, progress: gr.Progress = gr.Progress()):
        from mmstudio.pipelines.denoise import denoiser_for, to_uint8
        from mmstudio.pipelines.video import LatteDenoiser, capture_space_time

        settings = _settings(caption_text, n_steps, scale, seed_value)
        _require_latte(manager, model_id, "the space vs time view")
        progress(0, desc="sampling with attention recording")
        with denoiser_for(manager, model_id) as denoiser:
            assert isinstance(denoiser, LatteDenoiser)
            trace = capture_space_time(denoiser, settings)
            pictures = [to_uint8(denoiser.to_rgb(s.x0_pred[:1]))[0] for s in trace.steps]
        state = {"trace": trace, "pictures": pictures}
        words = [(w.text, i) for i, w in enumerate(trace.words)]
        chosen = next((i for text, i in words if text not in FUNCTION_WORDS),
                      words[0][1] if words else None)
        last = len(trace.steps)
        return (state, gr.update(maximum=last, value=last),
                gr.update(choices=[ALL_LAYERS, *map(str, range(trace.layers))],
                          value=ALL_LAYERS),
                gr.update(choices=[ALL_HEADS, *map(str, range(trace.heads))], value=ALL_HEADS),
                gr.update(maximum=trace.frames - 1, value=0),
                gr.update(maximum=trace.grid[0] * trace.grid[1] - 1, value=0),
                gr.update(choices=words, value=chosen, visible=bool(words)),
                *view(state, last, ALL_LAYERS, ALL_HEADS, 0, 0, chosen))

    def view(state: dict | None, step_value: float, layer_value: str | None,
             head_value: str | None, frame_value: float, patch_value: float,
             word_value: Any):
        from mmstudio.pipelines.dit import heatmap_over
        from mmstudio.pipelines.video import temporal_picture

        if not state:
            raise UserError("Capture attention first.")
        trace = state["trace"]
        step = _whole_in(step_value, "step", 1, len(trace.steps), "the captured run") - 1
        frame = _whole_in(frame_value, "frame", 0, trace.frames - 1, "the clip")
        patches = trace.grid[0] * trace.grid[1]
        query = _whole_in(patch_value, "patch", 0, patches - 1, "a frame")
        layer_index = _pick(layer_value, ALL_LAYERS, "layer", trace.layers)
        head_index = _pick(head_value, ALL_HEADS, "head", trace.heads)
        layers = range(trace.layers) if layer_index is None else [layer_index]
        frames = state["pictures"][step]  # (F, H, W, 3): the predicted clip at this step
        spatial = np.mean([trace.spatial_map(step, i, frame, query, head_index)
                           for i in layers], axis=0)
        temporal = np.mean([trace.temporal_map(step, i, frame, query, head_index)
                            for i in layers], axis=0)
        row, col = divmod(query, trace.grid[1])
        neighbours = [j for j in (frame - 1, frame + 1) if 0 <= j < trace.frames]
        near = float(sum(temporal[j] for j in neighbours))
        others = trace.frames - 1 - len(neighbours)
        which = ("all layers" if layer_index is None else f"layer {layer_index}") + ", " + \
            ("mean over heads" if head_index is None else f"head {head_index}")
        text = (f"step {step + 1}, frame {frame}, patch {query} (row {row}, column {col}), "
                f"{which}. **Spatial**: the patch takes {spatial.flat[query]:.0%} from itself "
                f"and {spatial.max():.0%} from its strongest patch of the frame. **Temporal**: "
                f"it gives {temporal[frame]:.0%} to its own frame, {near:.0%} to the frames "
                f"next to it and {max(0.0, 1 - temporal[frame] - near):.0%} to the other "
                f"{others}.")
        cross_picture = None
        if trace.words and word_value is not None:
            w = _whole_in(word_value, "word", 0, len(trace.words) - 1, "the caption")
            cross = np.mean([trace.cross_map(step, i, frame, w, head_index) for i in layers],
                            axis=0)
            cross_picture = heatmap_over(frames[frame], cross)
            text += (f" **Cross**: \"{trace.words[w].text}\" gets {cross.max():.0%} of the "
                     f"attention at the brightest patch, {cross.mean():.0%} on average.")
        elif not trace.words:
            text += " No caption: no words to attend to."
        return (heatmap_over(frames[frame], spatial, marker=query), cross_picture,
                temporal_picture(temporal, _mark_patch(frames, query, trace.grid), frame), text)

    view_inputs = [att_state, att_step, layer, head, att_frame, patch, word]
    view_outputs = [spatial_view, cross_view, temporal_view, att_status]
    capture.click(model_work(manager, run_capture), inputs,
                  [att_state, att_step, layer, head, att_frame, patch, word, *view_outputs],
                  api_name="video_attention")
    viewer = user_errors(view)
    for component in (att_frame, patch):
        component.release(viewer, view_inputs, view_outputs, api_name=False)
    for component in (layer, head, word):
        component.input(viewer, view_inputs, view_outputs, api_name=False)
    att_step.release(viewer, view_inputs, view_outputs, api_name="video_attention_view")


# ---------------------------------------------------------------------------------- cost
def _cost_panel(manager: ModelManager, caption: gr.Textbox, model: gr.Dropdown) -> None:
    with gr.Accordion("Why video is expensive: measured now, on this machine", open=False):
        explain(COST_EXPLAIN)
        measure = gr.Button("Measure", elem_id="video-cost")
        gr.Markdown("**One denoising step** (a guided model call: conditional and unconditional "
                    "together)", elem_classes=["mm-caption"])
        step_table = gr.Dataframe(interactive=False, elem_id="video-cost-steps")
        gr.Markdown("**Attention of one clip, all layers: factorized vs full space-time**",
                    elem_classes=["mm-caption"])
        attention_table = gr.Dataframe(interactive=False, elem_id="video-cost-attention")
        plot = gr.Plot(label="Cost against frames", elem_id="video-cost-plot")
        why = gr.Markdown(elem_id="video-cost-why")

    def measure_cost(model_id: str, caption_text: str | None,
                     progress: gr.Progress = gr.Progress()):
        from mmstudio.pipelines.denoise import denoiser_for
        from mmstudio.pipelines.video import (
            LatteDenoiser,
            frame_scaling,
            full_scale_sentence,
            measure_attention_cost,
        )

        reason = missing_reason(manager, model_id)
        if reason:  # nothing to measure; the formulas still hold
            return (gr.update(value=None), gr.update(value=None), None,
                    f"**Not measured.** {reason}\n\n{full_scale_sentence()}")
        _require_latte(manager, model_id, "the cost panel")
        progress(0, desc=f"measuring {model_id}")
        with denoiser_for(manager, model_id) as denoiser:
            assert isinstance(denoiser, LatteDenoiser)
            steps = frame_scaling(denoiser)
            attention = measure_attention_cost(denoiser.transformer.config)
            factor = 2 ** (len(denoiser.vae.config.block_out_channels) - 1)
            frame_px = denoiser.size * factor
            latent = (denoiser.channels, denoiser.size, denoiser.size)
        progress(0.7, desc=f"measuring {IMAGE_MODEL}")
        image, image_tokens, image_reason = None, 0, missing_reason(manager, IMAGE_MODEL)
        if not image_reason:
            image, image_tokens = _image_step(manager, caption_text or DEFAULT_CAPTION)
        header = ["what", "parameters", "tokens per sample", "GFLOPs per step", "ms per step",
                  "x the image step"]
        rows = []
        if image is not None:
            rows.append([f"{IMAGE_MODEL}: one image", f"{image.parameters / 1e6:.2f} M",
                         image_tokens, _num(image.gflops_per_step),
                         _num(image.ms_per_step), "1"])
        for s, a in zip(steps, attention, strict=True):
            times = (f"{s.gflops_per_step / max(image.gflops_per_step, 1e-12):.2g}x FLOPs, "
                     f"{s.ms_per_step / max(image.ms_per_step, 1e-9):.2g}x time"
                     if image is not None else "n/a")
            rows.append([f"{model_id}: {s.what.removeprefix('video, ')}",
                         f"{s.parameters / 1e6:.2f} M", a.tokens, _num(s.gflops_per_step),
                         _num(s.ms_per_step), times])
        att_header = ["frames", "tokens per clip", "pairs per layer, factorized",
                      "pairs per layer, full", "full / factorized", "GFLOPs factorized",
                      "GFLOPs full", "ms factorized", "ms full"]
        att_rows = [[a.frames, a.tokens, f"{a.factorized_pairs:,}", f"{a.full_pairs:,}",
                     f"{a.full_pairs / a.factorized_pairs:.1f}x", _num(a.factorized_gflops),
                     _num(a.full_gflops), _num(a.factorized_ms),
                     "not timed" if a.full_ms is None else _num(a.full_ms)]
                    for a in attention]
        text = _why(model_id, steps, attention, (image, image_tokens, image_reason), frame_px,
                    latent)
        return (gr.update(value=rows, headers=header),
                gr.update(value=att_rows, headers=att_header),
                cost_plot(steps, attention, image), f"{text}\n\n{full_scale_sentence()}")

    measure.click(model_work(manager, measure_cost), [model, caption],
                  [step_table, attention_table, plot, why], api_name="video_cost")


def _num(value: float) -> str:
    """A measured figure with three significant digits, without exponents."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _image_step(manager: ModelManager, caption_text: str) -> tuple[Any, int]:
    """One guided step of the image model, measured as ``frame_scaling`` measures the video
    model's (``step_cost``: FLOPs, fastest of three calls), and the tokens it reads."""
    import torch

    from mmstudio.pipelines.denoise import denoiser_for
    from mmstudio.pipelines.video import step_cost

    with denoiser_for(manager, IMAGE_MODEL) as denoiser:
        cond = denoiser.encode(["", caption_text])
        x = torch.randn(2, denoiser.channels, denoiser.size, denoiser.size,
                        dtype=denoiser.dtype, device=denoiser.device)
        t = torch.tensor(500, device=denoiser.device)
        model = getattr(denoiser, "transformer", None) or denoiser.unet
        patch = int(getattr(model.config, "patch_size", None) or 1)
        cost = step_cost(IMAGE_MODEL, "image", model, lambda: denoiser.predict(x, t, cond))
        return cost, (denoiser.size // patch) ** 2


def _why(model_id: str, steps: list[Any], attention: list[Any], image_side: tuple,
         frame_px: int, latent: tuple[int, int, int]) -> str:
    image, image_tokens, image_reason = image_side
    first, last, worst = steps[0], steps[-1], attention[-1]
    c, h, w = latent
    text = (f"One step of {model_id} over {attention[-1].frames} frames of {frame_px} x "
            f"{frame_px} pixels ({c} x {h} x {w} latents) "
            f"costs {_num(last.gflops_per_step)} GFLOPs and {_num(last.ms_per_step)} ms "
            f"here; from {attention[0].frames} to {attention[-1].frames} frames it grows "
            f"{last.gflops_per_step / max(first.gflops_per_step, 1e-12):.1f}x in FLOPs and "
            f"{last.ms_per_step / max(first.ms_per_step, 1e-9):.1f}x in time.")
    if image is not None:
        text += (f" One step of {IMAGE_MODEL} (one image) costs {_num(image.gflops_per_step)} "
                 f"GFLOPs and {_num(image.ms_per_step)} ms: the {attention[-1].frames}-frame step "
                 f"is {last.gflops_per_step / max(image.gflops_per_step, 1e-12):.2g}x the "
                 f"FLOPs, and every step of the run pays it.")
        per_frame = worst.tokens // worst.frames
        if per_frame != image_tokens:
            text += (f" (Mind the tokens: {IMAGE_MODEL} reads its image as {image_tokens} "
                     f"tokens, {model_id} each frame as {per_frame}; with {IMAGE_MODEL}'s "
                     f"patches a {worst.frames}-frame clip would be "
                     f"{worst.frames * image_tokens:,} tokens.)")
    else:
        text += f" ({IMAGE_MODEL} was not measured: {image_reason})"
    text += (f" Attention alone: at {worst.frames} frames the factorized blocks relate "
             f"{worst.factorized_pairs:,} pairs of tokens per layer; full space-time attention "
             f"would relate {worst.full_pairs:,}, "
             f"{worst.full_pairs / worst.factorized_pairs:.1f}x more, and that factor grows with "
             "every frame and every patch.")
    return text
