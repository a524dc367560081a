"""Training smoke tests of shapes-vae and shapes-dit: a few steps on world data, export, reload
through the real loaders, same outputs; resuming without a checkpoint says so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstudio.errors import UserError


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmstudio.training.vae import main

    run = tmp_path_factory.mktemp("vae-run")
    assert main("shapes-vae", ["--steps", "3", "--batch", "4", "--no-compile", "--run", str(run),
                               "--export-every", "0"]) == 0
    return run


def test_vae_export_records_a_measured_scaling_factor(vae_run: Path) -> None:
    from diffusers import AutoencoderKL

    from mmstudio.training.vae import measure_scaling_factor

    training = json.loads((vae_run / "export" / "training.json").read_text())
    vae = AutoencoderKL.from_pretrained(vae_run / "export", use_safetensors=True).eval()
    assert training["step"] == 3 and vae.config.scaling_factor == pytest.approx(
        training["scaling_factor"])
    assert measure_scaling_factor(vae, seed=0) == pytest.approx(vae.config.scaling_factor,
                                                                rel=1e-5)
    assert (vae_run / "checkpoint" / "state.json").is_file()


def test_resume_without_checkpoint_says_so(tmp_path: Path) -> None:
    from mmstudio.training import dit, vae

    with pytest.raises(UserError, match="no checkpoint"):
        vae.main("shapes-vae", ["--steps", "2", "--resume", "--run", str(tmp_path / "none")])
    with pytest.raises(UserError, match="no checkpoint"):
        dit.main("shapes-dit", ["--steps", "2", "--resume", "--run", str(tmp_path / "none"),
                                "--vae", str(tmp_path)])


def test_dit_trains_exports_and_runs_in_the_loop(vae_run: Path, tmp_path: Path) -> None:
    from mmstudio.catalog import Catalog, ModelSpec
    from mmstudio.config import Settings
    from mmstudio.devices import DeviceInfo
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run
    from mmstudio.training.dit import main

    out = tmp_path / "dit"
    assert main("shapes-dit", ["--steps", "2", "--batch", "4", "--layers", "1", "--no-compile",
                               "--vae", str(vae_run / "export"), "--run", str(tmp_path / "r"),
                               "--out", str(out)]) == 0
    assert json.loads((out / "vae.json").read_text()) == {"model_id": "shapes-vae"}
    root = Path(__file__).resolve().parent.parent / "assets" / "models"
    settings = Settings(offline=True, assets=tmp_path / "assets")
    specs = [ModelSpec(id="shapes-clip", tasks=("similarity",), source="local",
                       loader="open_clip", path=str(root / "shapes-clip"), resolution=32),
             ModelSpec(id="shapes-vae", tasks=("autoencode",), source="local", loader="vae",
                       path=str(vae_run / "export"), resolution=32),
             ModelSpec(id="dit", tasks=("dit",), source="local", loader="pixart",
                       path=str(out), resolution=32)]
    manager = ModelManager(settings, Catalog(specs, settings), [DeviceInfo("cpu", 10**10, 10**10)])
    settings_ = DenoiseSettings(("a red circle",), steps=3, guidance=2.0, seed=3)
    with denoiser_for(manager, "dit") as denoiser:
        first, second = run(denoiser, settings_), run(denoiser, settings_)
        assert denoiser.transformer.config.num_layers == 1
    assert first.images.shape == (1, 32, 32, 3)
    assert np.array_equal(first.images, second.images)
    torch.manual_seed(0)  # the exported weights are the EMA: finite and loadable
    assert all(torch.isfinite(p).all() for p in denoiser.transformer.parameters())
