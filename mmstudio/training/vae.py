"""Train ``shapes-vae``: a diffusers ``AutoencoderKL`` for latent diffusion on the shapes world.

32 x 32 x 3 images in [-1, 1] -> an 8 x 8 x 4 latent (two 2x downsamplings) -> back; the KL
autoencoder of latent diffusion (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
Diffusion Models"): L1 + MSE pixel losses, a Sobel edge loss (crisp edges: the shapes analyzer reads
geometry to a fraction of a pixel), and a small KL term towards N(0, 1) that keeps the latent space
smooth and bounded, so that a diffusion model can learn it. The posterior's log-variance starts at
``--logvar-init`` (-8): with the default init (variance 1) the decoder sees latents drowned in
sampling noise and learns only averaged colours for the first thousand steps (measured: 18.4 dB at
step 950, colours washed out), while the tiny KL weight barely pushes the variance down.
After training, the ``scaling_factor`` is computed from the data as Stable Diffusion's was: 1 / std
of the latents of 4,096 training renders, so that scaled latents have unit variance, as the
diffusion noise has.

    python -m mmstudio train shapes-vae [--steps N] [--resume] [--out DIR]

Resumable: a checkpoint is written to ``--run`` every ``--save-every`` seconds; ``--resume``
continues from it. The batch of step ``s`` is rendered from its own seed (train split: no held-out
pair), so a resumed run sees the same data. The exported folder (``save_pretrained``, safetensors)
goes to ``--out``, by default ``runs/shapes-vae/export`` (never the shipped assets unless asked).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmstudio.config import REPO_ROOT
from mmstudio.errors import UserError
from mmstudio.pipelines.tokenize import psnr, sobel_magnitude
from mmstudio.training.checkpoint import Every, load_checkpoint, save_checkpoint
from mmstudio.training.vq import batch_for_step, lr_at

log = logging.getLogger("mmstudio.train.vae")

MODEL_ID = "shapes-vae"

#: The ``AutoencoderKL`` config. No attention in the mid block: the images are tiny and local.
ARCHITECTURE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 16,
    "sample_size": 32,
    "scaling_factor": 1.0,
    "mid_block_add_attention": False,
    "force_upcast": False,
}


def build_vae(architecture: dict[str, Any] | None = None) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    return AutoencoderKL(**(architecture or ARCHITECTURE))


def to_signed(samples: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1] (Stable Diffusion's VAE range)."""
    return torch.from_numpy(np.ascontiguousarray(samples)).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def measure_scaling_factor(vae: torch.nn.Module, seed: int, n: int = 4096) -> float:
    """1 / std of the latent means of ``n`` training renders (as Stable Diffusion's 0.18215)."""
    latents = []
    for i in range(0, n, 256):
        x = to_signed(batch_for_step(seed + 424_242, i, min(256, n - i)))
        latents.append(vae.encode(x).latent_dist.mean)
    return float(1.0 / torch.cat(latents).std())


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m mmstudio train {MODEL_ID}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--kl-weight", type=float, default=1e-4,
                   help="weight of the KL term (mean over latent elements)")
    p.add_argument("--edge-weight", type=float, default=1.0, help="weight of the Sobel edge loss")
    p.add_argument("--mse-weight", type=float, default=1.0,
                   help="weight of an MSE term beside the L1 (large colour errors cost more)")
    p.add_argument("--logvar-init", type=float, default=-8.0,
                   help="initial log-variance of the posterior (bias of quant_conv's second half)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run", type=Path, default=REPO_ROOT / "runs" / MODEL_ID)
    p.add_argument("--out", type=Path, default=None,
                   help="exported AutoencoderKL folder (default RUN/export; the shipped model is "
                        "assets/models/shapes-vae)")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--save-every", type=float, default=180.0, help="seconds between checkpoints")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--export-every", type=int, default=1000,
                   help="also export (with a fresh scaling factor) every this many steps")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="run eagerly (torch.compile is several times faster on a CPU)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        raise UserError("--steps and --batch must be at least 1")
    args.out = args.out or args.run / "export"
    args.command = " ".join(["python -m mmstudio train", MODEL_ID, *argv])
    return args


def export(vae: torch.nn.Module, args: argparse.Namespace, step: int, summary: dict) -> Path:
    """The ``save_pretrained`` folder with the measured ``scaling_factor``, and training.json."""
    import copy

    model = copy.deepcopy(vae).cpu().eval()
    scale = measure_scaling_factor(model, args.seed)
    model.register_to_config(scaling_factor=scale)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    (out / "training.json").write_text(json.dumps(
        {**summary, "step": step, "scaling_factor": scale}, indent=2) + "\n")
    log.info("exported step %d to %s (scaling factor %.4f)", step, out, scale)
    return out


