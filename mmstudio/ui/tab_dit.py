"""DiT tab: a Diffusion Transformer in latent space, step by step; its patches, position embedding
and attention; and what latent diffusion saves over pixel diffusion, measured here."""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from mmstudio.manager import ModelManager
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
    trace_files,
)

EXPLAIN = """
**What you are seeing.** A Diffusion Transformer does not denoise pixels. An autoencoder first
squeezes the 32 x 32 x 3 image into a small **latent** (8 x 8 x 4 numbers for `shapes-dit`); the
transformer cuts the noisy latent into **patches**, turns each into a token, and runs transformer
blocks over the token sequence. The timestep modulates every block (adaLN), and the prompt enters
through **cross-attention**: every patch looks at the words. At each step you see the latent's
four channels (blue negative, red positive) and what they decode to through the autoencoder: the
model input x_t, the predicted clean latent x0 and the predicted noise.
"""
PATCH_EXPLAIN = """
**Patches become tokens.** The latent is cut into p x p patches, numbered row by row: that is the
order of the token sequence the transformer reads. Each patch becomes one vector of the model's
width; a fixed sin-cos **position embedding** (one row per patch below) is added, so attention
knows where each patch sits. Pick a patch: the map shows how similar its position embedding is to
every other patch's (near patches are alike).
"""
ATTENTION_EXPLAIN = """
**Attention.** Capture runs the same sampling again with attention recording switched on (plain
runs never pay for it). *Self-attention*: which patches the chosen patch (green) draws from.
*Cross-attention*: which patches look at a word of the prompt: "red" should light up the object,
"top" and "left" its corner. Scrub the step to see it settle.
"""
DEFAULT_PROMPT = "a large red circle in the top left on a navy background"
DISPLAY = 224
ALL_HEADS = "mean over heads"
ALL_LAYERS = "mean over layers"


def _is_class_model(manager: ModelManager, model_id: str) -> bool:
    return manager.catalog.get(model_id).loader == "dit"


