"""shapes-unet training smoke test: a few steps on world data, export, reload, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run
from mmstudio.training import unet as unet_training
from tests import tiny_models


def test_train_export_reload_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assets = tmp_path / "assets"
    tiny_models.make_open_clip(assets / "models" / "shapes-clip")
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))
    out, run_dir = assets / "models" / "shapes-unet", tmp_path / "run"
    common = ["--batch", "4", "--channels", "8,16", "--run", str(run_dir), "--out", str(out)]
    assert unet_training.main("shapes-unet", ["--steps", "3", *common]) == 0
    assert json.loads((out / "training.json").read_text())["step"] == 3
    assert json.loads((out / "text_encoder.json").read_text())["model_id"] == "shapes-clip"
    assert max(f.stat().st_size for f in out.rglob("*.safetensors")) < 10 * 2**20

    settings = Settings(offline=True, assets=assets)
    cpu = [DeviceInfo("cpu", 10**10, 10**10)]
    images = []
    for _ in range(2):  # two fresh loads through the real catalog entry and loader
        manager = ModelManager(settings, Catalog.load(settings), cpu)
        denoiser = denoiser_for(manager, "shapes-unet")
        images.append(run(denoiser, DenoiseSettings(("a red circle",), steps=3, seed=5)).images)
    assert images[0].shape == (1, 32, 32, 3) and np.array_equal(images[0], images[1])

    assert unet_training.main("shapes-unet", ["--steps", "5", "--resume", *common]) == 0
    assert json.loads((out / "training.json").read_text())["step"] == 5
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["state"]["step"] == 5


def test_init_from_an_exported_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assets = tmp_path / "assets"
    tiny_models.make_open_clip(assets / "models" / "shapes-clip")
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--batch", "2", "--channels", "8,16"]
    assert unet_training.main("shapes-unet", ["--steps", "2", "--run", str(tmp_path / "r1"),
                                              "--out", str(first), *common]) == 0
    assert unet_training.main("shapes-unet", ["--steps", "3", "--run", str(tmp_path / "r2"),
                                              "--out", str(second), "--init-from", str(first),
                                              *common]) == 0
    assert json.loads((second / "training.json").read_text())["step"] == 3
