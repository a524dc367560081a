"""Measure ``shapes-vae`` (or any ``AutoencoderKL`` folder) on the shapes world:
``python -m mmstudio eval shapes-vae [--n 500] [--model-dir DIR] [--json] [--write]``.

On the fixed evaluation set (every attribute combination in a seeded order, held-out colour/shape
pairs included and reported apart), each render is encoded to its latent mean and decoded, as the
DiT tab and the latent diffusion decode do, and:

- ``psnr``: PSNR in dB of the uint8 reconstructions, from the MSE pooled over the set;
- ``agreement``: share of renders whose five attributes the shapes analyzer reads the same from the
  reconstruction as from the original ("attributes kept");
- ``sharpness``: edge sharpness, reconstruction vs original (1.0 = as steep);
- ``latent``: the latent's shape, the compression in numbers, the measured ``scaling_factor`` and
  the standard deviation of scaled latents on the set (about 1 when the factor is right).

Exit code 1 when a target is missed. ``--write`` stores ``metrics.json`` and rewrites the figures
in ``MODEL_CARD.md`` between its markers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstudio.errors import UserError
from mmstudio.evaluation.report import CARD_END, CARD_START, finish
from mmstudio.evaluation.vq import _group
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import EVAL_SEED, eval_set

TARGETS = {"psnr": 32.0, "agreement": 0.99}
BATCH = 100


@torch.inference_mode()
def evaluate_vae(vae: torch.nn.Module, n: int = 500, seed: int = EVAL_SEED) -> dict[str, Any]:
    from mmstudio.training.vae import to_signed, to_uint8

    items = eval_set(shapes, n, seed)
    originals = np.stack([item.sample for item in items])  # (n, 32, 32, 3) uint8
    held = np.array([item.held_out for item in items])
    recons, latents = [], []
    for i in range(0, n, BATCH):
        mean = vae.encode(to_signed(originals[i:i + BATCH])).latent_dist.mean  # (B, 4, 8, 8)
        latents.append(mean)
        recons.append(to_uint8(vae.decode(mean).sample))
    recon = np.concatenate(recons)
    latent = torch.cat(latents)
    agree = np.array([shapes.describe(r) == shapes.describe(o)
                      for r, o in zip(recon, originals, strict=True)])
    overall = _group(originals, recon, agree)
    scale = float(vae.config.scaling_factor)
    metrics: dict[str, Any] = {
        "psnr": overall["psnr"], "agreement": overall["agreement"],
        "sharpness": overall["sharpness"], "psnr_mean_per_image": overall["psnr_mean_per_image"],
        "latent": {"shape": list(latent.shape[1:]), "numbers": int(latent[0].numel()),
                   "compression": round(originals[0].size / latent[0].numel(), 1),
                   "scaling_factor": round(scale, 5),
                   "scaled_std": round(float((latent * scale).std()), 4)},
        "n": n, "n_held_out": int(held.sum()), "seed": seed, "targets": TARGETS,
    }
    if held.any():
        metrics["held_out"] = _group(originals[held], recon[held], agree[held])
        metrics["seen_pairs"] = _group(originals[~held], recon[~held], agree[~held])
    return metrics


def passed(metrics: dict[str, Any]) -> dict[str, bool]:
    return {name: metrics[name] >= target for name, target in TARGETS.items()}


def card_table(metrics: dict[str, Any]) -> str:
    held = metrics.get("held_out", {})
    seen = metrics.get("seen_pairs", {})
    latent = metrics["latent"]
    rows = [
        ("PSNR (dB, pooled MSE)", f"{metrics['psnr']:.2f}", f"{seen.get('psnr', 0):.2f}",
         f"{held.get('psnr', 0):.2f}", f">= {TARGETS['psnr']:.0f}"),
        ("attributes kept (analyzer)", f"{metrics['agreement']:.1%}",
         f"{seen.get('agreement', 0):.1%}", f"{held.get('agreement', 0):.1%}",
         f">= {TARGETS['agreement']:.0%}"),
        ("edge sharpness (1 = as sharp)", f"{metrics['sharpness']:.3f}",
         f"{seen.get('sharpness', 0):.3f}", f"{held.get('sharpness', 0):.3f}", ""),
    ]
    lines = [CARD_START, "", f"Measured on {metrics['n']} evaluation renders "
             f"({metrics['n_held_out']} of held-out colour/shape pairs), seed {metrics['seed']}; "
             f"latent {' x '.join(map(str, latent['shape']))} = {latent['numbers']} numbers "
             f"({latent['compression']}x fewer than the image's), scaling factor "
             f"{latent['scaling_factor']} (scaled latents on this set: std "
             f"{latent['scaled_std']}).", "",
             "| figure | all | seen pairs | held-out pairs | target |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    if metrics.get("train_overlap"):
        from mmstudio.evaluation.overlap import sentence

        lines += ["", sentence(metrics["train_overlap"])]
    return "\n".join(lines + ["", CARD_END])


def main(model_id: str, argv: list[str]) -> int:
    from diffusers import AutoencoderKL

    parser = argparse.ArgumentParser(prog=f"python -m mmstudio eval {model_id}")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="an AutoencoderKL folder (default: the catalog's)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write", action="store_true",
                        help="store metrics.json and the figures in MODEL_CARD.md")
    args = parser.parse_args(argv)
    if args.n < 1:
        raise UserError("--n must be at least 1")
    if args.model_dir is None:
        from mmstudio.catalog import Catalog
        from mmstudio.config import Settings

        folder = Catalog.load(Settings.from_env()).resolve(model_id)
    else:
        folder = args.model_dir
    if not (Path(folder) / "config.json").is_file():
        raise UserError(f"{folder} holds no AutoencoderKL (config.json)")
    vae = AutoencoderKL.from_pretrained(folder, use_safetensors=True).eval()
    metrics = evaluate_vae(vae, args.n, args.seed)
    if args.model_dir is None:  # the shipped model: its training stream is recorded
        from mmstudio.evaluation.overlap import for_model

        metrics["train_overlap"] = for_model(model_id, args.n, args.seed)
    return finish(metrics, TARGETS, Path(folder), card_table, args.write, args.json)
