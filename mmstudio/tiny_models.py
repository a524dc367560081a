"""Tiny random models in the hub architectures' own folder layouts, for offline tests and benches.

Each ``make_*`` writes a folder exactly as the real checkpoint is laid out (diffusers
``save_pretrained`` sub-folders, an open_clip ``local-dir:`` folder, ...), only with a few thousand
random weights. ``install_in_hub_cache`` puts such a folder into a Hugging Face cache folder in the
hub's own layout, so the catalog resolves the real hub repo id to it without any network.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

FAKE_COMMIT = "0" * 40


def make_vq(folder: Path, subfolder: str | None = None, num_codes: int = 16) -> Path:
    """A ``VQModel`` shaped like aMUSEd's (codebook lookup on decode), 4x downsampling."""
    from diffusers import VQModel

    torch.manual_seed(0)
    model = VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 8, 8),
        layers_per_block=1,
        latent_channels=4,
        num_vq_embeddings=num_codes,
        vq_embed_dim=4,
        norm_num_groups=4,
        lookup_from_codebook=True,
        force_upcast=False,
    )
    target = folder / subfolder if subfolder else folder
    model.save_pretrained(target, safe_serialization=True)
    return folder


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
    )


def make_dit(folder: Path, num_classes: int = 10) -> Path:
    """A DiT pipeline folder: transformer/, vae/, scheduler/ and model_index.json with labels.

    ``DiTPipeline`` takes class 1000 as "no class" for guidance, so comparing against it needs
    ``num_classes=1000`` (ImageNet's count, as the hub DiTs have).
    """
    from diffusers import DDIMScheduler, DiTTransformer2DModel

    torch.manual_seed(0)
    DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        sample_size=8,
        patch_size=2,
        num_embeds_ada_norm=num_classes,
        norm_num_groups=4,
    ).save_pretrained(folder / "transformer", safe_serialization=True)
    _tiny_vae().save_pretrained(folder / "vae", safe_serialization=True)
    DDIMScheduler().save_pretrained(folder / "scheduler")
    index = {
        "_class_name": "DiTPipeline",
        "transformer": ["diffusers", "DiTTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "id2label": {str(i): f"class {i}" for i in range(num_classes)},
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def make_open_clip(folder: Path, image_size: int = 32) -> Path:
    """An open_clip ``local-dir:`` folder: open_clip_config.json + open_clip_model.safetensors."""
    from open_clip import CLIP
    from safetensors.torch import save_file

    model_cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": image_size, "layers": 1, "width": 32, "patch_size": 8,
                       "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                     "layers": 1},
    }
    torch.manual_seed(0)
    model = CLIP(**model_cfg)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "open_clip_model.safetensors")
    return folder