def main(model_id: str, argv: list[str]) -> int:
    if model_id != MODEL_ID:
        raise UserError(f"this trainer makes {MODEL_ID}, not {model_id}")
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    vae = build_vae().to(device).train()
    with torch.no_grad():  # start nearly deterministic (see the module docstring)
        vae.quant_conv.bias[ARCHITECTURE["latent_channels"]:] += args.logvar_init
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0,
                                  betas=(0.9, 0.99))
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / "checkpoint"
    start, elapsed, history = 0, 0.0, []
    if args.resume:
        if not (ckpt / "state.json").is_file():
            raise UserError(f"--resume: there is no checkpoint in {ckpt}")
        state = load_checkpoint(ckpt, {"vae": vae}, {"adamw": optimizer})
        start, elapsed = int(state["step"]), float(state["elapsed"])
        history = list(state.get("history", []))
        log.info("resumed from %s at step %d", ckpt, start)
    history.append({"from_step": start, "command": args.command})
    params = sum(p.numel() for p in vae.parameters())
    log.info("%s: %.2f M parameters, %d steps of %d, lr %.1e, kl %.0e, edge %.1f", MODEL_ID,
             params / 1e6, args.steps, args.batch, args.lr, args.kl_weight, args.edge_weight)

    def autoencode(x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        moments = vae.quant_conv(vae.encoder(x))  # (B, 8, 8, 8): mean and log-variance
        mean, logvar = moments.chunk(2, dim=1)
        logvar = logvar.clamp(-30.0, 20.0)
        z = mean + torch.exp(0.5 * logvar) * noise  # reparameterised sample
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
        return vae.decoder(vae.post_quant_conv(z)), kl

    forward = torch.compile(autoencode) if args.compile else autoencode
    summary = {"model_id": MODEL_ID, "batch": args.batch, "lr": args.lr, "seed": args.seed,
               "kl_weight": args.kl_weight, "edge_weight": args.edge_weight,
               "logvar_init": args.logvar_init, "mse_weight": args.mse_weight,
               "steps": args.steps, "history": history,
               "loss": "L1 + mse_weight * MSE + edge_weight * L1(Sobel) + kl_weight * KL "
                       "(means over elements)"}
    save_timer = Every(args.save_every)
    t0, smooth = time.perf_counter(), {}
    generator = torch.Generator().manual_seed(args.seed)

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt, {"vae": vae}, {"adamw": optimizer},
                        {"step": step, "elapsed": elapsed + time.perf_counter() - t0,
                         "history": history})
        log.info("checkpoint at step %d -> %s", step, ckpt)

    step = start
    for step in range(start, args.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        x = to_signed(batch_for_step(args.seed, step, args.batch)).to(device)  # (B, 3, 32, 32)
        generator.manual_seed(args.seed * 1_000_003 + step)
        noise = torch.randn((args.batch, 4, 8, 8), generator=generator).to(device)
        recon, kl = forward(x, noise)
        rec = F.l1_loss(recon, x) + args.mse_weight * F.mse_loss(recon, x)
        edge = F.l1_loss(sobel_magnitude(recon * 0.5 + 0.5), sobel_magnitude(x * 0.5 + 0.5))
        loss = rec + args.edge_weight * edge + args.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        stats = {"rec": rec.item(), "edge": edge.item(), "kl": kl.item(),
                 "psnr": psnr(to_uint8(x), to_uint8(recon))}
        smooth = {k: v if k not in smooth else 0.95 * smooth[k] + 0.05 * v
                  for k, v in stats.items()}
        if (step + 1) % args.log_every == 0:
            rate = (step + 1 - start) / (time.perf_counter() - t0)
            log.info("step %d/%d %s lr %.2e %.2f it/s", step + 1, args.steps,
                     " ".join(f"{k} {v:.4g}" for k, v in smooth.items()),
                     optimizer.param_groups[0]["lr"], rate)
        if save_timer():
            checkpoint(step + 1)
        if args.export_every and (step + 1) % args.export_every == 0:
            export(vae, args, step + 1, summary)
    step = max(step + 1, start)
    checkpoint(step)
    summary["train_seconds"] = round(elapsed + time.perf_counter() - t0, 1)
    summary["final_train_stats"] = {k: round(v, 4) for k, v in smooth.items()}
    folder = export(vae, args, step, summary)
    log.info("done; measure it with `python -m mmstudio eval %s --model-dir %s --write`",
             MODEL_ID, folder)
    return 0
