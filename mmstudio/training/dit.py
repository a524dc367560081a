"""Train ``shapes-dit``: a text-conditioned Diffusion Transformer on ``shapes-vae`` latents.

The model is diffusers' ``PixArtTransformer2DModel`` (Chen et al. 2023, "PixArt-alpha"): DiT blocks
(Peebles & Xie 2023, "Scalable Diffusion Models with Transformers") with adaLN-single timestep
modulation and cross-attention to text states. The 8 x 8 x 4 latent of a 32 x 32 image is cut into
1 x 1 patches: 64 tokens, each a latent cell, with a fixed 2-D sin-cos position embedding.
Conditioning: the per-token states of the frozen ``shapes-clip`` text tower, as ``shapes-unet``'s,
with the padding after the end-of-text token masked out, so cross-attention can only look at the
prompt's words (which also makes the per-word attention maps mean what they say).

Objective: v-prediction on a cosine schedule (Salimans & Ho 2022; Nichol & Dhariwal 2021), plain
v-loss, caption dropout for classifier-free guidance (Ho & Salimans 2022), an EMA of the weights.
Latents are ``vae.encode(x).latent_dist.mean * scaling_factor`` of fresh world renders (train split:
no held-out pair).

    python -m mmstudio train shapes-dit [--steps N] [--resume] [--out DIR]

Resumable: a checkpoint goes to ``--run`` every ``--save-minutes``; ``--resume`` continues. The
exported folder (transformer/ safetensors, scheduler/, text_encoder.json, vae.json, training.json)
goes to ``--out``, by default ``RUN/export`` (never the shipped assets unless asked).
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

log = logging.getLogger("mmstudio.train.dit")

MODEL_ID = "shapes-dit"

#: The PixArt config: 4 layers, 4 heads of 32, patch 1 over an 8 x 8 x 4 latent.
ARCHITECTURE: dict[str, Any] = {
    "num_attention_heads": 4,
    "attention_head_dim": 32,
    "in_channels": 4,
    "out_channels": 4,
    "num_layers": 4,
    "cross_attention_dim": 128,  # = heads x head_dim: PixArt projects the caption to its width
    "sample_size": 8,
    "patch_size": 1,
    "norm_type": "ada_norm_single",
    "num_embeds_ada_norm": 1000,
    "use_additional_conditions": False,
    "interpolation_scale": 1,
}


def build_dit(caption_channels: int, **overrides: Any) -> torch.nn.Module:
    from diffusers import PixArtTransformer2DModel

    config = {**ARCHITECTURE, **overrides}
    config["cross_attention_dim"] = config["num_attention_heads"] * config["attention_head_dim"]
    return PixArtTransformer2DModel(caption_channels=caption_channels, **config)


def make_train_scheduler():
    """The cosine v-prediction schedule of shapes-unet, without clipping: latents are unbounded."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                         prediction_type="v_prediction", clip_sample=False,
                         timestep_spacing="trailing")


