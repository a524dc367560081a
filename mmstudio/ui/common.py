"""Helpers shared by the tabs: error translation, display conversions, shared styling, the hub's
reachability in words, and the unknown-word note under a prompt."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from mmstudio.errors import UserError  # noqa: E402

log = logging.getLogger("mmstudio.ui")
F = TypeVar("F", bound=Callable[..., Any])


def share_api_info() -> bool:
    """Make gradio's ``Component.api_info`` (the JSON schema of a component's data model) computed
    once per data model instead of once per component instance; True when installed now.

    Why: every output a handler leaves unchanged (``gr.skip()``) or updates (``gr.update``) makes
    gradio build a new component and its config, schema included: 0.5-1.8 ms of pure Python per
    image, file or gallery output, with the GIL held. A streamed run skips most of its outputs at
    every page update, so with a classroom streaming at once this was a fifth of the server's
    GIL time (py-spy, ``bench load`` with 16 clients). The schema depends on the data model
    class alone in this base implementation (components that compute their own override it), and
    each instance gets its own deep copy, as before."""
    import copy
    import threading

    from gradio.components.base import Component

    original = Component.api_info
    if getattr(original, "shared_by_model", False):
        return False
    schemas: dict[type, dict[str, Any]] = {}
    lock = threading.Lock()

    def api_info(self: Any) -> dict[str, Any]:
        if self._api_info_cache is not None or self.data_model is None:
            return original(self)
        model = self.data_model
        with lock:
            schema = schemas.get(model)
        if schema is None:
            schema = original(self)  # computes it (and keeps it on this instance)
            with lock:
                schemas[model] = copy.deepcopy(schema)
            return schema
        self._api_info_cache = copy.deepcopy(schema)
        return self._api_info_cache

    api_info.shared_by_model = True  # type: ignore[attr-defined]
    api_info.__doc__ = original.__doc__
    Component.api_info = api_info  # type: ignore[method-assign]
    return True


class _CachedInspect:
    """``inspect`` with ``getfullargspec`` remembered per function (``cache_argspecs``)."""

    getfullargspec = staticmethod(functools.lru_cache(maxsize=None)(inspect.getfullargspec))

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


def cache_argspecs() -> bool:
    """gradio wraps every component ``__init__`` in ``component_meta.updateable``, which reads the
    function's argument spec on every call: each component a skipped or updated output rebuilds
    (``share_api_info``) paid ``inspect.getfullargspec`` once per class in its hierarchy, 7% of
    the served app's GIL time with 16 clients (py-spy). An argument spec never changes, so it is
    read once per function here. True when installed now."""
    from gradio import component_meta

    if isinstance(component_meta.inspect, _CachedInspect):
        return False
    component_meta.inspect = _CachedInspect()
    return True


def _is_skip(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and value.get("__type__") == "update"


def skip_skips() -> bool:
    """Let gradio pass a pure ``gr.skip()`` output straight through; True when installed now.

    gradio treats ``gr.skip()`` (an update of no property) as any property update: it builds a
    new component from the old one's constructor arguments, recomputes its config for the
    session and post-processes the empty update, only to send ``{"__type__": "update"}``, which
    is what it sends here at once. A streamed Diffusion update skips six of its ten outputs and
    a heartbeat all ten, so with a classroom streaming this was most of what gradio did with the
    GIL per page update (py-spy, ``bench load`` with 16 clients). The other outputs go through
    gradio's own ``postprocess_data``, in their order."""
    import copy

    from gradio.blocks import Blocks

    original = Blocks.postprocess_data
    if getattr(original, "skips_skips", False):
        return False

    async def postprocess_data(self: Any, block_fn: Any, predictions: Any, state: Any = None):
        outputs = block_fn.outputs
        if (len(outputs) < 2 or not isinstance(predictions, (list, tuple))
                or len(predictions) != len(outputs) or block_fn.is_validator_function):
            return await original(self, block_fn, predictions, state)
        keep = [i for i, value in enumerate(predictions) if not _is_skip(value)]
        if len(keep) == len(outputs):
            return await original(self, block_fn, predictions, state)
        result: list[Any] = [{"__type__": "update"} for _ in outputs]
        if keep:
            part = copy.copy(block_fn)  # the same event, told only of the outputs with a value
            part.outputs = [outputs[i] for i in keep]
            values = [predictions[i] for i in keep]
            done = await original(self, part, values if len(keep) > 1 else values[0], state)
            for i, value in zip(keep, done, strict=True):
                result[i] = value
        return result

    postprocess_data.skips_skips = True  # type: ignore[attr-defined]
    postprocess_data.original = original  # type: ignore[attr-defined]
    postprocess_data.__doc__ = original.__doc__
    Blocks.postprocess_data = postprocess_data  # type: ignore[method-assign]
    return True


def _publish(path: Path, write: Callable[[str], None]) -> str:
    """Put a content-addressed cache file in place for readers that may be reading it now: an
    existing one (the same bytes: its folder is their hash) is only touched, so that gradio's
    ``delete_cache`` ages it from this use; a new one is written under a temporary name and
    renamed into place, so nobody ever reads it half written."""
    import tempfile

    if path.exists():
        with contextlib.suppress(OSError):
            os.utime(path)
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(staging)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(path)


