"""Our denoising loop against the diffusers pipelines it stands in for, as an oracle (issue 19).

Library pipelines are built from the very same loaded components, with the scheduler that
``make_scheduler`` returns for the config *as it is on disk* (the pipeline then applies its own
rewrites, if any), and run with the same seed. Our loop samples with the components and config
that the manager's loaders give. The final images must be equal to the last bit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.pipelines.denoise import DenoiseSettings, DiTDenoiser, StableDiffusionDenoiser, run
from mmstudio.pipelines.schedulers import SCHEDULERS, make_scheduler
from tests import tiny_models

ABSENT = object()  # the key is removed: the scheduler class's default applies
# Scheduler configs as hub checkpoints ship them, written over the tiny model's own; with
# "leading" spacing (DDIM's default) the offset moves every timestep, with "linspace" none.
SD_CONFIGS: dict[str, dict[str, Any]] = {
    "as made (Euler, offset 1, no clip_sample)": {},
    "no clip_sample, steps_offset or spacing": {
        "clip_sample": ABSENT, "steps_offset": ABSENT, "timestep_spacing": ABSENT},
    "clip true, offset 0, leading": {
        "clip_sample": True, "steps_offset": 0, "timestep_spacing": "leading"},
    "clip false, offset 0, leading": {
        "clip_sample": False, "steps_offset": 0, "timestep_spacing": "leading"},
    "clip false, offset 1, leading": {
        "clip_sample": False, "steps_offset": 1, "timestep_spacing": "leading"},
}
DIT_CONFIGS: dict[str, dict[str, Any]] = {
    "as made (DDIM: clip true, offset 0, leading)": {},
    "no clip_sample, steps_offset or spacing": {
        "clip_sample": ABSENT, "steps_offset": ABSENT, "timestep_spacing": ABSENT},
}
# DiTPipeline neither scales the initial noise by ``init_noise_sigma`` nor steps from the unscaled
# sample (it hands ``step`` what ``scale_model_input`` returned), so it is right only for the
# variance-preserving samplers; Euler and Euler ancestral are checked against Stable Diffusion.
DIT_SCHEDULERS = ("ddim", "ddpm", "dpmpp_2m")
STOCHASTIC = {"ddpm", "euler_a"}
PROMPT, STEPS, GUIDANCE, SEED = "a red circle", 10, 7.5, 0
DIT_CLASS, DIT_GUIDANCE = 3, 4.0


def with_config(source: Path, target: Path, changes: dict[str, Any]) -> Path:
    """A copy of a model folder whose scheduler_config.json has ``changes`` written over it."""
    shutil.copytree(source, target)
    path = target / "scheduler" / "scheduler_config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        config.pop(key, None)
        if value is not ABSENT:
            config[key] = value
    path.write_text(json.dumps(config))
    return target


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    root = tmp_path_factory.mktemp("oracle")
    settings = Settings(offline=True, assets=root)
    sd = tiny_models.make_stable_diffusion(root / "sd")
    dit = tiny_models.make_dit(root / "dit", num_classes=1000)  # DiTPipeline's null class is 1000
    specs = []
    for i, changes in enumerate(SD_CONFIGS.values()):
        specs.append(ModelSpec(id=f"sd{i}", tasks=("denoise",), source="local",
                               loader="stable_diffusion", resolution=16,
                               path=str(with_config(sd, root / f"sd{i}", changes))))
    for i, changes in enumerate(DIT_CONFIGS.values()):
        folder = with_config(dit, root / f"dit{i}", changes)
        specs.append(ModelSpec(id=f"dit{i}", tasks=("dit",), source="local", loader="dit",
                               resolution=16, path=str(folder)))
    return ModelManager(settings, Catalog(specs, settings), [DeviceInfo("cpu", 10**10, 10**10)])


def config_on_disk(manager: ModelManager, model_id: str) -> dict[str, Any]:
    folder = Path(manager.catalog.get(model_id).path)
    return json.loads((folder / "scheduler" / "scheduler_config.json").read_text())


def difference(ours: np.ndarray, theirs: Any) -> int:
    """Largest difference (of 255) between our (H, W, 3) uint8 image and a pipeline's PIL image."""
    return int(np.abs(ours.astype(int) - np.asarray(theirs).astype(int)).max())


