"""The hub loading path, offline: tiny random models of each hub architecture are installed into a
Hugging Face cache folder under the real repo ids, then resolved by the real catalog entries and
loaded by the manager's real loaders, and run one forward pass each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from tests import tiny_models

CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]


def manager_with(settings: Settings) -> ModelManager:
    return ModelManager(settings, Catalog.load(settings), devices=CPU)


def install(tmp_path: Path, settings: Settings, maker, repo_id: str, **kwargs) -> None:
    folder = maker(tmp_path / "build" / repo_id.replace("/", "_"), **kwargs)
    assert settings.hub_cache is not None
    tiny_models.install_in_hub_cache(folder, repo_id, settings.hub_cache)


def test_hub_model_without_weights_is_unavailable_offline(offline_settings: Settings) -> None:
    manager = manager_with(offline_settings)
    status = manager.catalog.availability("facebook/DiT-XL-2-256")
    assert not status.available
    assert "offline" in status.reason and "cache" in status.reason
    from mmstudio.errors import ModelUnavailable

    with pytest.raises(ModelUnavailable, match="DiT-XL-2-256.*not in the local Hugging Face"):
        manager.get("facebook/DiT-XL-2-256")


def test_dit_pipeline_folder(tmp_path: Path, offline_settings: Settings) -> None:
    install(tmp_path, offline_settings, tiny_models.make_dit, "facebook/DiT-XL-2-256")
    manager = manager_with(offline_settings)
    assert manager.catalog.availability("facebook/DiT-XL-2-256").available
    model = manager.get("facebook/DiT-XL-2-256")
    assert model["id2label"][3] == "class 3"
    latents = torch.randn(1, 4, 8, 8)  # (B, C, h, w)
    out = model["transformer"](latents, timestep=torch.tensor([10]),
                               class_labels=torch.tensor([3])).sample
    assert out.shape == (1, 8, 8, 8)  # learned sigma doubles the channels
    image = model["vae"].decode(latents).sample
    assert image.shape == (1, 3, 16, 16) and torch.isfinite(image).all()


def test_amused_vqvae_subfolder(tmp_path: Path, offline_settings: Settings) -> None:
    install(tmp_path, offline_settings, tiny_models.make_vq, "amused/amused-256",
            subfolder="vqvae")
    manager = manager_with(offline_settings)
    vq = manager.get("amused/amused-256:vqvae")["vq"]
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    latents = vq.encode(image).latents  # (1, 4, 8, 8)
    quantized, _, (_, _, indices) = vq.quantize(latents)
    assert indices.numel() == 8 * 8 and int(indices.max()) < 16
    decoded = vq.decode(indices.view(1, 8, 8), force_not_quantize=True,
                        shape=(1, 8, 8, 4)).sample
    assert decoded.shape == (1, 3, 32, 32)


def test_open_clip_local_dir(tmp_path: Path, offline_settings: Settings) -> None:
    install(tmp_path, offline_settings, tiny_models.make_open_clip,
            "laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    manager = manager_with(offline_settings)
    model = manager.get("open_clip:ViT-B-32/laion2b_s34b_b79k")
    image_features = model["model"].encode_image(torch.rand(2, 3, 32, 32))
    text_features = model["model"].encode_text(model["tokenizer"](["a red circle", "a cross"]))
    assert image_features.shape == (2, 16) and text_features.shape == (2, 16)


def test_stable_diffusion_folder(tmp_path: Path, offline_settings: Settings) -> None:
    install(tmp_path, offline_settings, tiny_models.make_stable_diffusion, "stabilityai/sd-turbo")
    manager = manager_with(offline_settings)
    model = manager.get("stabilityai/sd-turbo")
    tokens = model["tokenizer"](["a red circle"], padding="max_length", max_length=77,
                                return_tensors="pt").input_ids
    states = model["text_encoder"](tokens).last_hidden_state  # (1, 77, 16)
    latents = torch.randn(1, 4, 8, 8)
    noise = model["unet"](latents, torch.tensor([500]), encoder_hidden_states=states).sample
    assert noise.shape == latents.shape
    assert model["vae"].decode(latents).sample.shape == (1, 3, 16, 16)
    assert model["scheduler_config"]["_class_name"] == "EulerDiscreteScheduler"