def build(manager: ModelManager) -> None:
    from mmstudio.pipelines.schedulers import SCHEDULERS

    explain(EXPLAIN)
    default_id = manager.catalog.default_for("dit")
    default_spec = manager.catalog.get(default_id) if default_id else None
    with gr.Row():
        with gr.Column(scale=3):
            prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt", elem_id="dit-prompt",
                                info="Empty means unconditional. Shapes grammar: a [size] color "
                                "shape [in the position] [on a background background]")
            class_pick = gr.Dropdown([], label="Class (type to search)", filterable=True,
                                     visible=False, elem_id="dit-class")
        model = gr.Dropdown(task_model_choices(manager, "dit"), value=default_id,
                            label="Model", scale=2)
    unknown_words_note(manager, prompt, model, elem_id="dit-unknown-words")
    with gr.Row():
        scheduler = gr.Dropdown([(f"{k}: {v}", k) for k, v in SCHEDULERS.items()], value="ddim",
                                label="Scheduler", scale=2)
        steps = gr.Slider(1, 100, value=(default_spec.steps if default_spec else 25) or 25,
                          step=1, label="Steps")
        guidance = gr.Slider(0, 15, value=(default_spec.guidance if default_spec else 3.0) or 0,
                             step=0.25, label="Guidance")
        seed = gr.Number(0, precision=0, label="Seed", minimum=0)
        go = gr.Button("Generate", variant="primary", elem_id="dit-generate")
        stop = gr.Button("Stop", variant="stop", elem_id="dit-stop")
    with gr.Row(equal_height=True):
        x_t_view = step_panel("x_t (decoded)", "dit-xt")
        x0_view = step_panel("predicted x0 (decoded)", "dit-x0")
        eps_view = step_panel("predicted noise (decoded)", "dit-eps")
        final_view = step_panel("result", "dit-result", buttons=("download",))
    gr.Markdown("**The latent itself**: x_t, predicted x0 and predicted noise, one map per "
                "channel (blue negative, white 0, red positive)", elem_classes=["mm-caption"])
    channels_view = gr.Image(show_label=False, interactive=False, height=230, format="png",
                             elem_classes=["mm-pixelated"], elem_id="dit-channels",
                             buttons=[])
    status = gr.Markdown(elem_id="dit-status")
    step_slider = gr.Slider(1, 25, value=1, step=1, label="Step (scrub the finished run)",
                            interactive=False, elem_id="dit-step")
    trace_state = gr.State(None)
    with gr.Accordion("Downloads: the run as GIF and MP4", open=False):
        make_files = gr.Button("Make GIF and MP4 of the last run")
        with gr.Row():
            gif_file = gr.File(label="Trace as GIF", interactive=False)
            mp4_file = gr.File(label="Trace as MP4", interactive=False)

    def model_changed(model_id: str):
        spec = manager.catalog.get(model_id)
        updates = [gr.update(value=spec.steps or 25), gr.update(value=spec.guidance or 0.0)]
        if not _is_class_model(manager, model_id):
            return [gr.update(visible=True), gr.update(visible=False), *updates]
        with manager.use(model_id) as loaded:  # the class names come with the model
            labels = loaded["id2label"]
        names = [f"{i}: {name.split(',')[0].strip()}" for i, name in sorted(labels.items())]
        return [gr.update(visible=False),
                gr.update(choices=names, value=names[0] if names else None, visible=True),
                *updates]

    model.change(model_work(manager, model_changed), model,
                 [prompt, class_pick, steps, guidance], api_name=False)

    def conditioning(model_id: str, prompt_text: str, class_name: str | None) -> str:
        if _is_class_model(manager, model_id):
            if not class_name:
                raise gr.Error("Pick a class to generate.")
            return class_name.split(":", 1)[0]
        return prompt_text or ""

    def generate(prompt_text: str, class_name: str | None, model_id: str, scheduler_name: str,
                 n_steps: float, scale: float, seed_value: float,
                 progress: gr.Progress = gr.Progress()):
        from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for
        from mmstudio.pipelines.dit import latent_channels
        from mmstudio.pipelines.trace import Trace, step_frames

        settings = DenoiseSettings((conditioning(model_id, prompt_text, class_name),),
                                   steps=n_steps, guidance=scale,
                                   seed=seed_value if seed_value is not None else float("nan"),
                                   scheduler=scheduler_name).validated()
        progress(0, desc=f"loading {model_id}")
        trace, channel_maps = Trace(), []

        def on_step(step: Any) -> None:
            trace.frames.append(step_frames(step, denoiser))
            channel_maps.append(latent_channels([step.x_t[0], step.x0_pred[0],
                                                 step.eps_pred[0]]))

        with denoiser_for(manager, model_id) as denoiser:
            for result in stream_run(denoiser, settings, on_step, progress):
                if result is HEARTBEAT:
                    yield (gr.skip(),) * 8
                    continue
                last = trace.frames[-1]
                sentence = step_sentence(len(trace), settings.steps, last.timestep,
                                         last.alpha_bar)
                if result is None:
                    yield (last.x_t, last.x0, last.eps, gr.skip(), channel_maps[-1], sentence,
                           gr.skip(), gr.skip())
                    continue
                yield (last.x_t, last.x0, last.eps, result.images[0], channel_maps[-1],
                       f"**Done** in {result.seconds:.2f} s: {settings.steps} "
                       f"{settings.scheduler} steps, guidance {settings.guidance:g}, seed "
                       f"{settings.seed}; {denoiser.channels} x {denoiser.size} x "
                       f"{denoiser.size} latent, decoded by the autoencoder.",
                       gr.update(minimum=1, maximum=len(trace), value=len(trace),
                                 interactive=True),
                       {"trace": trace, "channels": channel_maps})

    @user_errors
    def scrub(index: float, state: dict | None):
        if not state:
            raise gr.Error("Generate an image first; then the slider scrubs through its steps.")
        trace = state["trace"]
        i = max(0, min(len(trace) - 1, int(index) - 1))
        frame = trace.frames[i]
        return (frame.x_t, frame.x0, frame.eps, state["channels"][i],
                step_sentence(i + 1, len(trace), frame.timestep, frame.alpha_bar))

    inputs = [prompt, class_pick, model, scheduler, steps, guidance, seed]
    run_event = go.click(model_work(manager, generate), inputs,
                         [x_t_view, x0_view, eps_view, final_view, channels_view, status,
                          step_slider, trace_state], api_name="dit_generate",
                         concurrency_limit=BATCHED_RUNS)
    stop.click(None, None, None, cancels=[run_event], api_visibility="private")
    step_slider.input(scrub, [step_slider, trace_state],
                      [x_t_view, x0_view, eps_view, channels_view, status], api_name="dit_step")
    make_files.click(user_errors(lambda s: trace_files(s["trace"] if s else None)), trace_state,
                     [gif_file, mp4_file], api_name="dit_trace_files")

    _patches_panel(manager, model, final_view)
    _attention_panel(manager, inputs, conditioning)
    _compare_panel(manager, prompt)


