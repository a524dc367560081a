"""Train ``motion-dit``: text-to-video latent diffusion on the motion world.

The model is diffusers' ``LatteTransformer3DModel`` (Ma et al. 2024, "Latte"): each of the 16 frames
is encoded by the frozen ``shapes-vae`` (32 x 32 x 3 -> 8 x 8 x 4, scaled), cut into 2 x 2 patches
(16 per frame), and the transformer (4 layers, width 64) alternates spatial blocks (the patches of
one frame, with cross-attention to the caption) and temporal blocks (one patch position across the
16 frames), with adaLN-single timestep modulation (PixArt). The text tower is a small transformers
``CLIPTextModel`` trained with it from scratch on the motion captions (its ids: the open_clip ids of
the world's words, ``pipelines.video.CaptionTokens``): the shapes text tower never read "moving",
"left" or "up".

Objective: v-prediction on a cosine schedule (Salimans & Ho 2022; Nichol & Dhariwal 2021), caption
dropout for classifier-free guidance, an EMA of the weights (both networks). Clips are fresh world
renders of the train split (no held-out colour / shape pair).

    python -m mmstudio train motion-dit [--steps N] [--resume] [--out DIR] [--device cuda]

Resumable: a checkpoint goes to ``--run`` every ``--save-minutes``; ``--resume`` continues. The
export (transformer/ and text_encoder/ in safetensors, text_tokens.json, scheduler/, vae.json,
training.json) goes to ``--out``, by default ``RUN/export``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from mmstudio.config import REPO_ROOT
from mmstudio.errors import UserError
from mmstudio.training.checkpoint import Every, load_checkpoint, save_checkpoint

log = logging.getLogger("mmstudio.train.motion")

MODEL_ID = "motion-dit"

#: The Latte config: 4 spatial + 4 temporal blocks, 2 heads of 32, patch 2 over 8 x 8 x 4 latents:
#: 0.66 M parameters. Sized for training on two CPU cores: a step of 32 clips (256 tokens each)
#: costs 0.7 s at width 64, 1.5 s at 96, 2.6 s at 128 on one core.
ARCHITECTURE: dict[str, Any] = {
    "num_attention_heads": 2,
    "attention_head_dim": 32,
    "in_channels": 4,
    "out_channels": 4,
    "num_layers": 4,
    "sample_size": 8,
    "patch_size": 2,
    "norm_type": "ada_norm_single",
    "num_embeds_ada_norm": 1000,
    "video_length": 16,
}
#: The text tower: 2 layers of width 64, 4 heads, 16 positions (the longest motion caption is 12
#: tokens with start and end).
TEXT: dict[str, Any] = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "intermediate_size": 256, "max_position_embeddings": 16}


def build_latte(caption_channels: int, **overrides: Any) -> torch.nn.Module:
    from diffusers import LatteTransformer3DModel

    config = {**ARCHITECTURE, **overrides}
    config["cross_attention_dim"] = config["num_attention_heads"] * config["attention_head_dim"]
    return LatteTransformer3DModel(caption_channels=caption_channels, **config)


def build_text_encoder(vocab_size: int, **overrides: Any) -> torch.nn.Module:
    """A fresh text tower whose word embeddings start at unit norm (``word_embedding_std``).

    CLIP's own initialisation (std 0.02: norm 0.16 at width 64) left the four direction words
    where they started: a run to step 5,850 had learned colour, shape and background (their
    embeddings grew to norm 0.37) while the text states of "left" and "right" still differed by
    0.19 and the transformer's output by 0.07 (colour: 24), so every direction word gave the same
    clip. Started apart, the words reach the text states from the first step; that alone did
    not teach the direction (a second run lost it again by step 2,119: the caption projection
    learned to drop what the denoiser could not use yet; see the model card)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=vocab_size, pad_token_id=0, bos_token_id=1,
                            eos_token_id=2, **{**TEXT, **overrides})
    model = CLIPTextModel(config)
    torch.nn.init.normal_(model.get_input_embeddings().weight,
                          std=word_embedding_std(config.hidden_size))
    return model


