"""The Worlds tab: samples of the procedural worlds every embedded model learned from.

``build(manager)`` fills an enclosing ``gr.Tab``; the work is done by ``render_worlds`` (no gradio),
the handler only turns its files and arrays into component updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from mmstudio.checks import whole_number
from mmstudio.errors import UserError
from mmstudio.ui import downloads
from mmstudio.worlds import motion, parse_any, shapes, sounds
from mmstudio.worlds.media import DISPLAY_SCALE, upscale_nearest, write_mp4, write_wav

N_SHAPES = 12
N_SOUNDS = 4
N_CLIPS = 4
GALLERY_SCALE = 6  # 32 px -> 192 px, nearest neighbour
MAX_SEED = 2**31 - 1

INTRO = """\
### What you are seeing
The embedded models are trained on three small **procedural worlds** (see `WORLDS.md`), drawn by a
program rather than collected: **shapes** (one coloured shape on a 32 x 32 canvas), **sounds**
(one-second beeps and notes) and **motion** (a shape gliding across 16 frames). Every sample comes
with its caption, and each world has an analyzer that reads the attributes back, which is how the
studio measures whether a generated "small red circle" really is one. The pairs *purple triangle*,
*cyan cross*, *yellow square*, *high sawtooth* and *low noise* never appear in training
(**held out**): they test whether a model can combine what it learned.

Type a caption of any world (e.g. `a small red circle in the top left`,
`three short beeps of a high square wave`, `a blue cross moving up on a navy background`) to render
it; the other worlds show random samples. Images are enlarged with nearest neighbour.
"""


@dataclass
class WorldsView:
    """What the tab shows for one render: images and file paths with their captions."""

    seed: int
    shapes: list[tuple[np.ndarray, str]] = field(default_factory=list)  # (192, 192, 3) uint8
    sounds: list[tuple[str, str]] = field(default_factory=list)  # (wav path, caption)
    clips: list[tuple[str, str]] = field(default_factory=list)  # (mp4 path, caption)


def _label(world: Any, attrs: Any) -> str:
    text = world.caption(attrs)
    return f"{text} (held out)" if world.is_held_out(attrs) else text


def render_worlds(seed: int, text: str = "", out_dir: str | Path | None = None) -> WorldsView:
    """Render the tab's samples for ``seed``; a caption of one world fixes that world's samples.

    Raises ``UserError`` (e.g. ``CaptionError``) for a caption of no world or a bad seed.
    """
    if seed < 0 or seed > MAX_SEED:
        raise UserError(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    prompts: dict[str, Any] = {}
    if text and text.strip():
        name, attrs = parse_any(text)
        prompts[name] = attrs
    out = Path(out_dir) if out_dir else downloads.new_folder("worlds")
    out.mkdir(parents=True, exist_ok=True)
    view = WorldsView(seed)
    for i in range(N_SHAPES):
        img, attrs = shapes.render_with_attrs(
            prompts.get("shapes", shapes.ShapeAttrs()), np.random.default_rng([seed, 0, i])
        )
        view.shapes.append((upscale_nearest(img, GALLERY_SCALE), _label(shapes, attrs)))
    for i in range(N_SOUNDS):
        clip, attrs = sounds.render_with_attrs(
            prompts.get("sounds", sounds.SoundAttrs()), np.random.default_rng([seed, 1, i])
        )
        path = write_wav(clip, out / f"sound_{i}.wav", sounds.SAMPLE_RATE)
        view.sounds.append((str(path), _label(sounds, attrs)))
    for i in range(N_CLIPS):
        frames, attrs = motion.render_with_attrs(
            prompts.get("motion", motion.MotionAttrs()), np.random.default_rng([seed, 2, i])
        )
        path = write_mp4(frames, out / f"motion_{i}.mp4", motion.FPS, DISPLAY_SCALE)
        view.clips.append((str(path), _label(motion, attrs)))
    return view


def _updates(view: WorldsView) -> list[Any]:
    return [
        view.shapes,
        *(gr.update(value=path, label=label) for path, label in view.sounds),
        *(gr.update(value=path, label=label) for path, label in view.clips),
    ]


def on_render(seed: float | None, text: str | None) -> list[Any]:
    """Handler of "Render new samples": gallery items, then audio and video updates."""
    try:
        seed = whole_number(seed, "the seed", 0, MAX_SEED)
        return _updates(render_worlds(seed, text or ""))
    except UserError as exc:
        raise gr.Error(str(exc)) from None


def build(manager: Any = None) -> None:
    """Create the tab's content inside the caller's ``gr.Tab("Worlds")``. ``manager`` is unused:
    the worlds need no model."""
    del manager
    initial = render_worlds(0, out_dir=downloads.static_folder("worlds-0"))  # never swept
    gr.Markdown(INTRO)
    with gr.Row(equal_height=True):
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", scale=1)
        text = gr.Textbox(
            label="Caption (optional)",
            placeholder="e.g. a large yellow square on a navy background",
            scale=4,
        )
        button = gr.Button("Render new samples", variant="primary", scale=1)
    gallery = gr.Gallery(
        value=initial.shapes,
        label="Shapes: 32 x 32 images with their captions",
        columns=6,
        format="png",
        object_fit="contain",
        allow_preview=True,
        interactive=False,
    )
    gr.Markdown("#### Sounds: one second at 16 kHz")
    with gr.Row():
        audios = [
            gr.Audio(value=path, label=label, type="filepath", interactive=False)
            for path, label in initial.sounds
        ]
    gr.Markdown("#### Motion: 16 frames at 8 fps")
    with gr.Row():
        videos = [
            gr.Video(value=path, label=label, interactive=False, loop=True, autoplay=True)
            for path, label in initial.clips
        ]
    outputs = [gallery, *audios, *videos]
    button.click(on_render, [seed, text], outputs, api_name="worlds_render")
    text.submit(on_render, [seed, text], outputs, api_name="worlds_render_caption")
