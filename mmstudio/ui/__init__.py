"""The studio's UI: ``build_app(manager)`` assembles one tab per module of this package.

Each tab module exposes ``build(manager)``, which creates its components inside the ``gr.Tab`` that
``build_app`` opens. A tab whose module has not been written yet says plainly what is coming.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmstudio.manager import ModelManager
from mmstudio.ui.common import (  # sets the no-analytics environment before gradio
    CSS,
    THEME,
    gr,
    hub_sentence,
)

TITLE = "mmstudio"

# (tab label, module in mmstudio.ui, what is coming while the module is not there yet)
TABS: list[tuple[str, str, str]] = [
    ("Tokenize (VQ)", "tab_tokenize",
     "An image becomes a grid of codebook tokens and back: VQ-VAE and VQGAN trained on shapes, "
     "the token grid, the codebook browser, token editing, and aMUSEd's VQGAN."),
    ("Diffusion", "tab_diffusion",
     "Noise becomes an image one step at a time: x_t, the predicted clean image and the "
     "predicted noise at every step, the forward process, schedulers and guidance; a U-Net "
     "trained on shapes and Stable Diffusion / SD-Turbo."),
    ("DiT", "tab_dit", "Sampling with a Diffusion Transformer, step by step: DiT-XL-2-256."),
    ("Tokens vs noise", "tab_tokens",
     "A GPT writes an image as VQ tokens one at a time, and the tokens-vs-diffusion table "
     "measured on the same prompts."),
    ("Audio", "tab_audio",
     "What a sound is as numbers: waveform, STFT and log-mel spectrograms, Griffin-Lim; neural "
     "audio codec tokens and audio-text similarity."),
    ("Video", "tab_video",
     "Text-to-video on the motion world, step by step and frame by frame; a hub text-to-video "
     "model on a GPU."),
    ("Similarity", "tab_similarity",
     "Text and images in one embedding space: similarity matrix, zero-shot classification, "
     "retrieval and a map of the space, with a CLIP trained on shapes and OpenCLIP ViT-B-32."),
    ("Worlds", "tab_worlds", "The procedural worlds the embedded models learn from."),
    ("Models", "tab_models", "The model catalog."),
]

LAUNCH_KWARGS: dict[str, Any] = {"theme": THEME, "css": CSS, "show_error": True}


def _tab_module(name: str) -> Any | None:
    try:
        return importlib.import_module(f"mmstudio.ui.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"mmstudio.ui.{name}":
            raise  # a real missing dependency inside the module must not be hidden
        return None


def build_app(manager: ModelManager) -> gr.Blocks:
    """The studio. The hub's reachability is checked in the background from here on (nothing is
    asked when offline by setting); the header says what is known and updates when the page loads
    and on every change of tab, so the first page never waits for the network."""
    hub = manager.catalog.hub
    hub.start()
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(
            "# mmstudio\nLook inside multimodal generative models: tokens, denoising steps, "
            "embeddings. The embedded models run here with no network; hub models load on demand."
        )
        hub_line = gr.Markdown(hub_sentence(hub.current()), elem_id="mm-hub-status")

        def hub_status() -> str:
            return hub_sentence(hub.wait(hub.timeout + 1.0))

        app.load(hub_status, None, hub_line, queue=False, show_progress="hidden",
                 api_name="hub_status")
        for label, module_name, coming in TABS:
            module = _tab_module(module_name)
            with gr.Tab(label) as tab:
                if module is None:
                    gr.Markdown(f"**Coming next.** {coming}")
                else:
                    module.build(manager)
            tab.select(lambda: hub_sentence(hub.current()), None, hub_line, queue=False,
                       show_progress="hidden", api_name=False)
    return app
