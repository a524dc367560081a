"""Loaders: a local folder in a library's own format -> a dict of components on the CPU.

One function per format; the manager picks it by the catalog's ``loader`` field and places the
result on devices. Embedded and hub models go through the same functions (hub weights are resolved
to a local snapshot folder first). Only safetensors are read: ``use_safetensors=True`` everywhere,
never ``trust_remote_code``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mmstudio.catalog import ModelSpec
from mmstudio.errors import ModelUnavailable

Components = dict[str, Any]
Loader = Callable[[Path, ModelSpec, torch.dtype], Components]

_SAFE = {"use_safetensors": True}


def load_vq(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A diffusers ``VQModel`` folder (ours, or aMUSEd's ``vqvae`` subfolder)."""
    from diffusers import VQModel

    return {"vq": VQModel.from_pretrained(folder, torch_dtype=dtype, **_SAFE)}


def load_open_clip(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """An open_clip ``local-dir:`` folder (open_clip_config.json + open_clip_model.safetensors)."""
    import open_clip

    name = f"local-dir:{folder}"
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    model = model.to(dtype).eval()
    return {"model": model, "preprocess": preprocess, "tokenizer": open_clip.get_tokenizer(name)}


def load_open_clap(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """An open_clip ``local-dir:`` folder whose image tower reads log-mel spectrograms, and its
    ``audio_frontend.json`` (how a clip becomes that input): the embedded sounds-clap."""
    from mmstudio.pipelines.sound_align import read_frontend

    return {**load_open_clip(folder, spec, dtype), "audio_frontend": read_frontend(folder)}


def load_clap(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A transformers ``ClapModel`` folder with its processor (``laion/clap-htsat-unfused``)."""
    from transformers import ClapModel, ClapProcessor

    return {"model": ClapModel.from_pretrained(folder, torch_dtype=dtype, **_SAFE).eval(),
            "processor": ClapProcessor.from_pretrained(folder)}


def _model_index(folder: Path) -> dict[str, Any]:
    path = folder / "model_index.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _scheduler_config(folder: Path) -> dict[str, Any]:
    path = folder / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        raise ModelUnavailable(str(folder), "no scheduler/scheduler_config.json in the folder")
    return json.loads(path.read_text())


def _as_stable_diffusion_pipeline_samples(config: dict[str, Any]) -> dict[str, Any]:
    """A Stable Diffusion scheduler config as ``StableDiffusionPipeline.__init__`` rewrites it.

    Our loop stands in for that pipeline, so it samples with the config the pipeline samples with
    (diffusers 0.42.1): a ``steps_offset`` other than 1 becomes 1, and a ``clip_sample`` that is
    true becomes false, on whichever scheduler is built (an absent key means that scheduler's
    default: offset 0, and clipping on for DDIM and DDPM). Clipping a predicted x0 to [-1, 1] is
    meant for pixels and wrecks a VAE latent, and many hub configs (Euler, PNDM) lack the key, so
    DDIM or DDPM would clip. Schedulers without either parameter ignore the key. Only this latent
    pipeline rewrites: ``DiTPipeline`` samples with the config as shipped, and our pixel models
    keep the clipping they were trained with.
    """
    return {**config, "steps_offset": 1, "clip_sample": False}


def load_dit(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A DiT pipeline folder: ``DiTTransformer2DModel`` + ``AutoencoderKL`` + scheduler config."""
    from diffusers import AutoencoderKL, DiTTransformer2DModel

    from mmstudio.pipelines.attention import install_recording_processors

    index = _model_index(folder)
    id2label = {int(k): v for k, v in (index.get("id2label") or {}).items()}
    transformer = DiTTransformer2DModel.from_pretrained(
        folder, subfolder="transformer", torch_dtype=dtype, **_SAFE)
    install_recording_processors(transformer)
    return {
        "transformer": transformer,
        "vae": AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, **_SAFE),
        "scheduler_config": _scheduler_config(folder),
        "id2label": id2label,
    }


def load_vae(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A diffusers ``AutoencoderKL`` folder (ours, or a pipeline's ``vae`` subfolder)."""
    from diffusers import AutoencoderKL

    return {"vae": AutoencoderKL.from_pretrained(folder, torch_dtype=dtype, **_SAFE)}


def _component_id(folder: Path, name: str) -> str | None:
    """The catalog id in ``<name>.json`` of a folder that shares a component with other models."""
    path = folder / f"{name}.json"
    return json.loads(path.read_text())["model_id"] if path.is_file() else None


def load_pixart(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A text-conditioned DiT folder: ``PixArtTransformer2DModel`` (transformer/), scheduler, and
    either its own ``vae/`` or the catalog id of a shared one (``vae.json``); the text encoder is a
    catalog model named in ``text_encoder.json``, shared with the Similarity tab. Its attention
    processors record maps when a call asks (``pipelines.attention``)."""
    from diffusers import AutoencoderKL, PixArtTransformer2DModel

    from mmstudio.pipelines.attention import install_recording_processors

    transformer = PixArtTransformer2DModel.from_pretrained(
        folder, subfolder="transformer", torch_dtype=dtype, **_SAFE)
    install_recording_processors(transformer)
    vae = None
    if (folder / "vae" / "config.json").is_file():
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, **_SAFE)
    return {
        "transformer": transformer,
        "vae": vae,
        "vae_id": _component_id(folder, "vae"),
        "text_encoder_id": _component_id(folder, "text_encoder"),
        "scheduler_config": _scheduler_config(folder),
    }


def load_latte(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A text-to-video folder (``motion-dit``): ``LatteTransformer3DModel`` (transformer/), its own
    text tower (text_encoder/: a transformers ``CLIPTextModel``, with ``text_tokens.json`` saying
    which open_clip id each of its ids is), scheduler, and the catalog id of the per-frame
    autoencoder (``vae.json``), shared with the DiT. Its attention processors record spatial,
    temporal and cross-attention when asked (``pipelines.attention``)."""
    from diffusers import LatteTransformer3DModel
    from transformers import CLIPTextModel

    from mmstudio.pipelines.attention import install_recording_processors
    from mmstudio.pipelines.video import CaptionTokens

    transformer = LatteTransformer3DModel.from_pretrained(
        folder, subfolder="transformer", torch_dtype=dtype, **_SAFE)
    install_recording_processors(transformer)
    text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", dtype=dtype,
                                                 **_SAFE).eval()
    return {
        "transformer": transformer,
        "text_encoder": text_encoder,
        "tokens": CaptionTokens.load(folder),
        "vae_id": _component_id(folder, "vae"),
        "scheduler_config": _scheduler_config(folder),
    }


def load_stable_diffusion(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A Stable Diffusion folder: UNet, VAE, CLIP text encoder, tokenizer, scheduler config."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    return {
        "unet": UNet2DConditionModel.from_pretrained(
            folder, subfolder="unet", torch_dtype=dtype, **_SAFE
        ),
        "vae": AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, **_SAFE),
        "text_encoder": CLIPTextModel.from_pretrained(
            folder, subfolder="text_encoder", torch_dtype=dtype, **_SAFE
        ),
        "tokenizer": CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
        "scheduler_config": _as_stable_diffusion_pipeline_samples(_scheduler_config(folder)),
    }


def load_pixel_unet(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """Our pixel-space text-to-image folder: a ``UNet2DConditionModel`` + scheduler config.

    The text encoder is a separate catalog model (named in ``text_encoder.json``), loaded by the
    pipeline through the manager so that it is shared with the Similarity tab.
    """
    from diffusers import UNet2DConditionModel

    text = folder / "text_encoder.json"
    return {
        "unet": UNet2DConditionModel.from_pretrained(
            folder, subfolder="unet", torch_dtype=dtype, **_SAFE
        ),
        "scheduler_config": _scheduler_config(folder),
        "text_encoder_id": json.loads(text.read_text())["model_id"] if text.is_file() else None,
    }


def load_audioldm2(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    from diffusers import AudioLDM2Pipeline

    return {"pipeline": AudioLDM2Pipeline.from_pretrained(folder, torch_dtype=dtype, **_SAFE)}


def load_encodec(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A transformers ``EncodecModel`` folder: ours (sounds-codec) or ``facebook/encodec_24khz``.
    The studio feeds it mono audio at ``config.sampling_rate`` itself (``pipelines.codec``), so
    the feature extractor, which only pads, is not needed."""
    from transformers import EncodecModel

    return {"model": EncodecModel.from_pretrained(folder, torch_dtype=dtype, **_SAFE).eval()}


def load_text_to_video(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A ``TextToVideoSDPipeline`` folder (ModelScope text-to-video): a 3-D UNet
    (``UNet3DConditionModel``) over per-frame SD-VAE latents, the VAE, a CLIP text encoder and its
    tokenizer, loaded part by part so that the studio's own loop drives them step by step."""
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    return {
        "unet": UNet3DConditionModel.from_pretrained(
            folder, subfolder="unet", torch_dtype=dtype, **_SAFE),
        "vae": AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=dtype, **_SAFE),
        "text_encoder": CLIPTextModel.from_pretrained(
            folder, subfolder="text_encoder", torch_dtype=dtype, **_SAFE),
        "tokenizer": CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer"),
        "scheduler_config": _scheduler_config(folder),
        "frames": int(spec.frames or 16),
    }


def load_gpt_prior(folder: Path, spec: ModelSpec, dtype: torch.dtype) -> Components:
    """A token prior folder (``shapes-gpt``): a transformers causal LM (``GPT2LMHeadModel``,
    ``save_pretrained``), its ``token_stream.json`` (what each id means) and the catalog id of
    the VQ model whose codes it writes (``vq.json``), loaded through the manager, shared."""
    from transformers import AutoModelForCausalLM

    from mmstudio.pipelines.token_prior import read_vq_id
    from mmstudio.pipelines.token_stream import ImageTokenStream

    gpt = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **_SAFE).eval()
    return {"gpt": gpt, "stream": ImageTokenStream.load(folder), "vq_id": read_vq_id(folder)}


LOADERS: dict[str, Loader] = {
    "vq": load_vq,
    "open_clip": load_open_clip,
    "open_clap": load_open_clap,
    "clap": load_clap,
    "dit": load_dit,
    "pixart": load_pixart,
    "latte": load_latte,
    "vae": load_vae,
    "stable_diffusion": load_stable_diffusion,
    "pixel_unet": load_pixel_unet,
    "audioldm2": load_audioldm2,
    "encodec": load_encodec,
    "text_to_video": load_text_to_video,
    "gpt_prior": load_gpt_prior,
}


def torch_modules(components: Components) -> dict[str, torch.nn.Module]:
    """The ``nn.Module`` parts of a component dict, including those inside a library pipeline."""
    modules: dict[str, torch.nn.Module] = {}
    for name, value in components.items():
        if isinstance(value, torch.nn.Module):
            modules[name] = value
        elif hasattr(value, "components") and isinstance(value.components, dict):
            for sub, part in value.components.items():
                if isinstance(part, torch.nn.Module):
                    modules[f"{name}.{sub}"] = part
    return modules


def nbytes(components: Components) -> int:
    """Bytes held by the parameters and buffers of every module in ``components``."""
    total = 0
    for module in torch_modules(components).values():
        for tensor in list(module.parameters()) + list(module.buffers()):
            total += tensor.numel() * tensor.element_size()
    return total
