"""On Hugging Face ZeroGPU (the `spaces` package present), every handler that runs a model is
wrapped with `spaces.GPU`; elsewhere nothing changes (tests/test_foundation.py)."""

from __future__ import annotations

import sys
import types

import pytest


def test_model_handlers_run_under_spaces_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmstudio.manager import ModelManager
    from mmstudio.ui import build_app

    wrapped: list[tuple[str, int]] = []

    def gpu(duration: int = 60):
        def decorate(fn):
            wrapped.append((fn.__name__, duration))
            return fn
        return decorate

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    app = build_app(ModelManager())
    names = {name for name, _ in wrapped}
    expected = {"generate", "comparison",  # Diffusion
                "tokenize", "auto_tokenize", "set_token", "replace_code", "randomize", "reset",
                "eval_histogram", "browse", "compare",  # Tokenize (and Similarity's compare)
                "zero_shot", "retrieve"}  # Similarity
    assert expected <= names, expected - names
    assert all(duration > 0 for _, duration in wrapped)
    # What gradio registered is the wrapped handler (here the decorator returns it unchanged,
    # still translating errors for the page).
    fns = {block_fn.api_name: block_fn.fn for block_fn in app.fns.values()}
    assert fns["denoise"].__name__ == "generate" and fns["vq_compare"].__name__ == "compare"