def word_embedding_std(hidden_size: int) -> float:
    """1 / sqrt(width): each word's embedding starts at norm about 1."""
    return hidden_size ** -0.5


def make_train_scheduler():
    """The cosine v-prediction schedule of shapes-dit (latents are unbounded: no clipping)."""
    from mmstudio.training.dit import make_train_scheduler as dit_scheduler

    return dit_scheduler()


#: Where ``--high-noise`` draws its timesteps from.
HIGH_NOISE_FROM = 700


def sample_timesteps(batch: int, high_noise: float, generator: torch.Generator) -> torch.Tensor:
    """Training timesteps: uniform over 0-999, except a share ``high_noise`` of the batch drawn
    from ``HIGH_NOISE_FROM``-999.

    Why: the 16 frames show the same object, so its track can be read from x_t up to a far
    higher noise level than one frame's shape; the caption's direction only matters where the
    track cannot be read, the noisiest few steps, which uniform sampling visits rarely. The
    first sampling steps then pick the direction from the noise instead of the caption."""
    t = torch.randint(0, 1000, (batch,), generator=generator)
    high = torch.randint(HIGH_NOISE_FROM, 1000, (batch,), generator=generator)
    pick = torch.rand(batch, generator=generator) < high_noise
    return torch.where(pick, high, t)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m mmstudio train {MODEL_ID}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--layers", type=int, default=ARCHITECTURE["num_layers"])
    p.add_argument("--heads", type=int, default=ARCHITECTURE["num_attention_heads"])
    p.add_argument("--patch", type=int, default=ARCHITECTURE["patch_size"])
    p.add_argument("--head-dim", type=int, default=ARCHITECTURE["attention_head_dim"])
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--p-empty", type=float, default=0.1, help="caption dropout (for guidance)")
    p.add_argument("--high-noise", type=float, default=0.0,
                   help="share of each batch whose timestep is drawn from the noisiest "
                        f"{HIGH_NOISE_FROM}-999 instead of 0-999 (see sample_timesteps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vae", default="shapes-vae",
                   help="catalog id of the autoencoder, or a path to an AutoencoderKL folder")
    p.add_argument("--check-every", type=int, default=1000,
                   help="steps between adherence checks in the log (0: none)")
    p.add_argument("--check-prompts", type=int, default=32)
    p.add_argument("--check-guidance", type=float, default=3.0)
    p.add_argument("--run", type=Path, default=REPO_ROOT / "runs" / MODEL_ID)
    p.add_argument("--out", type=Path, default=None, help="export folder (default RUN/export)")
    p.add_argument("--save-minutes", type=float, default=3.0)
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        raise UserError("--steps and --batch must be at least 1")
    args.out = args.out or args.run / "export"
    args.command = " ".join(["python -m mmstudio train", MODEL_ID, *argv])
    return args


class FrameLatents:
    """The frozen autoencoder's latents of clips' frames, cached by each frame's pixels.

    A motion clip is one sprite at 16 positions, so the world has only about 200,000 distinct
    frames (colour x shape x background x radius x centre): after the first few thousand clips
    most frames of a batch have been encoded before, and the encoder (as costly per step as the
    transformer) drops out of the step time. Exact: a frame's latent depends on its pixels only.
    """

    def __init__(self, vae: Any, device: torch.device) -> None:
        self.vae, self.device = vae, device
        self.cache: dict[bytes, torch.Tensor] = {}

    def __call__(self, clips: Any) -> torch.Tensor:
        """(B, F, H, W, 3) uint8 -> (B, C, F, h, w) scaled latents on the device."""
        import hashlib

        import numpy as np

        from mmstudio.pipelines.video import batch_to_frames, frames_to_batch

        b, f = clips.shape[:2]
        frames = np.ascontiguousarray(clips).reshape(b * f, *clips.shape[2:])
        keys = [hashlib.blake2b(frame.tobytes(), digest_size=16).digest() for frame in frames]
        missing = {key: i for i, key in enumerate(keys) if key not in self.cache}
        if missing:
            from mmstudio.pipelines.video import clips_to_signed, encode_frames

            picked = frames[list(missing.values())][None]  # (1, M, H, W, 3): one "clip"
            latents = encode_frames(self.vae, clips_to_signed(picked).to(self.device))
            for key, latent in zip(missing, frames_to_batch(latents), strict=True):
                self.cache[key] = latent.cpu()
        stacked = torch.stack([self.cache[key] for key in keys])  # (B F, C, h, w)
        return batch_to_frames(stacked, f).to(self.device)