def _patches_panel(manager: ModelManager, model: gr.Dropdown, final_view: gr.Image) -> None:
    with gr.Accordion("Patches: the latent becomes a sequence of tokens", open=False) as panel:
        explain(PATCH_EXPLAIN)
        with gr.Row():
            patch_view = gr.Image(label="Patches in sequence order", interactive=False,
                                  height=280, elem_id="dit-patches")
            embedding_view = gr.Image(label="Position embedding: rows = patches, columns = "
                                      "dimensions", interactive=False, height=280)
            similar_view = gr.Image(label="Similarity of the chosen patch's position to every "
                                    "patch", interactive=False, height=280)
        patch = gr.Slider(0, 63, value=9, step=1, label="Patch", elem_id="dit-patch-index")
        facts = gr.Markdown(elem_id="dit-patch-facts")

    def show(model_id: str, index: float, image: np.ndarray | None):
        from mmstudio.pipelines.dit import (
            embedding_picture,
            heatmap_over,
            patch_grid,
            patch_info,
            position_similarity,
        )

        with manager.use(model_id) as loaded:
            info = patch_info(loaded["transformer"], manager.catalog.get(model_id).resolution
                              or 32)
        index = int(index)
        if not 0 <= index < info.tokens:
            raise gr.Error(f"patch {index} does not exist; patches are numbered 0 to "
                           f"{info.tokens - 1}")
        if image is None:  # before any run: a neutral canvas of the image's size
            image = np.full((info.grid[0] * info.pixels_per_patch,) * 2 + (3,), 60, np.uint8)
        similarity = position_similarity(info.position_embedding, index, info.grid)
        text = (f"{info.grid[0]} x {info.grid[1]} = **{info.tokens} patches** of "
                f"{info.patch} x {info.patch} latent cells ({info.pixels_per_patch} x "
                f"{info.pixels_per_patch} image pixels each); each patch is {info.token_width} "
                f"numbers, embedded into **{info.hidden}**. Patch {index} is row "
                f"{index // info.grid[1]}, column {index % info.grid[1]}.")
        return (patch_grid(np.asarray(image), info.grid), embedding_picture(
            info.position_embedding), heatmap_over(np.asarray(image), similarity, marker=index,
                                                   alpha=0.75), text,
                gr.update(maximum=info.tokens - 1))

    outputs = [patch_view, embedding_view, similar_view, facts, patch]
    handler = model_work(manager, show)
    panel.expand(handler, [model, patch, final_view], outputs, api_name="dit_patches")
    patch.release(handler, [model, patch, final_view], outputs, api_name=False)