def sd_difference(manager: ModelManager, config: str, scheduler: str) -> int:
    """Our final image against StableDiffusionPipeline's, same components, scheduler and seed."""
    from diffusers import StableDiffusionPipeline

    model_id = f"sd{list(SD_CONFIGS).index(config)}"
    parts = manager.get(model_id).components
    ours = run(StableDiffusionDenoiser(parts),
               DenoiseSettings((PROMPT,), steps=STEPS, guidance=GUIDANCE, seed=SEED,
                               scheduler=scheduler)).images[0]
    pipe = StableDiffusionPipeline(
        vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
        unet=parts["unet"], scheduler=make_scheduler(scheduler, config_on_disk(manager, model_id)),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                  generator=torch.Generator().manual_seed(SEED)).images[0]
    return difference(ours, theirs)


def dit_difference(manager: ModelManager, config: str, scheduler: str) -> int:
    """Our final image against DiTPipeline's, same components, scheduler and seed.

    ``DiTPipeline`` passes no generator to ``scheduler.step``: the stochastic samplers draw their
    step noise from torch's global generator, over a batch that guidance doubles. So those are
    compared without guidance, with the global generator seeded where ours stands after the
    initial noise (the same seed, advanced by one latent's draw).
    """
    from diffusers import DiTPipeline

    model_id = f"dit{list(DIT_CONFIGS).index(config)}"
    parts = manager.get(model_id).components
    denoiser = DiTDenoiser(parts)
    guidance = 1.0 if scheduler in STOCHASTIC else DIT_GUIDANCE
    ours = run(denoiser, DenoiseSettings((str(DIT_CLASS),), steps=STEPS, guidance=guidance,
                                         seed=SEED, scheduler=scheduler)).images[0]
    pipe = DiTPipeline(transformer=parts["transformer"], vae=parts["vae"],
                       scheduler=make_scheduler(scheduler, config_on_disk(manager, model_id)),
                       id2label=parts["id2label"])
    pipe.set_progress_bar_config(disable=True)
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        torch.randn(denoiser.channels, denoiser.size, denoiser.size)
        theirs = pipe([DIT_CLASS], guidance_scale=guidance, num_inference_steps=STEPS,
                      generator=torch.Generator().manual_seed(SEED)).images[0]
    return difference(ours, theirs)


@pytest.mark.parametrize("config", list(SD_CONFIGS))
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_loop_equals_stable_diffusion_pipeline(
    manager: ModelManager, scheduler: str, config: str
) -> None:
    assert sd_difference(manager, config, scheduler) == 0


@pytest.mark.parametrize("config", list(DIT_CONFIGS))
@pytest.mark.parametrize("scheduler", DIT_SCHEDULERS)
def test_loop_equals_dit_pipeline(manager: ModelManager, scheduler: str, config: str) -> None:
    assert dit_difference(manager, config, scheduler) == 0


def test_embedded_pixel_models_keep_their_clipping(tmp_path: Path) -> None:
    """Only the latent pipeline's configs are rewritten: a pixel U-Net with the embedded
    shapes-unet's scheduler config (clip_sample true, steps_offset 0) samples with it as shipped."""
    from mmstudio.loaders import load_pixel_unet

    shipped = Path(__file__).resolve().parent.parent / "assets" / "models" / "shapes-unet"
    folder = tiny_models.make_pixel_unet(tmp_path / "pixel", "clip")
    shutil.copy(shipped / "scheduler" / "scheduler_config.json", folder / "scheduler")
    spec = ModelSpec(id="pixel", tasks=("denoise",), source="local", loader="pixel_unet",
                     path=str(folder), resolution=32)
    config = load_pixel_unet(folder, spec, torch.float32)["scheduler_config"]
    for name in ("ddim", "ddpm"):
        scheduler = make_scheduler(name, config)
        assert scheduler.config.clip_sample is True and scheduler.config.steps_offset == 0