def atomic_cache_writes() -> bool:
    """Make gradio's image, bytes and audio cache files appear whole; True when installed now.

    gradio names these files by the hash of their content and writes them again, in place, each
    time the same content comes out: with an embedded model everyone who generates the default
    prompt gets the same pictures, so one request truncated and rewrote a file while another
    user's browser was reading it, and that reader got a broken image (``bench load``, 16
    clients: a ``cannot identify image file``). gradio's own ``save_file_to_cache`` already
    touches an existing copy or writes a new one under a temporary name and renames it; these do
    the same now, and skip the rewrite."""
    from gradio import processing_utils as pu

    if getattr(pu.save_pil_to_cache, "atomic", False):
        return False

    def save_pil_to_cache(img: Any, cache_dir: str, name: str = "image",
                          format: str = "webp") -> str:  # noqa: A002 - gradio's signature
        data = pu.encode_pil_to_bytes(img, format)
        path = (Path(cache_dir) / pu.hash_bytes(data)).resolve() / f"{name}.{format}"
        return _publish(path, lambda staging: Path(staging).write_bytes(data))

    def save_bytes_to_cache(data: bytes, file_name: str, cache_dir: str) -> str:
        if not Path(file_name).suffix:
            file_name = file_name + pu.detect_audio_format(data)
        path = (Path(cache_dir) / pu.hash_bytes(data)).resolve() / Path(file_name).name
        return _publish(path, lambda staging: Path(staging).write_bytes(data))

    def save_audio_to_cache(data: Any, sample_rate: int, format: str,  # noqa: A002
                            cache_dir: str) -> str:
        import hashlib
        import json

        metadata = {"cache_schema": "audio-cache-v1", "dtype": str(data.dtype),
                    "format": format, "sample_rate": int(sample_rate), "shape": data.shape}
        digest = hashlib.sha256()
        digest.update(pu.hash_seed)
        digest.update(json.dumps(metadata, sort_keys=True).encode("utf-8"))
        digest.update(data.tobytes())
        path = (Path(cache_dir) / digest.hexdigest()).resolve() / f"audio.{format}"
        return _publish(path, lambda staging: pu.audio_to_file(sample_rate, data, staging,
                                                               format=format))

    for patched in (save_pil_to_cache, save_bytes_to_cache, save_audio_to_cache):
        patched.atomic = True  # type: ignore[attr-defined]
    pu.save_pil_to_cache = save_pil_to_cache
    pu.save_bytes_to_cache = save_bytes_to_cache
    pu.save_audio_to_cache = save_audio_to_cache
    return True


share_api_info()
cache_argspecs()
skip_skips()
atomic_cache_writes()

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
.mm-unknown-words {font-size: 0.9em; color: #b45309}
.mm-unknown-words p {margin: 0}
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


def task_model_choices(manager: Any, task: str) -> list[tuple[str, str]]:
    """(label, id) dropdown choices of the catalog's models for ``task``; a model that cannot
    load here is labelled so."""
    choices = []
    for spec in manager.catalog.for_task(task):
        ok = manager.catalog.availability(spec.id).available
        choices.append((spec.id if ok else f"{spec.id} (unavailable)", spec.id))
    return choices


def upscale(image: np.ndarray, size: int = 256) -> np.ndarray:
    """Nearest-neighbour upscale of a small (H, W, C) uint8 image to about ``size`` pixels wide,
    by an integer factor, so 32-pixel images show as crisp blocks instead of specks or blur."""
    height, width = image.shape[:2]
    factor = max(1, size // max(height, width))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def explain(text: str) -> gr.Markdown:
    """The short 'what you are seeing' paragraph at the top of a tab."""
    return gr.Markdown(text, elem_classes=["mm-explain"])


def hub_sentence(reach: Any) -> str:
    """The hub's reachability (a ``mmstudio.hub.Reachability``) as one sentence for a person."""
    from mmstudio import hub

    if reach.state == hub.REACHABLE:
        return "Hugging Face Hub: **hub reachable**; hub models download on first use."
    if reach.state == hub.OFFLINE:
        return ("Hugging Face Hub: **offline by setting** (HF_HUB_OFFLINE / MMSTUDIO_OFFLINE); "
                "only hub models already on this machine load.")
    if reach.state == hub.UNREACHABLE:
        return ("Hugging Face Hub: **no network**; only hub models already on this machine load, "
                "the embedded ones always do.")
    return "Hugging Face Hub: checking whether it can be reached..."


def unknown_words_note(manager: Any, prompt: gr.components.Component,
                       model: gr.components.Component | str,
                       elem_id: str | None = None) -> gr.Markdown:
    """A line beside a prompt naming the words the chosen model's text encoder never learned
    (embedded models: their world's caption grammar; hub models are not marked). It follows the
    prompt and the model as they change, off the queue, so it never holds up a run. ``prompt``
    may hold several texts, one per line (they are numbered). Call it where the note should sit,
    inside the tab's layout."""
    fixed = model if isinstance(model, str) else None

    def note(text: str | None, model_id: str | None = fixed) -> dict[str, Any]:
        lines = [line for line in (text or "").splitlines() if line.strip()]
        message = ""
        if model_id and lines:
            message = manager.catalog.unknown_words_message(model_id, lines)
        return gr.update(value=message, visible=bool(message))

    first = note(prompt.value, fixed if fixed else model.value)  # type: ignore[union-attr]
    box = gr.Markdown(first["value"], visible=first["visible"], elem_id=elem_id,
                      elem_classes=["mm-unknown-words"])
    inputs = [prompt] if fixed else [prompt, model]
    for component in inputs:
        component.change(note, inputs, box, queue=False, show_progress="hidden",
                         trigger_mode="always_last", api_name=False)
    return box
