"""Helpers shared by the tabs: error translation, display conversions, shared styling."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from mmstudio.errors import UserError  # noqa: E402

log = logging.getLogger("mmstudio.ui")
F = TypeVar("F", bound=Callable[..., Any])

# System fonts only: nothing on the page may come from another host.
THEME = gr.themes.Soft(
    primary_hue="indigo",
    font=("ui-sans-serif", "system-ui", "sans-serif"),
    font_mono=("ui-monospace", "Consolas", "monospace"),
)
CSS = """
.mm-explain {font-size: 0.95em; opacity: 0.9}
.mm-pixelated img {image-rendering: pixelated}
.mm-fill img {width: 100%; height: 100%; object-fit: contain}
.mm-caption p {margin: 0}
"""


def model_work(manager: Any, fn: F, duration: int = 60) -> F:
    """A handler that runs models: user errors translated (``user_errors``), and on Hugging Face
    ZeroGPU the whole call runs under ``spaces.GPU`` (``ModelManager.gpu``), which attaches a GPU
    for its duration; elsewhere only the error translation is added."""
    return manager.gpu(user_errors(fn), duration)


def user_errors(fn: F) -> F:
    """Turn a ``UserError`` into a ``gr.Error`` with its message, and any other failure into a
    short ``gr.Error`` (logged with its traceback), so the page shows a reason and the server
    keeps serving."""

    def _translate(exc: Exception) -> gr.Error:
        if isinstance(exc, gr.Error):
            return exc
        if isinstance(exc, UserError):
            return gr.Error(str(exc), print_exception=False)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(f"Something went wrong ({type(exc).__name__}: {exc}). The studio is still "
                        "running; try other settings.", print_exception=False)

    if _is_generator(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - translated for the user
                raise _translate(exc) from exc

        return gen_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - translated for the user
            raise _translate(exc) from exc

    return wrapper  # type: ignore[return-value]


def _is_generator(fn: Callable[..., Any]) -> bool:
    import inspect

    return inspect.isgeneratorfunction(fn)


def upscale(image: np.ndarray, size: int = 256) -> np.ndarray:
    """Nearest-neighbour upscale of a small (H, W, C) uint8 image to about ``size`` pixels wide,
    by an integer factor, so 32-pixel images show as crisp blocks instead of specks or blur."""
    height, width = image.shape[:2]
    factor = max(1, size // max(height, width))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def explain(text: str) -> gr.Markdown:
    """The short 'what you are seeing' paragraph at the top of a tab."""
    return gr.Markdown(text, elem_classes=["mm-explain"])
