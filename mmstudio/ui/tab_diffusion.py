"""Diffusion tab: the denoising loop step by step, the forward process, guidance x seed grids."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from mmstudio.checks import whole_number
from mmstudio.manager import ModelManager
from mmstudio.ui.common import (
    explain,
    model_work,
    task_model_choices,
    unknown_words_note,
    upscale,
    user_errors,
)
from mmstudio.ui.trace_viewer import (
    BATCHED_RUNS,
    HEARTBEAT,
    step_panel,
    step_sentence,
    stream_run,
    trace_files,
)

EXPLAIN = """
**What you are seeing.** A diffusion model starts from pure noise and removes a little of it at
every step. At each step it looks at the current noisy image **x_t** and predicts the noise in
it; from that follows its current guess of the finished image, the **predicted x0**. Early guesses
are blurry averages of everything the prompt allows; they sharpen as the noise goes away. The
**scheduler** decides how big each step is; **guidance** (classifier-free) pushes the prediction
away from the unconditional one and towards the prompt. After a run, scrub through every step
with the slider: nothing is computed again.
"""
FORWARD_EXPLAIN = """
The **forward process** is what the model was trained to undo: x_t = sqrt(ab_t) x_0 +
sqrt(1 - ab_t) noise. Move the timestep to see how much of the image survives; the schedule
decides how fast the signal share ab_t falls.
"""
DEFAULT_PROMPT = "a large red circle in the top left on a navy background"
FORWARD_CAPTION = "a large yellow triangle in the center on a darkgreen background"
DISPLAY = 224
FORWARD_T = 400


def _show(image: np.ndarray) -> np.ndarray:
    return upscale(image, DISPLAY)


def build(manager: ModelManager) -> None:
    from mmstudio.pipelines.schedulers import SCHEDULERS

    explain(EXPLAIN)
    default_id = manager.catalog.default_for("denoise")
    default_spec = manager.catalog.get(default_id) if default_id else None
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt",
                                info="Empty means unconditional. Shapes grammar: a [size] color "
                                "shape [in the position] [on a background background]")
        model = gr.Dropdown(task_model_choices(manager, "denoise"), value=default_id,
                            label="Model", scale=2)
    unknown_words_note(manager, prompt, model, elem_id="diffusion-unknown-words")
    with gr.Row():
        scheduler = gr.Dropdown([(f"{k}: {v}", k) for k, v in SCHEDULERS.items()], value="ddim",
                                label="Scheduler", scale=2)
        steps = gr.Slider(1, 100, value=(default_spec.steps if default_spec else 25) or 25,
                          step=1, label="Steps", elem_id="diffusion-steps")
        guidance = gr.Slider(0, 15, value=(default_spec.guidance if default_spec else 3.0) or 0,
                             step=0.25, label="Guidance")
        seed = gr.Number(0, precision=0, label="Seed", minimum=0)
        go = gr.Button("Generate", variant="primary", scale=1)
        stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, elem_id="diffusion-stop")
    with gr.Row(equal_height=True):
        x_t_view = step_panel("x_t (model input)", "diffusion-xt")
        x0_view = step_panel("predicted x0", "diffusion-x0")
        eps_view = step_panel("predicted noise", "diffusion-eps")
        final_view = step_panel("result", "diffusion-result", buttons=("download",))
    status = gr.Markdown()
    step_slider = gr.Slider(1, 25, value=1, step=1, label="Step (scrub the finished run)",
                            interactive=False, elem_id="diffusion-step")
    trace_state = gr.State(None)
    with gr.Accordion("All steps at once, and downloads", open=False):
        make_files = gr.Button("Show all steps; make the GIF and MP4",
                               elem_id="diffusion-make-files")
        grid_view = gr.Image(label="Rows: x_t, predicted x0, predicted noise; one column per step",
                             interactive=False)
        with gr.Row():
            gif_file = gr.File(label="Trace as GIF", interactive=False)
            mp4_file = gr.File(label="Trace as MP4", interactive=False)

    def generate(prompt_text: str, model_id: str, scheduler_name: str, n_steps: float,
                 scale: float, seed_value: float, progress: gr.Progress = gr.Progress()):
        from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for
        from mmstudio.pipelines.trace import Trace, step_frames

        settings = DenoiseSettings((prompt_text or "",), steps=n_steps, guidance=scale,
                                   seed=seed_value if seed_value is not None else float("nan"),
                                   scheduler=scheduler_name).validated()
        progress(0, desc=f"loading {model_id}")
        with denoiser_for(manager, model_id) as denoiser:  # borrowed for the whole run
            trace = Trace()
            result = None
            for result in stream_run(denoiser, settings,
                                     lambda step: trace.frames.append(step_frames(step, denoiser)),
                                     progress):
                if result is HEARTBEAT:
                    yield (gr.skip(),) * 10
                elif result is None and trace.frames:
                    last = trace.frames[-1]
                    yield (last.x_t, last.x0, last.eps, gr.skip(),
                           step_sentence(len(trace), settings.steps, last.timestep,
                                         last.alpha_bar),
                           gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip())
            assert result is not None
            last = trace.frames[-1]
            kind = "latent (previews are a cheap linear map; the result is VAE-decoded)" \
                if denoiser.latent else "pixel space"
            yield (last.x_t, last.x0, last.eps, result.images[0],
                   f"**Done** in {result.seconds:.2f} s: {settings.steps} {settings.scheduler} "
                   f"steps, guidance {settings.guidance:g}, seed {settings.seed}, {kind}.",
                   gr.update(minimum=1, maximum=len(trace), value=len(trace), interactive=True),
                   trace, None, None, None)  # the grid and files: on request (make_files)

    @user_errors
    def scrub(index: float, trace: Any):
        if trace is None or not len(trace):
            raise gr.Error("Generate an image first; then the slider scrubs through its steps.")
        frame = trace.frames[max(0, min(len(trace) - 1, int(index) - 1))]
        return (frame.x_t, frame.x0, frame.eps,
                step_sentence(frame.index + 1, len(trace), frame.timestep, frame.alpha_bar))

    @user_errors
    def trace_downloads(trace: Any):
        if trace is None or not len(trace):
            raise gr.Error("Generate an image first; then its steps show here and download.")
        return (trace.grid(), *trace_files(trace))

    generating = go.click(model_work(manager, generate),
                          [prompt, model, scheduler, steps, guidance, seed],
                          [x_t_view, x0_view, eps_view, final_view, status, step_slider,
                           trace_state, grid_view, gif_file, mp4_file], api_name="denoise",
                          concurrency_limit=BATCHED_RUNS)
    stop.click(None, None, None, cancels=[generating], api_visibility="private")
    make_files.click(trace_downloads, trace_state, [grid_view, gif_file, mp4_file],
                     api_name="denoise_trace_files")
    step_slider.input(scrub, [step_slider, trace_state],
                        [x_t_view, x0_view, eps_view, status], api_name="denoise_step")

    with gr.Accordion("Forward process: how noise is added", open=False) as forward_panel:
        explain(FORWARD_EXPLAIN)
        with gr.Row():
            caption = gr.Textbox(FORWARD_CAPTION, label="Render from a caption", scale=3)
            upload = gr.Image(type="filepath", label="...or upload an image", height=160,
                              scale=1, sources=["upload"])
        with gr.Row():
            timestep = gr.Slider(0, 999, value=FORWARD_T, step=1, label="Timestep t")
            schedule = gr.Radio(["cosine", "linear"], value="cosine", label="Schedule")
        # Filled when the panel opens, so that start-up does not pay for diffusers and matplotlib.
        with gr.Row(equal_height=True):
            clean_view = gr.Image(label="x_0", interactive=False)
            noisy_view = gr.Image(label="x_t", interactive=False)
            noise_view = gr.Image(label="noise added", interactive=False)
        forward_status = gr.Markdown()
        plot = gr.Plot(label="Noise schedules")

    forward = user_errors(forward_view)

    inputs = [caption, upload, timestep, schedule]
    outputs = [clean_view, noisy_view, noise_view, plot, forward_status]
    timestep.release(forward, inputs, outputs, api_name="forward_noise")
    forward_panel.expand(forward, inputs, outputs, api_name=False)
    for component in (schedule, upload):
        component.change(forward, inputs, outputs, api_name=False)
    caption.submit(forward, inputs, outputs, api_name=False)

    with gr.Accordion("Guidance x seed: the same prompt, side by side", open=False):
        with gr.Row():
            grid_prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt", scale=3)
            guidances = gr.Textbox("0, 1, 1.5, 3", label="Guidance values (comma separated)")
            seeds = gr.Slider(1, 8, value=4, step=1, label="Seeds (0, 1, ...)")
            compare = gr.Button("Compare")
        unknown_words_note(manager, grid_prompt, model, elem_id="diffusion-grid-unknown-words")
        compare_view = gr.Image(label="Rows: guidance; columns: seed", interactive=False)

    def comparison(prompt_text: str, model_id: str, scheduler_name: str, n_steps: float,
                   guidance_text: str, n_seeds: float):
        from mmstudio.pipelines.batching import batched
        from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run

        values = _parse_floats(guidance_text)
        n_seeds = whole_number(n_seeds, "the number of seeds", 1, 8)
        rows = []
        with denoiser_for(manager, model_id) as denoiser:
            for value in values:
                settings = DenoiseSettings((prompt_text or "",), steps=n_steps, guidance=value,
                                           seed=0, n=n_seeds, scheduler=scheduler_name)
                rows.append(list(run(batched(denoiser), settings).images))
        return labelled_grid(rows, [f"g={v:g}" for v in values],
                             [f"seed {s}" for s in range(n_seeds)])

    compare.click(model_work(manager, comparison),
                  [grid_prompt, model, scheduler, steps, guidances, seeds], compare_view,
                  api_name="denoise_grid")


def forward_view(caption_text: str, upload_path: str | None, t: float, schedule_name: str):
    """x_0, x_t, the noise, the schedule plot and a sentence with the figures."""
    from mmstudio.pipelines.forward import forward_noise

    t = whole_number(t, "timestep", 0, 999)
    image = _forward_source(caption_text, upload_path)
    sample = forward_noise(image, t, schedule_name, seed=0)
    return (_show(image), _show(sample.x_t), _show(sample.noise), schedule_plot(t),
            f"t = {sample.timestep}: signal share ab = {sample.alpha_bar:.3f} "
            f"(x_t = {sample.signal_scale:.3f} x_0 + {sample.noise_scale:.3f} noise), "
            f"SNR = {sample.alpha_bar / max(1 - sample.alpha_bar, 1e-12):.3g}")


def _parse_floats(text: str) -> list[float]:
    from mmstudio.errors import UserError

    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise UserError(f"guidance values must be numbers separated by commas, not {text!r}") \
            from None
    if not 1 <= len(values) <= 6:
        raise UserError("give between 1 and 6 guidance values")
    return values


def _forward_source(caption_text: str, upload_path: str | None) -> np.ndarray:
    if upload_path:
        from mmstudio.images import prepare_image

        return prepare_image(upload_path, 64).array
    from mmstudio.worlds import shapes

    return shapes.render(shapes.parse(caption_text or FORWARD_CAPTION), np.random.default_rng(0))


def schedule_plot(t: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmstudio.pipelines.forward import alphas_cumprod, snr

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2), dpi=100)
    steps = np.arange(1000)
    for name, color in (("linear", "tab:orange"), ("cosine", "tab:blue")):
        ax1.plot(steps, alphas_cumprod(name), color=color, label=name)
        ax2.semilogy(steps, snr(name), color=color, label=name)
    for ax in (ax1, ax2):
        ax.axvline(t, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel("timestep t")
        ax.legend(fontsize=8)
    ax1.set_title("signal share alpha-bar", fontsize=10)
    ax2.set_title("SNR (log scale)", fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def labelled_grid(rows: list[list[np.ndarray]], row_labels: list[str],
                  column_labels: list[str], cell: int = 128) -> np.ndarray:
    """Images in a grid with row and column labels (PIL's built-in font: nothing downloaded)."""
    from PIL import Image, ImageDraw

    left, top, pad = 60, 22, 4
    width = left + len(column_labels) * (cell + pad)
    height = top + len(rows) * (cell + pad)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, label in enumerate(column_labels):
        draw.text((left + c * (cell + pad) + 4, 4), label, fill=(40, 40, 40))
    for r, (label, images) in enumerate(zip(row_labels, rows, strict=True)):
        y = top + r * (cell + pad)
        draw.text((4, y + cell // 2 - 6), label, fill=(40, 40, 40))
        for c, image in enumerate(images):
            canvas.paste(Image.fromarray(upscale(image, cell)).resize((cell, cell),
                         Image.Resampling.NEAREST), (left + c * (cell + pad), y))
    return np.asarray(canvas)