class Trainee(torch.nn.Module):
    """The two networks trained together (one optimiser, one EMA, one checkpoint)."""

    def __init__(self, transformer: torch.nn.Module, text_encoder: torch.nn.Module) -> None:
        super().__init__()
        self.transformer, self.text_encoder = transformer, text_encoder


def main(model_id: str, argv: list[str]) -> int:
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.video import (
        CaptionTokens,
        cross_attention_bias,
        text_states,
    )
    from mmstudio.training.dit import load_vae
    from mmstudio.training.unet import learning_rate
    from mmstudio.worlds import motion
    from mmstudio.worlds.datasets import WorldSampler

    if model_id != MODEL_ID:
        raise UserError(f"this trainer makes {MODEL_ID}, not {model_id}")
    args = parse_args(argv)
    ckpt = Path(args.run) / "checkpoint"
    if args.resume and not (ckpt / "state.json").is_file():
        raise UserError(f"--resume: there is no checkpoint in {ckpt}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    manager = ModelManager()
    vae, args.vae_id = load_vae(manager, args.vae)
    vae = vae.float().to(device).eval().requires_grad_(False)
    tokens = CaptionTokens.for_words(motion.VOCABULARY)
    text_encoder = build_text_encoder(tokens.vocab_size)
    latte = build_latte(TEXT["hidden_size"], num_layers=args.layers,
                        num_attention_heads=args.heads, attention_head_dim=args.head_dim,
                        patch_size=args.patch)
    model = Trainee(latte, text_encoder).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = make_train_scheduler()
    Path(args.run).mkdir(parents=True, exist_ok=True)
    start, elapsed, history, checks = 0, 0.0, [], []
    if args.resume:
        state = load_checkpoint(ckpt, {"model": model, "ema": ema}, {"adamw": optimizer})
        start, elapsed = int(state["step"]), float(state["elapsed"])
        history, checks = list(state.get("history", [])), list(state.get("checks", []))
        log.info("resumed from step %d", start)
    history.append({"from_step": start, "command": args.command})
    sampler = WorldSampler(motion, seed=args.seed * 1_000_003 + start, p_empty=args.p_empty,
                           split="train")
    generator = torch.Generator().manual_seed(args.seed * 7919 + start)
    log.info("%s: %.2f M parameters (transformer %.2f M, text %.2f M), %d layers, patch %d, "
             "batch %d, %d text ids", MODEL_ID, _count(model) / 1e6, _count(latte) / 1e6,
             _count(text_encoder) / 1e6, args.layers, args.patch, args.batch, tokens.vocab_size)
    frame_latents = FrameLatents(vae, device)
    save_timer = Every(args.save_minutes * 60)
    t0 = time.perf_counter()

    def save(step: int) -> None:
        seconds = elapsed + time.perf_counter() - t0
        save_checkpoint(ckpt, {"model": model, "ema": ema}, {"adamw": optimizer},
                        {"step": step, "elapsed": seconds, "history": history,
                         "checks": checks})
        export(ema, tokens, args, step, seconds, history, checks)

    running, step = 0.0, start
    for step in range(start, args.steps):
        model.train()
        batch = sampler.batch(args.batch)
        x0 = frame_latents(batch.samples)  # (B, 4, 16, 8, 8)
        states, mask = text_states(model.text_encoder, tokens, batch.captions)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        t = sample_timesteps(args.batch, args.high_noise, generator).to(device)
        x_t = scheduler.add_noise(x0, noise, t)
        target = scheduler.get_velocity(x0, noise, t)
        pred = model.transformer(x_t, timestep=t, encoder_hidden_states=states,
                                 encoder_attention_mask=cross_attention_bias(
                                     mask, x0.shape[2], states.dtype)).sample
        loss = (pred - target).pow(2).mean()
        lr = learning_rate(step, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            decay = min(args.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
        running = 0.98 * running + 0.02 * loss.item() if step > start else loss.item()
        if (step + 1) % 50 == 0:
            rate = (step + 1 - start) / (time.perf_counter() - t0)
            log.info("step %d/%d loss %.4f lr %.2e %.2f it/s eta %.0f min", step + 1,
                     args.steps, running, lr, rate, (args.steps - step - 1) / rate / 60)
        if args.check_every and (step + 1) % args.check_every == 0:
            checks.append({"step": step + 1, **quick_check(ema, tokens, vae, args)})
            log.info("check at step %d: %s", step + 1, json.dumps(checks[-1]))
        if save_timer():
            save(step + 1)
    save(max(step + 1, start))
    log.info("done: %s; measure it with `python -m mmstudio eval %s --model-dir %s`",
             args.out, MODEL_ID, args.out)
    return 0


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def quick_check(ema: Trainee, tokens: Any, vae: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Adherence and direction on a few evaluation prompts (25 DDIM steps), for the log: enough
    to see early whether the run learns; ``eval`` measures the shipped figures."""
    from mmstudio.evaluation.motion import direction_probe, measure_clips
    from mmstudio.pipelines.denoise import DenoiseSettings, run
    from mmstudio.pipelines.video import LatteDenoiser
    from mmstudio.worlds import motion
    from mmstudio.worlds.datasets import eval_attrs

    transformer = copy.deepcopy(ema.transformer).eval()
    from mmstudio.pipelines.attention import install_recording_processors

    install_recording_processors(transformer)
    denoiser = LatteDenoiser({"transformer": transformer, "text_encoder": ema.text_encoder.eval(),
                              "tokens": tokens,
                              "scheduler_config": dict(make_train_scheduler().config)}, vae)

    def generate(captions: list[str], seed: int) -> Any:
        settings = DenoiseSettings(tuple(captions), steps=25, guidance=args.check_guidance,
                                   seed=seed)
        return run(denoiser, settings).images

    figures = measure_clips(generate, eval_attrs(motion, args.check_prompts, seed=20_240), 0,
                            args.check_prompts)
    return {**{k: figures[k] for k in ("adherence", "direction_accuracy", "attribute_accuracy",
                                       "frame_consistency", "seconds")},
            **direction_probe(generate)}


def export(ema: Trainee, tokens: Any, args: argparse.Namespace, step: int, seconds: float,
           history: list, checks: list) -> None:
    """The library-native folder (float32 safetensors, 2.7 MB at the default size)."""
    out = Path(args.out)
    model = copy.deepcopy(ema).to("cpu", torch.float32)
    model.transformer.save_pretrained(out / "transformer", safe_serialization=True)
    model.text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
    tokens.save(out)
    make_train_scheduler().save_pretrained(out / "scheduler")
    (out / "vae.json").write_text(json.dumps({"model_id": args.vae_id}) + "\n")
    (out / "training.json").write_text(json.dumps(
        {"step": step, "steps": args.steps, "batch": args.batch, "lr": args.lr,
         "layers": args.layers, "heads": args.heads, "head_dim": args.head_dim,
         "patch": args.patch, "ema": args.ema,
         "p_empty": args.p_empty, "high_noise": args.high_noise, "seed": args.seed,
         "vae": args.vae_id,
         "train_seconds": round(seconds, 1), "checks": checks, "history": history},
        indent=2) + "\n")