class MaskedCaptionStates:
    """Token states and padding masks of the frozen text tower, cached per caption."""

    def __init__(self, clip_model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = clip_model, tokenizer
        self.cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from mmstudio.pipelines.text import open_clip_token_mask, open_clip_token_states

        missing = sorted({c for c in captions if c not in self.cache})
        if missing:
            states = open_clip_token_states(self.model, self.tokenizer, missing)
            masks = open_clip_token_mask(self.tokenizer, missing)
            self.cache.update(zip(missing, zip(states, masks, strict=True), strict=True))
        states, masks = zip(*(self.cache[c] for c in captions), strict=True)
        return torch.stack(states), torch.stack(masks)  # (B, L, D), (B, L)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m mmstudio train {MODEL_ID}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=30_000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--layers", type=int, default=ARCHITECTURE["num_layers"])
    p.add_argument("--heads", type=int, default=ARCHITECTURE["num_attention_heads"])
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--p-empty", type=float, default=0.1, help="caption dropout (for guidance)")
    p.add_argument("--p-shorten", type=float, default=0.5, help="share of shortened captions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clip", default="shapes-clip", help="catalog id of the text encoder")
    p.add_argument("--vae", default="shapes-vae",
                   help="catalog id of the autoencoder, or a path to an AutoencoderKL folder")
    p.add_argument("--run", type=Path, default=REPO_ROOT / "runs" / MODEL_ID)
    p.add_argument("--out", type=Path, default=None, help="export folder (default RUN/export)")
    p.add_argument("--save-minutes", type=float, default=3.0)
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="run eagerly (torch.compile makes a step about 2-3x faster on a CPU, "
                        "after a minute or two of compiling)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        raise UserError("--steps and --batch must be at least 1")
    args.out = args.out or args.run / "export"
    args.command = " ".join(["python -m mmstudio train", MODEL_ID, *argv])
    return args


def load_vae(manager: Any, name: str) -> tuple[torch.nn.Module, str]:
    """The autoencoder by catalog id, or from an ``AutoencoderKL`` folder; and the id to record."""
    from diffusers import AutoencoderKL

    if Path(name).is_dir():
        return AutoencoderKL.from_pretrained(name, use_safetensors=True), "shapes-vae"
    return manager.get(name)["vae"], name


def main(model_id: str, argv: list[str]) -> int:
    from mmstudio.manager import ModelManager
    from mmstudio.training.unet import _weights_digest, learning_rate
    from mmstudio.training.vae import to_signed
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
    clip = manager.get(args.clip)
    args.clip_sha256 = _weights_digest(manager.catalog.resolve(args.clip))
    text_states = MaskedCaptionStates(clip["model"].float().to(device), clip["tokenizer"])
    vae, args.vae_id = load_vae(manager, args.vae)
    vae = vae.float().to(device).eval().requires_grad_(False)
    scale = float(vae.config.scaling_factor)
    width = int(text_states([""])[0].shape[-1])
    dit = build_dit(width, num_layers=args.layers, num_attention_heads=args.heads).to(device)
    ema = copy.deepcopy(dit).requires_grad_(False)
    optimizer = torch.optim.AdamW(dit.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = make_train_scheduler()
    Path(args.run).mkdir(parents=True, exist_ok=True)
    start, elapsed, history = 0, 0.0, []
    if args.resume:
        state = load_checkpoint(ckpt, {"dit": dit, "ema": ema}, {"adamw": optimizer})
        start, elapsed = int(state["step"]), float(state["elapsed"])
        history = list(state.get("history", []))
        log.info("resumed from step %d", start)
    history.append({"from_step": start, "command": args.command})
    sampler = WorldSampler("shapes", seed=args.seed * 1_000_003 + start,
                           p_shorten=args.p_shorten, p_empty=args.p_empty, split="train")
    generator = torch.Generator().manual_seed(args.seed * 7919 + start)
    params = sum(p.numel() for p in dit.parameters())
    log.info("%s: %.2f M parameters, %d layers, text width %d, batch %d, latent scale %.4f",
             MODEL_ID, params / 1e6, args.layers, width, args.batch, scale)
    no_added = {"resolution": None, "aspect_ratio": None}

    def velocity(x_t: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor,
                 t: torch.Tensor) -> torch.Tensor:
        return dit(x_t, encoder_hidden_states=cond, timestep=t, encoder_attention_mask=mask,
                   added_cond_kwargs=no_added).sample

    predict = torch.compile(velocity) if args.compile else velocity
    save_timer = Every(args.save_minutes * 60)
    t0 = time.perf_counter()

    def save(step: int) -> None:
        save_checkpoint(ckpt, {"dit": dit, "ema": ema}, {"adamw": optimizer},
                        {"step": step, "elapsed": elapsed + time.perf_counter() - t0,
                         "history": history})
        export(ema, args, step, elapsed + time.perf_counter() - t0, history)

    running, step = 0.0, start
    for step in range(start, args.steps):
        batch = sampler.batch(args.batch)
        with torch.no_grad():
            x = to_signed(batch.samples).to(device)  # (B, 3, 32, 32)
            x0 = vae.encode(x).latent_dist.mean * scale  # (B, 4, 8, 8)
        cond, mask = text_states(batch.captions)  # (B, L, D), (B, L)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        t = torch.randint(0, 1000, (args.batch,), generator=generator).to(device)
        x_t = scheduler.add_noise(x0, noise, t)
        target = scheduler.get_velocity(x0, noise, t)
        pred = predict(x_t, cond.to(device), mask.to(device), t)
        loss = (pred - target).pow(2).mean()
        lr = learning_rate(step, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            decay = min(args.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(list(ema.parameters()), list(dit.parameters()), 1 - decay)
        running = 0.98 * running + 0.02 * loss.item() if step > start else loss.item()
        if (step + 1) % 50 == 0:
            rate = (step + 1 - start) / (time.perf_counter() - t0)
            log.info("step %d/%d loss %.4f lr %.2e %.2f it/s eta %.0f min", step + 1,
                     args.steps, running, lr, rate, (args.steps - step - 1) / rate / 60)
        if save_timer():
            save(step + 1)
    save(max(step + 1, start))
    log.info("done: %s; measure it with `python -m mmstudio eval %s --model-dir %s`",
             args.out, MODEL_ID, args.out)
    return 0


def export(ema: torch.nn.Module, args: argparse.Namespace, step: int, seconds: float,
           history: list) -> None:
    """The library-native folder: transformer/ (safetensors), scheduler/, the component ids."""
    out = Path(args.out)
    model = copy.deepcopy(ema).to("cpu", torch.float32)
    model.save_pretrained(out / "transformer", safe_serialization=True)
    make_train_scheduler().save_pretrained(out / "scheduler")
    (out / "text_encoder.json").write_text(json.dumps({"model_id": args.clip}) + "\n")
    (out / "vae.json").write_text(json.dumps({"model_id": args.vae_id}) + "\n")
    (out / "training.json").write_text(json.dumps(
        {"step": step, "steps": args.steps, "batch": args.batch, "lr": args.lr,
         "layers": args.layers, "heads": args.heads, "ema": args.ema, "p_empty": args.p_empty,
         "p_shorten": args.p_shorten, "seed": args.seed, "text_encoder": args.clip,
         "text_encoder_sha256": args.clip_sha256, "vae": args.vae_id,
         "train_seconds": round(seconds, 1), "history": history}, indent=2) + "\n")
