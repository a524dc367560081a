"""The Models tab loads and unloads only when the person running the studio allows it
(MMSTUDIO_ADMIN=1); then a model that runs are using is still never unloaded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest

from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.ui import tab_models
from tests import tiny_models

CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]


def build(tmp_path: Path, settings: Settings) -> tuple[ModelManager, dict[str, Callable], dict]:
    folder = tiny_models.make_vq(tmp_path / "vq")
    catalog = Catalog([ModelSpec(id="vq", tasks=("tokenize",), source="local", loader="vq",
                                 path=str(folder), resolution=32)], settings)
    manager = ModelManager(settings, catalog, CPU)
    with gr.Blocks() as demo:
        tab_models.build(manager)
    fns = {fn.api_name: fn.fn for fn in demo.fns.values() if fn.api_name}
    buttons = {b.value: b for b in demo.blocks.values() if isinstance(b, gr.Button)}
    return manager, fns, buttons


def test_admin_is_off_by_default() -> None:
    assert Settings.from_env({}).admin is False
    assert Settings.from_env({"MMSTUDIO_ADMIN": "1"}).admin is True


def test_without_admin_nobody_loads_or_unloads(tmp_path: Path,
                                               offline_settings: Settings) -> None:
    manager, fns, buttons = build(tmp_path, offline_settings)
    assert not buttons["Load"].interactive and not buttons["Unload"].interactive
    for api_name in ("models_load", "models_unload"):
        with pytest.raises(gr.Error, match="MMSTUDIO_ADMIN=1"):
            fns[api_name]("vq")
    assert not manager.is_loaded("vq")
    manager.get("vq")  # a tab's own use still loads it
    with pytest.raises(gr.Error, match="MMSTUDIO_ADMIN=1"):
        fns["models_unload"]("vq")
    assert manager.is_loaded("vq")


def test_admin_loads_and_unloads_but_not_a_model_in_use(tmp_path: Path,
                                                        offline_settings: Settings) -> None:
    manager, fns, buttons = build(tmp_path, replace(offline_settings, admin=True))
    assert buttons["Load"].interactive is not False
    _, _, message = fns["models_load"]("vq")
    assert "Loaded **vq**" in message and manager.is_loaded("vq")
    with manager.use("vq"):
        with pytest.raises(gr.Error, match="'vq' is in use by 1 running request"):
            fns["models_unload"]("vq")
        assert manager.is_loaded("vq")
    _, _, message = fns["models_unload"]("vq")
    assert "Unloaded **vq**" in message and not manager.is_loaded("vq")
