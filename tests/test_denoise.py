"""The denoising loop over tiny random models of each kind: pixel U-Net (open_clip text states),
Stable Diffusion (latent, CLIP text), DiT (class labels)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.errors import UserError
from mmstudio.manager import ModelInUse, ModelManager
from mmstudio.pipelines.denoise import (
    DenoiseResult,
    DenoiseSettings,
    DenoiseStep,
    denoise,
    denoiser_for,
    run,
    to_prediction,
    to_uint8,
)
from mmstudio.pipelines.schedulers import SCHEDULERS
from tests import tiny_models


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    root = tmp_path_factory.mktemp("denoise")
    settings = Settings(offline=True, assets=root)
    clip = tiny_models.make_open_clip(root / "clip")
    specs = [
        ModelSpec(id="clip", tasks=("similarity",), source="local", loader="open_clip",
                  path=str(clip), resolution=32),
        ModelSpec(id="pixel", tasks=("denoise",), source="local", loader="pixel_unet",
                  path=str(tiny_models.make_pixel_unet(root / "pixel", "clip")), resolution=32),
        ModelSpec(id="sd", tasks=("denoise",), source="local", loader="stable_diffusion",
                  path=str(tiny_models.make_stable_diffusion(root / "sd")), resolution=16),
        ModelSpec(id="dit", tasks=("dit",), source="local", loader="dit",
                  path=str(tiny_models.make_dit(root / "dit")), resolution=16),
    ]
    return ModelManager(settings, Catalog(specs, settings), [DeviceInfo("cpu", 10**10, 10**10)])


@pytest.fixture
def borrow(manager: ModelManager):
    """``borrow(model_id)``: a denoiser whose models stay borrowed until the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda model_id: stack.enter_context(denoiser_for(manager, model_id))


def collect(denoiser, settings: DenoiseSettings) -> tuple[list[DenoiseStep], DenoiseResult]:
    *steps, result = list(denoise(denoiser, settings))
    assert isinstance(result, DenoiseResult)
    return steps, result


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("model_id", ["pixel", "sd", "dit"])
def test_every_scheduler_runs_and_the_last_x0_is_the_output(
    borrow, model_id: str, scheduler: str
) -> None:
    denoiser = borrow(model_id)
    prompt = "3" if model_id == "dit" else "a red circle"
    settings = DenoiseSettings((prompt,), steps=6, guidance=2.0, seed=1, scheduler=scheduler, n=2)
    steps, result = collect(denoiser, settings)
    assert [s.index for s in steps] == list(range(len(steps))) and len(steps) >= 6
    for step in steps:
        assert step.x_t.shape == step.x0_pred.shape == step.eps_pred.shape
        assert torch.isfinite(step.x0_pred).all() and 0.0 <= step.alpha_bar <= 1.0
    assert result.images.dtype == np.uint8 and result.images.shape[0] == 2
    if not denoiser.latent:  # pixel space: the last predicted x0 is the output image
        last = to_uint8(steps[-1].x0_pred)
        assert np.abs(last.astype(int) - result.images.astype(int)).max() <= 1


def test_same_seed_same_images_and_seeds_are_per_image(borrow) -> None:
    denoiser = borrow("pixel")
    settings = DenoiseSettings(("a red circle", "a blue cross"), steps=5, seed=7, n=2,
                               scheduler="euler_a")
    first, second = run(denoiser, settings), run(denoiser, settings)
    assert np.array_equal(first.images, second.images)
    assert first.seeds == [7, 8, 9, 10] and first.prompts[2] == "a blue cross"
    alone = run(denoiser, DenoiseSettings(("a blue cross",), steps=5, seed=9, n=1,
                                          scheduler="euler_a"))
    # An image ignores its batch mates: its noise comes from its own seed. Up to one level of 255:
    # the convolution kernels sum in another order at another batch size (measured: 0 or 1).
    difference = np.abs(alone.images[0].astype(int) - first.images[2].astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.01


def test_concurrent_requests_match_sequential(borrow) -> None:
    denoiser = borrow("pixel")
    jobs = [DenoiseSettings(("a red circle",), steps=4, scheduler="ddim", seed=3),
            DenoiseSettings(("a green square",), steps=9, scheduler="dpmpp_2m", seed=4)]
    expected = [run(denoiser, job).images for job in jobs]
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(len(jobs))

    def work(i: int) -> None:
        barrier.wait()
        results[i] = run(denoiser, jobs[i]).images

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for i, images in enumerate(expected):
        assert np.array_equal(results[i], images)


def test_a_run_borrows_the_model_and_its_text_encoder(manager: ModelManager) -> None:
    """Nothing a run needs can be evicted or unloaded while it runs; all is returned after."""
    settings = DenoiseSettings(("a red circle",), steps=3, seed=0)
    with denoiser_for(manager, "pixel") as denoiser:
        busy = {row["id"]: row["in_use"] for row in manager.status()}
        assert busy["pixel"] == 1 and busy["clip"] == 1
        for model_id in ("pixel", "clip"):
            with pytest.raises(ModelInUse, match=f"'{model_id}' is in use"):
                manager.unload(model_id)
        steps = denoise(denoiser, settings)
        next(steps)  # mid-run
        assert set(manager.unload_all()) == {"pixel", "clip"}  # the rest is dropped
        assert manager.is_loaded("pixel") and manager.is_loaded("clip")
        *_, result = steps
        assert isinstance(result, DenoiseResult)
    assert all(row["in_use"] == 0 for row in manager.status())
    assert manager.unload("pixel") and manager.unload("clip")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "steps must be a whole number from 1 to 1000"),
        ({"steps": 10_000}, "steps must be a whole number from 1 to 1000"),
        ({"guidance": -5}, "guidance must be between 0 and 30"),
        ({"guidance": float("nan")}, "guidance must be a finite number"),
        ({"prompts": ("x" * 10_000,)}, "10,000 characters long"),
        ({"scheduler": "magic"}, "unknown scheduler 'magic'"),
        ({"seed": -1}, "seed must be a whole number"),
    ],
)
def test_bad_settings_are_clear(changes: dict, message: str) -> None:
    from dataclasses import replace

    with pytest.raises(UserError, match=message):
        replace(DenoiseSettings(), **changes).validated()


def test_empty_prompt_means_unconditional(borrow) -> None:
    result = run(borrow("pixel"), DenoiseSettings(("",), steps=3, guidance=1.0))
    assert result.images.shape == (1, 32, 32, 3)


def test_dit_class_names_and_unknown_class(borrow) -> None:
    denoiser = borrow("dit")
    assert denoiser.label_id("class 4") == 4 and denoiser.label_id("") == 10
    with pytest.raises(UserError, match="not a class of this model"):
        denoiser.label_id("zebra")


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_prediction_conversions_recover_x0_and_eps(kind: str) -> None:
    generator = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 4, 4, generator=generator), torch.randn(2, 3, 4, 4,
                                                                       generator=generator)
    ab = 0.3
    x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * eps
    output = {"epsilon": eps, "sample": x0,
              "v_prediction": ab**0.5 * eps - (1 - ab) ** 0.5 * x0}[kind]
    got_x0, got_eps = to_prediction(output, x_t, ab, kind)
    assert torch.allclose(got_x0, x0, atol=1e-5) and torch.allclose(got_eps, eps, atol=1e-5)


def test_folder_layout_is_what_the_loader_reads(tmp_path: Path) -> None:
    folder = tiny_models.make_pixel_unet(tmp_path / "p", "shapes-clip")
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (folder / "scheduler" / "scheduler_config.json").is_file()
