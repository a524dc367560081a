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
        with denoiser_for(manager, "shapes-unet") as denoiser:
            images.append(run(denoiser, DenoiseSettings(("a red circle",), steps=3,
                                                        seed=5)).images)
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
    state = json.loads((tmp_path / "r2" / "checkpoint" / "state.json").read_text())["state"]
    assert state["cycle_start"] == 2  # the resumed run keeps the new cycle's schedule


def test_learning_rate_cycles() -> None:
    """Warm-up then cosine to zero; --init-from starts a whole new cycle at the model's step."""
    import argparse

    args = argparse.Namespace(lr=1e-3, warmup=100, steps=1000)
    fresh = [unet_training.learning_rate(s, args) for s in range(1000)]
    assert fresh[0] == pytest.approx(1e-5) and max(fresh) == pytest.approx(fresh[99])
    assert 0.95e-3 < fresh[99] <= 1e-3 and fresh[500] == pytest.approx(5e-4, rel=1e-2)
    assert all(a >= b for a, b in zip(fresh[99:-1], fresh[100:], strict=True)) and fresh[-1] < 1e-8
    shorter = argparse.Namespace(lr=1e-3, warmup=100, steps=400)
    again = [unet_training.learning_rate(600 + k, args, cycle_start=600) for k in range(400)]
    assert again == pytest.approx([unet_training.learning_rate(k, shorter) for k in range(400)])
    assert again[0] == pytest.approx(1e-5) and again[99] > 0.8e-3 and again[-1] < 1e-7


def test_coordinate_channels() -> None:
    import torch

    from mmstudio.pipelines.denoise import with_coordinates

    x = torch.randn(2, 3, 8, 8)
    y = with_coordinates(x)
    assert y.shape == (2, 5, 8, 8) and torch.equal(y[:, :3], x)
    assert torch.equal(y[0, 3, :, 0], torch.full((8,), -1.0))  # x: -1 at the left edge
    assert torch.equal(y[0, 3, 0, -1], torch.tensor(1.0))  # ... +1 at the right
    assert torch.equal(y[0, 4, 0], torch.full((8,), -1.0))  # y: -1 along the top row
    assert torch.equal(y[1, 4, -1], torch.full((8,), 1.0))  # ... +1 along the bottom


def test_widening_conv_in_keeps_the_model_and_the_loop_uses_coordinates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A U-Net trained without coordinate channels, widened for them (zero weights), predicts
    exactly what it did; an exported model with them runs through the loop."""
    import torch

    from mmstudio.pipelines.denoise import with_coordinates

    torch.manual_seed(0)
    old = unet_training.build_unet((8, 16), 16, coords=False).eval()
    new = unet_training.build_unet((8, 16), 16, coords=True).eval()
    assert (old.config.in_channels, new.config.in_channels) == (3, 5)
    new.load_state_dict(unet_training.widen_conv_in(old.state_dict(), 5))
    x, t, cond = torch.randn(2, 3, 32, 32), torch.tensor([10, 500]), torch.randn(2, 4, 16)
    with torch.no_grad():
        before = old(x, t, encoder_hidden_states=cond).sample
        after = new(with_coordinates(x), t, encoder_hidden_states=cond).sample
    assert torch.allclose(before, after, atol=1e-6)
    with pytest.raises(ValueError):
        unet_training.widen_conv_in(new.state_dict(), 3)

    assets = tmp_path / "assets"
    tiny_models.make_open_clip(assets / "models" / "shapes-clip")
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))
    out = assets / "models" / "shapes-unet"
    first = tmp_path / "no-coords"
    common = ["--batch", "2", "--channels", "8,16"]
    assert unet_training.main("shapes-unet", ["--steps", "2", "--no-coords", "--min-snr", "0",
                                              "--run", str(tmp_path / "r1"), "--out", str(first),
                                              *common]) == 0
    assert unet_training.main("shapes-unet", ["--steps", "3", "--run", str(tmp_path / "r2"),
                                              "--out", str(out), "--init-from", str(first),
                                              *common]) == 0
    assert json.loads((out / "unet" / "config.json").read_text())["in_channels"] == 5
    settings = Settings(offline=True, assets=assets)
    manager = ModelManager(settings, Catalog.load(settings), [DeviceInfo("cpu", 10**10, 10**10)])
    with denoiser_for(manager, "shapes-unet") as denoiser:
        assert (denoiser.coords, denoiser.channels) == (2, 3)
        images = run(denoiser, DenoiseSettings(("a red circle",), steps=2, seed=1)).images
    assert images.shape == (1, 32, 32, 3)