def _attention_panel(manager: ModelManager, inputs: list, conditioning: Any) -> None:
    with gr.Accordion("Attention: self-attention between patches, cross-attention to words",
                      open=False):
        explain(ATTENTION_EXPLAIN)
        capture = gr.Button("Capture attention (runs the sampling once more)",
                            elem_id="dit-capture")
        with gr.Row():
            att_step = gr.Slider(1, 25, value=25, step=1, label="Step", elem_id="dit-att-step")
            layer = gr.Dropdown([ALL_LAYERS], value=ALL_LAYERS, label="Layer",
                                elem_id="dit-att-layer")
            head = gr.Dropdown([ALL_HEADS], value=ALL_HEADS, label="Head",
                               elem_id="dit-att-head")
            patch = gr.Slider(0, 63, value=0, step=1, label="Query patch (self-attention)",
                              elem_id="dit-att-patch")
        word = gr.Radio([], label="Word (cross-attention)", elem_id="dit-att-word")
        with gr.Row():
            self_view = gr.Image(label="Self-attention from the query patch (green)",
                                 interactive=False, height=280, elem_id="dit-self-map")
            cross_view = gr.Image(label="Cross-attention to the word", interactive=False,
                                  height=280, elem_id="dit-cross-map")
        att_status = gr.Markdown(elem_id="dit-att-status")
        att_state = gr.State(None)

    def run_capture(prompt_text: str, class_name: str | None, model_id: str, scheduler_name: str,
                    n_steps: float, scale: float, seed_value: float, step_value: float,
                    progress: gr.Progress = gr.Progress()):
        from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, to_uint8
        from mmstudio.pipelines.dit import capture_attention

        settings = DenoiseSettings((conditioning(model_id, prompt_text, class_name),),
                                   steps=n_steps, guidance=scale,
                                   seed=seed_value if seed_value is not None else float("nan"),
                                   scheduler=scheduler_name).validated()
        progress(0, desc="sampling with attention recording")
        with denoiser_for(manager, model_id) as denoiser:
            tokens = (denoiser.size // int(denoiser.transformer.config.patch_size)) ** 2
            # self-attention is patches x patches per layer and head: keep every step for small
            # models, only the chosen step for large ones (DiT-XL: 256 patches, 28 layers)
            chosen = min(settings.steps, max(1, int(step_value))) - 1
            trace = capture_attention(denoiser, settings, None if tokens <= 64 else {chosen})
            pictures = [to_uint8(denoiser.to_rgb(s.x0_pred[:1]))[0] for s in trace.steps]
        words = [(w.text, i) for i, w in enumerate(trace.words)]
        state = {"trace": trace, "pictures": pictures, "chosen": chosen}
        first = next((i for t, i in words if t not in ("a", "in", "the", "on")), 0) \
            if words else None
        return (state, gr.update(maximum=settings.steps, value=chosen + 1),
                gr.update(choices=[ALL_LAYERS, *map(str, range(trace.layers))],
                          value=ALL_LAYERS),
                gr.update(choices=[ALL_HEADS, *map(str, range(trace.heads))], value=ALL_HEADS),
                gr.update(maximum=trace.grid[0] * trace.grid[1] - 1),
                gr.update(choices=words, value=first, visible=bool(words)),
                *view(state, chosen + 1, ALL_LAYERS, ALL_HEADS, 0, first))

    def view(state: dict | None, step_value: float, layer_value: str, head_value: str,
             patch_value: float, word_value: int | None):
        from mmstudio.pipelines.dit import heatmap_over

        if not state:
            raise gr.Error("Capture attention first.")
        trace, pictures = state["trace"], state["pictures"]
        if step_value is None or not 1 <= float(step_value) <= len(trace.steps):
            raise gr.Error(f"step {step_value} is out of range: the captured run has steps 1 to "
                           f"{len(trace.steps)}")
        step = int(step_value) - 1
        if patch_value is None or not np.isfinite(float(patch_value)):
            raise gr.Error("give the query patch as a number")
        layer_index = None if layer_value in (None, ALL_LAYERS) else _whole(layer_value, "layer")
        head_index = None if head_value in (None, ALL_HEADS) else _whole(head_value, "head")
        image = pictures[step]
        self_layers = range(trace.layers) if layer_index is None else [layer_index]
        self_map = np.mean([trace.self_map(step, i, int(patch_value), head_index)
                            for i in self_layers], axis=0)
        self_picture = heatmap_over(image, self_map, marker=int(patch_value))
        cross_picture, text = None, f"step {step + 1}: self-attention of patch {int(patch_value)}"
        if trace.words and word_value is not None:
            cross = trace.cross_map(step, layer_index, int(word_value), head_index)
            cross_picture = heatmap_over(image, cross)
            word = trace.words[int(word_value)]
            text += (f"; cross-attention to \"{word.text}\" (token positions "
                     f"{', '.join(map(str, word.positions))}): {cross.max():.0%} at the "
                     f"brightest patch, {cross.mean():.0%} on average")
        elif not trace.words:
            text += "; this model is class-conditional: no words, no cross-attention"
        return self_picture, cross_picture, text + "."

    view_inputs = [att_state, att_step, layer, head, patch, word]
    view_outputs = [self_view, cross_view, att_status]
    capture.click(model_work(manager, run_capture), [*inputs, att_step],
                  [att_state, att_step, layer, head, patch, word, *view_outputs],
                  api_name="dit_attention")
    viewer = user_errors(view)
    for component in (att_step, patch):
        component.release(viewer, view_inputs, view_outputs, api_name=False)
    for component in (layer, head, word):
        component.input(viewer, view_inputs, view_outputs, api_name=False)
    att_step.input(viewer, view_inputs, view_outputs, api_name="dit_attention_view")


def _whole(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number or the mean, not {value!r}") from None


def _compare_panel(manager: ModelManager, prompt: gr.Textbox) -> None:
    with gr.Accordion("Pixel U-Net vs latent DiT: measured now, on this machine", open=False):
        measure = gr.Button("Measure both on the prompt above", elem_id="dit-compare")
        table = gr.Dataframe(interactive=False, elem_id="dit-compare-table")
        why = gr.Markdown(elem_id="dit-compare-why")

    def compare(prompt_text: str):
        from mmstudio.pipelines.dit import compare_pixel_latent, cost_table, why_latent_is_cheaper

        for model_id in ("shapes-unet", "shapes-dit"):
            status = manager.catalog.availability(model_id)
            if not status.available:
                raise gr.Error(f"{model_id} is not available here: {status.reason}")
        costs = compare_pixel_latent(manager, prompt_text or DEFAULT_PROMPT, repeats=2)
        header, rows = cost_table(costs)
        return gr.update(value=rows, headers=header), why_latent_is_cheaper(costs)

    measure.click(model_work(manager, compare), prompt, [table, why], api_name="dit_compare")
