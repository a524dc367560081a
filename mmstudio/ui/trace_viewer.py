"""The one trace viewer: steps x panels, streamed while the loop runs, then scrubbed, downloadable.

Tabs compose it with their own panels: ``step_panel`` makes a panel, ``stream_run`` drives the
denoising loop in the background and hands the tab each new batch of steps, and ``trace_files``
writes the GIF and MP4 of a finished run when someone asks for them (not on every run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from mmstudio.ui import downloads

PANEL_HEIGHT = 224


def step_panel(label: str, elem_id: str, buttons: tuple[str, ...] = (),
               height: int = PANEL_HEIGHT) -> gr.Image:
    """A step panel. Images are sent at the model's size and the browser enlarges them
    (``mm-fill``, crisp pixels with ``mm-pixelated``): streaming a 32 px model costs a few tiny
    PNGs per step. The caption sits above the image: a label badge would cover its top-left
    corner, which is where "in the top left" puts the object; for the same reason step panels
    carry no buttons over their top-right corner."""
    with gr.Column(min_width=160):
        gr.Markdown(f"**{label}**", elem_classes=["mm-caption"])
        return gr.Image(label=label, show_label=False, interactive=False, height=height,
                        buttons=list(buttons), elem_id=elem_id,
                        elem_classes=["mm-pixelated", "mm-fill"], format="png")


#: Runs at once per streamed event: they share forward passes (``pipelines.batching``), so this
#: bounds the batch size, not the CPU work.
BATCHED_RUNS = 32


#: what ``stream_run`` yields between page updates: send nothing (every output ``gr.skip()``)
HEARTBEAT = "heartbeat"


def stream_run(denoiser: Any, settings: Any, on_step: Callable[[Any], None],
               progress: gr.Progress) -> Iterator[Any]:
    """Run the loop in the background, its model calls joined with other users' runs of the same
    network (``pipelines.batching``); call ``on_step(step)`` for every step as it arrives, and
    yield None after each batch of new steps (at most ``UPDATE_INTERVAL`` times the number of
    runs streaming apart: time to update the page), ``HEARTBEAT`` for a step that waits for the
    next update (send nothing), then the result. Closing this generator (Stop, a closed tab)
    stops the loop within a step: the heartbeats keep it closable between updates."""
    from mmstudio.pipelines.batching import batched
    from mmstudio.pipelines.denoise import DenoiseResult, denoise
    from mmstudio.pipelines.stream import UPDATE_INTERVAL, in_background

    done = 0
    for batch in in_background(denoise(batched(denoiser), settings), UPDATE_INTERVAL,
                               heartbeat=True):
        if not batch:
            yield HEARTBEAT
            continue
        result = None
        for item in batch:
            if isinstance(item, DenoiseResult):
                result = item
            else:
                on_step(item)
                done += 1
        if result is not None:
            yield result
            return
        progress(done / settings.steps, desc=f"step {done}/{settings.steps}")
        yield None


def step_sentence(index: int, total: int, timestep: float, alpha_bar: float) -> str:
    return (f"step {index} of {total}, t = {timestep:.0f}, signal share ab = {alpha_bar:.3f}")


def trace_files(trace: Any, prefix: str = "trace") -> tuple[str, str]:
    """The GIF and MP4 of a finished trace, written now (on request, not with every run), in the
    bounded downloads folder."""
    if trace is None or not len(trace):
        raise gr.Error("Generate first; then the run downloads as GIF and MP4.")
    folder = downloads.new_folder(prefix)
    return str(trace.write_gif(folder / "trace.gif")), str(trace.write_mp4(folder / "trace.mp4"))