def _write_clip_tokenizer(folder: Path) -> None:
    """A character-level CLIP BPE tokenizer (vocab.json + merges.txt with no merges)."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = [chr(c) for c in range(33, 127)]
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab_list)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77}))


def make_stable_diffusion(folder: Path) -> Path:
    """A Stable Diffusion folder: unet/, vae/, text_encoder/, tokenizer/, scheduler/."""
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    ).save_pretrained(folder / "unet", safe_serialization=True)
    _tiny_vae().save_pretrained(folder / "vae", safe_serialization=True)
    config = CLIPTextConfig(
        vocab_size=200, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=77,
    )
    CLIPTextModel(config).save_pretrained(folder / "text_encoder", safe_serialization=True)
    _write_clip_tokenizer(folder / "tokenizer")
    EulerDiscreteScheduler(steps_offset=1).save_pretrained(folder / "scheduler")
    index = {"_class_name": "StableDiffusionPipeline"}
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def install_in_hub_cache(folder: Path, repo_id: str, cache_dir: Path) -> Path:
    """Move ``folder`` into ``cache_dir`` as the hub would store ``repo_id``: at the commit the
    catalog pins for that repo (``revision``), or at revision main (a stand-in commit)."""
    commit = pinned_revision(repo_id) or FAKE_COMMIT
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    folder.rename(snapshot)
    return snapshot


def pinned_revision(repo_id: str) -> str | None:
    """The commit hash ``catalog/models.toml`` pins for ``repo_id``, if it pins one."""
    import re
    import tomllib

    toml = Path(__file__).resolve().parent / "catalog" / "models.toml"
    for entry in tomllib.loads(toml.read_text())["model"]:
        revision = entry.get("revision", "main")
        if entry.get("repo") == repo_id and re.fullmatch(r"[0-9a-f]{40}", revision):
            return revision
    return None


def make_pixel_unet(folder: Path, text_encoder_id: str, cross_attention_dim: int = 32) -> Path:
    """Our pixel-space text-to-image folder: unet/, scheduler/, text_encoder.json."""
    from diffusers import DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    UNet2DConditionModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=4,
        norm_num_groups=4,
    ).save_pretrained(folder / "unet", safe_serialization=True)
    DDPMScheduler(beta_schedule="squaredcos_cap_v2").save_pretrained(folder / "scheduler")
    (folder / "text_encoder.json").write_text(json.dumps({"model_id": text_encoder_id}))
    return folder


def make_vae(folder: Path) -> Path:
    """An ``AutoencoderKL`` folder (2x downsampling, 4 latent channels), laid out as shapes-vae."""
    _tiny_vae().save_pretrained(folder, safe_serialization=True)
    return folder


def make_pixart(folder: Path, text_encoder_id: str, caption_channels: int,
                vae_id: str | None = None, sample_size: int = 8) -> Path:
    """A text-conditioned DiT folder as shapes-dit is laid out: transformer/ (a
    ``PixArtTransformer2DModel``), scheduler/, text_encoder.json, and vae.json naming a shared
    autoencoder (or, without ``vae_id``, its own vae/ subfolder)."""
    from diffusers import DDPMScheduler, PixArtTransformer2DModel

    torch.manual_seed(0)
    PixArtTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
        num_layers=2, cross_attention_dim=16, sample_size=sample_size, patch_size=1,
        caption_channels=caption_channels, use_additional_conditions=False,
        interpolation_scale=1,
    ).save_pretrained(folder / "transformer", safe_serialization=True)
    DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                  clip_sample=False, timestep_spacing="trailing").save_pretrained(
        folder / "scheduler")
    (folder / "text_encoder.json").write_text(json.dumps({"model_id": text_encoder_id}))
    if vae_id:
        (folder / "vae.json").write_text(json.dumps({"model_id": vae_id}))
    else:
        _tiny_vae().save_pretrained(folder / "vae", safe_serialization=True)
    return folder


def make_encodec(folder: Path, sampling_rate: int = 24_000) -> Path:
    """An ``EncodecModel`` with ``facebook/encodec_24khz``'s layout and numbers (24 kHz, hop 320:
    75 frames/s, codebooks of 1,024, bandwidths 1.5 to 24 kbit/s = 2 to 32 codebooks) and a few
    channels, plus its feature extractor's config, as the hub folder has. The codebooks (zeros in
    a fresh model) are filled with random vectors so that codes differ."""
    from transformers import EncodecConfig, EncodecFeatureExtractor, EncodecModel

    torch.manual_seed(0)
    config = EncodecConfig(sampling_rate=sampling_rate, num_filters=2, hidden_size=8,
                           num_lstm_layers=1, codebook_size=1024,
                           target_bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0])
    model = EncodecModel(config).eval()
    with torch.no_grad():
        for layer in model.quantizer.layers:
            layer.codebook.embed.copy_(torch.randn_like(layer.codebook.embed))
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    EncodecFeatureExtractor(feature_size=1, sampling_rate=sampling_rate).save_pretrained(folder)
    return folder


def make_clap(folder: Path) -> Path:
    """A transformers ``ClapModel`` in ``laion/clap-htsat-unfused``'s layout (HTS-AT audio tower,
    RoBERTa text tower, ``ClapProcessor`` at 48 kHz with its unfused truncation) with a few
    channels, a byte-level tokenizer of 261 tokens and clips of up to 2 s (the hub model takes
    10 s: its Swin input is 256 wide; 128 here)."""
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for char in bytes_to_unicode().values():
        vocab.setdefault(char, len(vocab))
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    torch.manual_seed(0)
    config = ClapConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=80, projection_dim=16),
        audio_config=dict(spec_size=128, num_mel_bins=64, patch_embeds_hidden_size=8,
                          hidden_size=16, depths=[1, 1], num_attention_heads=[1, 2],
                          window_size=4, projection_dim=16, enable_fusion=False),
        projection_dim=16)
    ClapModel(config).eval().save_pretrained(folder, safe_serialization=True)
    features = ClapFeatureExtractor(feature_size=64, sampling_rate=48_000, hop_length=480,
                                    max_length_s=2, fft_window_size=1024,
                                    truncation="rand_trunc", padding="repeatpad")
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def make_latte(folder: Path, vae_id: str, frames: int = 4, sample_size: int = 4) -> Path:
    """A text-to-video folder as motion-dit is laid out: transformer/ (a
    ``LatteTransformer3DModel``), text_encoder/ (a ``CLIPTextModel`` over the motion world's
    words), text_tokens.json, scheduler/ and vae.json naming a shared autoencoder."""
    from diffusers import DDPMScheduler, LatteTransformer3DModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from mmstudio.pipelines.video import CaptionTokens
    from mmstudio.worlds import motion

    torch.manual_seed(0)
    tokens = CaptionTokens.for_words(motion.VOCABULARY)
    LatteTransformer3DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
        num_layers=2, cross_attention_dim=16, sample_size=sample_size, patch_size=2,
        norm_type="ada_norm_single", num_embeds_ada_norm=1000, caption_channels=16,
        video_length=frames,
    ).save_pretrained(folder / "transformer", safe_serialization=True)
    config = CLIPTextConfig(vocab_size=tokens.vocab_size, hidden_size=16, intermediate_size=32,
                            num_hidden_layers=1, num_attention_heads=2,
                            max_position_embeddings=tokens.length, pad_token_id=0,
                            bos_token_id=1, eos_token_id=2)
    CLIPTextModel(config).save_pretrained(folder / "text_encoder", safe_serialization=True)
    tokens.save(folder)
    DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                  clip_sample=False, timestep_spacing="trailing").save_pretrained(
        folder / "scheduler")
    (folder / "vae.json").write_text(json.dumps({"model_id": vae_id}))
    return folder


def make_text_to_video(folder: Path) -> Path:
    """A ``TextToVideoSDPipeline`` folder as ``text-to-video-ms-1.7b`` is laid out: unet/ (a
    ``UNet3DConditionModel``), vae/, text_encoder/, tokenizer/, scheduler/, model_index.json."""
    from diffusers import DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    UNet3DConditionModel(
        sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(8, 16), layers_per_block=1, cross_attention_dim=16,
        attention_head_dim=4, norm_num_groups=4,
    ).save_pretrained(folder / "unet", safe_serialization=True)
    _tiny_vae().save_pretrained(folder / "vae", safe_serialization=True)
    config = CLIPTextConfig(vocab_size=200, hidden_size=16, intermediate_size=32,
                            num_hidden_layers=1, num_attention_heads=2,
                            max_position_embeddings=77)
    CLIPTextModel(config).save_pretrained(folder / "text_encoder", safe_serialization=True)
    _write_clip_tokenizer(folder / "tokenizer")
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                  clip_sample=False, set_alpha_to_one=False).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "TextToVideoSDPipeline"}))
    return folder
