"""Tokens vs noise tab: a GPT writes an image as VQ tokens, one at a time, and the usual
"tokens are fast, diffusion is better" table is measured on the same prompts, here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr
import numpy as np

from mmstudio.manager import ModelManager
from mmstudio.ui.common import explain, model_work, unknown_words_note, user_errors
from mmstudio.ui.trace_viewer import step_panel, trace_files

MODEL_ID = "shapes-gpt"
EXPLAIN = """
**What you are seeing.** Two ways to make an image from text. **Tokens + autoregression**
(DALL-E v1, Parti): a VQ model (`shapes-vqvae`, see the Tokenize tab) turns every image into an
8 x 8 grid of codes; a GPT reads the caption's tokens and then writes the 64 codes **one at a
time, in raster order**, each chosen from a probability distribution over the 512 codes given
everything before it; the VQ decoder turns the grid into pixels. **Embeddings + diffusion**
(Stable Diffusion, DiT; the Diffusion and DiT tabs): the caption's embedding steers a network
that refines a whole noisy image at every step. Below, the GPT writes its grid: the cells fill
row by row, the partial image decodes as it goes (cells not written yet are hatched), and for the
current token you see the candidates the model offered with their probabilities. Pick the
position with the slider and click a candidate to force it: the tokens before stay, and
everything after is written again from there.
"""
COMPARE_EXPLAIN = """
**The usual table, measured.** Every model writes the same number of images for each prompt with
the same seeds; the shapes analyzer reads them back (adherence: every attribute the prompt names
is right; held-out colour/shape pairs were never in any training data). *Network passes* are the
sequential evaluations per image (a guided pass carries the conditional and unconditional rows
together); *GFLOPs* are counted by torch over one whole image (text, every pass, decode); times
are this machine's, now, batched and for one image alone. *Pixel diversity*: mean difference
between two images of one prompt; *free-attribute coverage*: how many values of the attributes a
prompt leaves out its images cover.
"""
DEFAULT_PROMPT = "a large red circle in the top left on a navy background"
TOP = 8  # candidates shown per token
VIEW = 256


def _available(manager: ModelManager, model_id: str) -> tuple[bool, str]:
    if model_id not in manager.catalog:
        return False, f"{model_id} is not in the catalog"
    status = manager.catalog.availability(model_id)
    return status.available, status.reason


def _compare_choices(manager: ModelManager) -> tuple[list[tuple[str, str]], list[str]]:
    """Text-to-image models of the shapes world (their images can be read by its analyzer), the
    token priors first."""
    choices, ready = [], []
    specs = sorted(manager.catalog, key=lambda spec: spec.loader != "gpt_prior")
    for spec in specs:
        if spec.world != "shapes" or spec.loader not in ("gpt_prior", "pixel_unet", "pixart"):
            continue
        ok = manager.catalog.availability(spec.id).available
        choices.append((spec.id if ok else f"{spec.id} (not installed)", spec.id))
        if ok:
            ready.append(spec.id)
    return choices, ready


def build(manager: ModelManager) -> None:
    from mmstudio.pipelines.compare import DEFAULT_PROMPTS

    explain(EXPLAIN)
    ok, reason = _available(manager, MODEL_ID)
    spec = manager.catalog.get(MODEL_ID) if MODEL_ID in manager.catalog else None
    gr.Markdown("" if ok else f"**{MODEL_ID} is not installed here** ({reason}); the "
                "comparison below still measures the models that are.",
                elem_id="tokens-missing", visible=not ok)
    with gr.Row():
        prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt", scale=4, elem_id="tokens-prompt",
                            info="Shapes grammar: a [size] color shape [in the position] "
                            "[on a background background]; empty means unconditional")
        seed = gr.Number(0, precision=0, label="Seed", minimum=0, elem_id="tokens-seed")
    unknown_words_note(manager, prompt, MODEL_ID, elem_id="tokens-unknown-words")
    with gr.Row():
        temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature (0 = greedy)",
                                elem_id="tokens-temperature")
        top_k = gr.Slider(0, 512, value=0, step=1, label="Top-k (0 = all)",
                          elem_id="tokens-top-k")
        top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p (1 = all)",
                          elem_id="tokens-top-p")
        guidance = gr.Slider(0, 8, value=(spec.guidance if spec else 3.0) or 1.0, step=0.25,
                             label="Guidance (1 or less: off)", elem_id="tokens-guidance")
        pace = gr.Slider(0, 100, value=25, step=5, label="Pace (ms per token, to watch it)",
                         elem_id="tokens-pace")
    with gr.Row():
        go = gr.Button("Generate token by token", variant="primary", elem_id="tokens-generate")
        stop = gr.Button("Stop", variant="stop", elem_id="tokens-stop")
    with gr.Row(equal_height=True):
        with gr.Column(min_width=200):
            gr.Markdown("**The token grid** (codes in raster order)", elem_classes=["mm-caption"])
            grid_view = gr.Image(show_label=False, interactive=False, height=VIEW, format="png",
                                 buttons=[], elem_id="tokens-grid")
        image_view = step_panel("Decoded so far (hatched: not written yet)", "tokens-image",
                                height=VIEW)
        with gr.Column(min_width=240):
            gr.Markdown("**Candidates for the current token** (decoded in place)",
                        elem_classes=["mm-caption"])
            candidates_view = gr.Image(show_label=False, interactive=False, height=VIEW,
                                       format="png", buttons=[], elem_id="tokens-candidates")
    candidate = gr.Radio([], label="Force the current token to a candidate (then the rest is "
                         "written again from there)", elem_id="tokens-candidate")
    position = gr.Slider(1, 64, value=64, step=1, label="Token (scrub the finished run)",
                         interactive=False, elem_id="tokens-position")
    status = gr.Markdown(elem_id="tokens-status")
    run_state = gr.State(None)
    with gr.Accordion("Downloads: the grid filling, as GIF and MP4", open=False):
        make_files = gr.Button("Make GIF and MP4 of the last run", elem_id="tokens-files")
        with gr.Row():
            gif_file = gr.File(label="As GIF", interactive=False)
            mp4_file = gr.File(label="As MP4", interactive=False)

    def settings_from(prompt_text: str, temp: float, k: float, p: float, scale: float,
                      seed_value: float):
        from mmstudio.pipelines.token_prior import PriorSettings

        if not ok:
            raise gr.Error(f"{MODEL_ID} is not installed here: {reason}")
        return PriorSettings((prompt_text or "",), temperature=temp, top_k=k, top_p=p,
                             guidance=scale, seed=seed_value if seed_value is not None
                             else float("nan")).validated()

    def stream(settings: Any, forced: dict[int, int], pace_ms: float) -> Iterator[tuple]:
        from mmstudio.pipelines.stream import UPDATE_INTERVAL, in_background
        from mmstudio.pipelines.token_prior import PriorResult, prior_for

        delay = max(0.0, min(float(pace_ms or 0), 100.0)) / 1000.0
        with prior_for(manager, MODEL_ID) as prior:
            def paced() -> Iterator[Any]:
                for item in prior.generate(settings, forced=forced or None, top=TOP):
                    yield item
                    if delay and not isinstance(item, PriorResult):
                        time.sleep(delay)

            steps: list[Any] = []
            for batch in in_background(paced(), UPDATE_INTERVAL, heartbeat=True):
                if not batch:
                    yield (gr.skip(),) * 7
                    continue
                result = None
                for item in batch:
                    if isinstance(item, PriorResult):
                        result = item
                    else:
                        steps.append(item)
                if result is None:
                    view = _view(prior, steps, len(steps))
                    yield (*view, gr.update(choices=[], value=None),
                           f"writing token {len(steps)} of {prior.stream.image_tokens}",
                           gr.skip(), gr.skip())
                    continue
                state = {"settings": settings, "forced": dict(forced),
                         "tokens": [int(s.tokens[0]) for s in steps],
                         "candidates": [s.candidates[0].tolist() for s in steps],
                         "probabilities": [s.probabilities[0].tolist() for s in steps],
                         "was_forced": [bool(s.forced[0]) for s in steps],
                         "chosen": [float(s.chosen_probability[0]) for s in steps],
                         "frames": prior.filling_frames(result.codes[0]),
                         "seconds": result.seconds, "evaluations": result.evaluations}
                last = len(steps)
                yield (*_view(prior, steps, last, state), _choices(state, last),
                       _done_sentence(state, forced),
                       gr.update(minimum=1, maximum=last, value=last, interactive=True), state)

    def generate(prompt_text: str, temp: float, k: float, p: float, scale: float,
                 seed_value: float, pace_ms: float):
        settings = settings_from(prompt_text, temp, k, p, scale, seed_value)
        yield from stream(settings, {}, pace_ms)

    def force(code: int | None, index: float, state: dict | None, pace_ms: float):
        if not state:
            raise gr.Error("Generate first; then pick a token and force one of its candidates.")
        if code is None:
            raise gr.Error("Pick one of the candidates.")
        at = _position(index, len(state["tokens"])) - 1
        forced = {j: state["tokens"][j] for j in range(at)}
        forced[at] = int(code)
        yield from stream(state["settings"], forced, pace_ms)

    def scrub(index: float, state: dict | None):
        if not state:
            raise gr.Error("Generate first; then the slider scrubs through the tokens.")
        at = _position(index, len(state["tokens"]))
        with manager.use(MODEL_ID) as loaded, manager.use(loaded["vq_id"]) as vq:
            from mmstudio.pipelines.token_prior import ImagePrior

            prior = ImagePrior(loaded["gpt"], loaded["stream"], vq["vq"], MODEL_ID,
                               loaded["vq_id"])
            view = _view(prior, None, at, state)
        taken = state["tokens"][at - 1]
        how = "forced" if state["was_forced"][at - 1] else "drawn"
        row, col = divmod(at - 1, prior.grid)
        return (*view, _choices(state, at),
                f"token {at} of {len(state['tokens'])} (row {row}, column {col}): code {taken}, "
                f"{how}; the model gave it "
                f"{state['chosen'][at - 1]:.1%}.")

    outputs = [grid_view, image_view, candidates_view, candidate, status, position, run_state]
    run_event = go.click(model_work(manager, generate),
                         [prompt, temperature, top_k, top_p, guidance, seed, pace], outputs,
                         api_name="tokens_generate", concurrency_limit=8)
    force_event = candidate.input(model_work(manager, force),
                                  [candidate, position, run_state, pace], outputs,
                                  api_name="tokens_force", concurrency_limit=8)
    stop.click(None, None, None, cancels=[run_event, force_event], api_visibility="private")
    position.input(model_work(manager, scrub), [position, run_state],
                   [grid_view, image_view, candidates_view, candidate, status],
                   api_name="tokens_position", trigger_mode="always_last")

    def files(state: dict | None):
        from mmstudio.pipelines.token_pictures import TokenTrace

        trace = TokenTrace(state["tokens"], state["frames"]) if state else None
        return trace_files(trace, prefix="tokens")

    make_files.click(user_errors(files), run_state, [gif_file, mp4_file],
                     api_name="tokens_trace_files")

    with gr.Accordion("Tokens vs diffusion: the table, measured on this run", open=True):
        explain(COMPARE_EXPLAIN)
        choices, ready = _compare_choices(manager)
        with gr.Row():
            prompts = gr.Textbox("\n".join(DEFAULT_PROMPTS), lines=5, max_lines=12, scale=3,
                                 label="Prompts (one shapes caption per line)",
                                 elem_id="tokens-compare-prompts")
            with gr.Column(scale=2):
                models = gr.CheckboxGroup(choices, value=ready, label="Models",
                                          elem_id="tokens-compare-models")
                with gr.Row():
                    n = gr.Slider(1, 8, value=2, step=1, label="Images per prompt",
                                  elem_id="tokens-compare-n")
                    compare_seed = gr.Number(0, precision=0, minimum=0, label="Seed")
                measure = gr.Button("Measure", variant="primary", elem_id="tokens-compare")
        compare_status = gr.Markdown(elem_id="tokens-compare-status")
        # the long "output" column gets the room; the figures stay on one line each
        table = gr.Dataframe(interactive=False, wrap=True, elem_id="tokens-compare-table",
                             column_widths=["10%", "10%", "22%", "6%", "7%", "7%", "6%", "8%",
                                            "8%", "8%", "8%"])
        findings_view = gr.Markdown(elem_id="tokens-compare-findings")
        with gr.Row():
            # headings above the pictures, not gradio's label badge over their top corner
            with gr.Column():
                gr.Markdown("**Adherence against time per sample**")
                scatter_view = gr.Image(label="Adherence against time per sample", height=300,
                                        show_label=False, interactive=False, format="png",
                                        elem_id="tokens-compare-scatter")
            with gr.Column():
                gr.Markdown("**Samples side by side** (a row per prompt)")
                samples_view = gr.Image(label="Samples side by side (a row per prompt)",
                                        height=420, show_label=False, interactive=False,
                                        format="png", elem_id="tokens-compare-samples",
                                        elem_classes=["mm-pixelated"])

    def run_compare(prompt_text: str, model_ids: list[str] | None, per_prompt: float,
                    seed_value: float, progress: gr.Progress = gr.Progress()):
        from mmstudio.errors import UserError
        from mmstudio.pipelines.compare import (
            HEADER,
            CompareProgress,
            CompareRow,
            CompareTable,
            compare,
            findings,
            samples_sheet,
            table_rows,
        )
        from mmstudio.pipelines.token_pictures import scatter_picture

        lines = [line.strip() for line in (prompt_text or "").splitlines() if line.strip()]
        if not model_ids:
            raise UserError("Tick at least one model to measure.")
        for model_id in model_ids:
            available, why = _available(manager, model_id)
            if not available:
                raise UserError(f"{model_id} is not installed here: {why}")
        if seed_value is None or not np.isfinite(float(seed_value)) or seed_value < 0:
            raise UserError("the seed must be a whole number, 0 or more")
        order = [value for _, value in choices]  # the table's rows in the list's order
        model_ids = sorted(model_ids, key=lambda m: order.index(m) if m in order else len(order))
        rows: list[CompareRow] = []
        for item in compare(manager, list(model_ids), lines, int(per_prompt), int(seed_value)):
            if isinstance(item, CompareProgress):
                progress(item.done / item.total, desc=f"{item.model}: {item.done}/{item.total}")
                yield (f"measuring **{item.model}**: {item.done} of {item.total} images", gr.skip(),
                       gr.skip(), gr.skip(), gr.skip())
            elif isinstance(item, CompareRow):
                rows.append(item)
                points = [(r.model, r.paradigm, r.seconds_per_sample, r.adherence) for r in rows]
                yield (f"measured {', '.join(r.model for r in rows)}",
                       gr.update(value=table_rows(rows), headers=HEADER), gr.skip(),
                       scatter_picture(points), gr.skip())
            elif isinstance(item, CompareTable):
                points = [(r.model, r.paradigm, r.seconds_per_sample, r.adherence) for r in rows]
                yield (f"**Done**: {len(item.prompts)} prompts x {item.n} images per model, seed "
                       f"{item.seed}, {item.threads} CPU threads.",
                       gr.update(value=table_rows(rows), headers=HEADER),
                       "\n".join(f"- {s}" for s in findings(rows)), scatter_picture(points),
                       samples_sheet(rows))

    measure.click(model_work(manager, run_compare), [prompts, models, n, compare_seed],
                  [compare_status, table, findings_view, scatter_view, samples_view],
                  api_name="tokens_compare")


def _position(index: Any, total: int) -> int:
    try:
        at = int(float(index))
    except (TypeError, ValueError):
        raise gr.Error(f"the token must be a number from 1 to {total}") from None
    if not 1 <= at <= total:
        raise gr.Error(f"token {at} does not exist: the run has tokens 1 to {total}")
    return at


def _choices(state: dict, at: int) -> dict:
    codes = state["candidates"][at - 1]
    probs = state["probabilities"][at - 1]
    labels = [(f"code {c}: {p:.1%}", int(c)) for c, p in zip(codes, probs, strict=True) if p > 0]
    taken = state["tokens"][at - 1]
    shown = taken in [value for _, value in labels]  # a token outside the top ones: none ticked
    return gr.update(choices=labels, value=taken if shown else None, interactive=True)


def _view(prior: Any, steps: list | None, filled: int, state: dict | None = None) -> tuple:
    """The grid, the partial image and the candidates after ``filled`` tokens: from the live
    steps while streaming, from the kept run when scrubbing."""
    from mmstudio.pipelines.token_pictures import (
        candidates_picture,
        grid_overlay,
        token_grid_picture,
    )

    if state is not None:
        tokens = state["tokens"]
        image = state["frames"][filled - 1] if filled else None
        codes, probs = state["candidates"][filled - 1], state["probabilities"][filled - 1]
    else:
        assert steps is not None
        tokens = [int(s.tokens[0]) for s in steps]
        image = prior.partial_images(np.asarray([tokens]), filled)[0]
        codes = steps[filled - 1].candidates[0].tolist()
        probs = steps[filled - 1].probabilities[0].tolist()
    current = filled - 1
    tiles = _candidate_tiles(prior, tokens, current, codes)
    grid = token_grid_picture(tokens, filled, image, prior.grid, current)
    overlay = grid_overlay(image, prior.grid, current) if image is not None else None
    return grid, overlay, candidates_picture(codes, probs, tiles, tokens[current])


def _candidate_tiles(prior: Any, tokens: list[int], at: int, codes: list[int]) -> np.ndarray:
    """Each candidate code decoded in place (the grid so far with that code at ``at``): the
    cell's pixels, (K, cell, cell, 3)."""
    cells = prior.stream.image_tokens
    base = np.full(cells, tokens[0], np.int64)
    base[:at] = tokens[:at]
    grids = np.repeat(base[None], len(codes), axis=0)
    grids[:, at] = codes
    images = prior.decode(grids.reshape(len(codes), prior.grid, prior.grid))
    row, col = divmod(at, prior.grid)
    c = prior.cell
    return images[:, row * c:(row + 1) * c, col * c:(col + 1) * c]


def _done_sentence(state: dict, forced: dict[int, int]) -> str:
    settings = state["settings"]
    text = (f"**Done** in {state['seconds']:.2f} s: {state['evaluations']} transformer passes "
            f"(KV cache: one new token each), temperature {settings.temperature:g}, top-k "
            f"{settings.top_k or 'off'}, top-p {settings.top_p:g}, guidance "
            f"{settings.guidance:g}, seed {settings.seed}.")
    if forced:
        at = max(forced) + 1
        text += (f" Token {at} was forced to code {forced[at - 1]}; tokens 1 to {at - 1} were "
                 f"kept and {len(state['tokens']) - at} written again after it.")
    return text + " Move the slider to any token and click a candidate to force it."

