"""Measure ``shapes-vqvae`` / ``shapes-vqgan`` (or any VQModel folder) on the shapes world:
``python -m mmstudio eval shapes-vqvae [--n 500] [--json] [--write]``.

On the fixed evaluation set (``worlds.datasets.eval_set``, every attribute combination in a seeded
order, held-out color/shape pairs included and also reported apart), each render is tokenized and
decoded by the same ``pipelines.tokenize`` code the Tokenize tab runs, and:

- ``psnr``: PSNR in dB over [0, 255] of the uint8 reconstruction, from the mean squared error
  pooled over every pixel of the set (the stricter figure); ``psnr_mean_per_image`` averages the
  per-image PSNRs;
- ``agreement``: share of renders where the shapes analyzer (``worlds.shapes.describe``) reads the
  same value for every one of the five attributes from the reconstruction as from the original;
- ``sharpness``: edge sharpness (``pipelines.tokenize.edge_sharpness``): the reconstructions'
  summed Sobel gradient magnitude over the originals' edge pixels (magnitude > 0.1), divided by
  the originals' own sum there; 1.0 = edges as steep as the original, blur lowers it. (The
  whole-image ratio of mean gradients, ``gradient_ratio``, is reported too, but noise in flat
  areas inflates it, so it is not the sharpness figure.)
- ``code_share`` / ``codes_used`` / ``perplexity``: how much of the codebook the set's tokens use
  (perplexity = exp of the entropy of the code distribution, the effective number of codes);
- ``edit_locality``: one random cell of each of the first 100 renders' token grids is given a
  random other code; of the visible change this causes in the decoded images (pixels whose
  summed |change| over RGB exceeds ``VISIBLE_CHANGE`` = 6 levels), pooled over the 100 edits,
  ``visible_share`` lies inside the edited cell's 4 x 4 block dilated by ``LOCALITY_MARGIN`` = 4 px
  (its 12 x 12 px neighbourhood, 14% of the image). Also reported: the same counting every
  changed pixel (``all_share``: the decoder's group norms shift every pixel a little when any
  token changes), with a two-cell margin, and how many edits changed nothing visibly (many codes
  are near-synonyms, e.g. for flat background).

With ``--write`` the figures go to the model folder's ``metrics.json`` (the catalog shows them)
and ``MODEL_CARD.md`` is rewritten from them and the folder's ``training.json``. ``shapes-vqgan``
is also compared with ``shapes-vqvae`` (whose sharpness is measured on the same set).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstudio.errors import UserError
from mmstudio.evaluation.overlap import sentence
from mmstudio.pipelines.tokenize import (
    codebook_usage,
    decode_indices,
    edge_sharpness,
    edit_change,
    encode_indices,
    mean_gradient,
    vq_info,
)
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import EVAL_SEED, eval_set

TARGETS: dict[str, dict[str, float]] = {
    "shapes-vqvae": {"psnr": 30.0, "agreement": 0.98, "code_share": 0.5},
    "shapes-vqgan": {"psnr": 28.0, "agreement": 0.98, "code_share": 0.5},
}
LOCALITY_MARGIN = 4  # px: one token cell around the edited cell
VISIBLE_CHANGE = 6.0  # a pixel's change counts as visible above this sum of |delta| over RGB
LOCALITY_EDITS = 100
BATCH = 100


def _psnr_from_mse(mse: float) -> float:
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _group(originals: np.ndarray, recons: np.ndarray, agree: np.ndarray) -> dict[str, float]:
    diff = originals.astype(np.float64) - recons.astype(np.float64)
    per_image_mse = (diff**2).mean(axis=(1, 2, 3))
    per_image = [_psnr_from_mse(m) for m in per_image_mse]
    return {
        "psnr": round(_psnr_from_mse(float(per_image_mse.mean())), 3),
        "psnr_mean_per_image": round(float(np.mean(np.minimum(per_image, 100.0))), 3),
        "agreement": round(float(agree.mean()), 4),
        "sharpness": round(edge_sharpness(originals, recons), 4),
        "gradient_ratio": round(mean_gradient(recons) / mean_gradient(originals), 4),
    }


@torch.inference_mode()
def evaluate_vq(vq: torch.nn.Module, n: int = 500, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Every figure of the module docstring, for one model, on ``n`` evaluation renders."""
    start = time.perf_counter()
    info = vq_info(vq, shapes.CANVAS)
    if info.resolution != shapes.CANVAS:
        raise UserError(f"the shapes evaluation needs a {shapes.CANVAS} px model")
    items = eval_set(shapes, n, seed)
    originals = np.stack([item.sample for item in items])  # (n, 32, 32, 3) uint8
    held = np.array([item.held_out for item in items])
    indices = np.concatenate([encode_indices(vq, originals[i:i + BATCH])
                              for i in range(0, n, BATCH)])  # (n, 8, 8)
    recons = np.concatenate([decode_indices(vq, indices[i:i + BATCH])
                             for i in range(0, n, BATCH)])  # (n, 32, 32, 3)
    agree = np.array([shapes.describe(r) == shapes.describe(o)
                      for r, o in zip(recons, originals, strict=True)])
    usage = codebook_usage(indices, info.num_codes)
    overall = _group(originals, recons, agree)
    metrics: dict[str, Any] = {  # the first four are what the Models tab shows
        "psnr": overall["psnr"], "agreement": overall["agreement"],
        "code_share": round(usage.share, 4), "sharpness": overall["sharpness"],
        "psnr_mean_per_image": overall["psnr_mean_per_image"],
        "gradient_ratio": overall["gradient_ratio"]}
    metrics.update({"codes_used": usage.used, "num_codes": info.num_codes,
                    "perplexity": round(usage.perplexity, 2)})
    if held.any():
        metrics["held_out"] = _group(originals[held], recons[held], agree[held])
        metrics["seen_pairs"] = _group(originals[~held], recons[~held], agree[~held])
    metrics["edit_locality"] = measure_edit_locality(vq, indices[:LOCALITY_EDITS], seed)
    metrics.update({"n": n, "n_held_out": int(held.sum()), "seed": seed,
                    "grid": [info.grid, info.grid], "bits_per_token": info.bits_per_token,
                    "compression": round(32 * 32 * 3 * 8 / (info.grid**2 * info.bits_per_token),
                                         1),
                    "seconds": round(time.perf_counter() - start, 1)})
    return metrics


def measure_edit_locality(vq: torch.nn.Module, grids: np.ndarray, seed: int) -> dict[str, Any]:
    """One random single-token edit per grid (a random cell gets a random other code): how much
    of the decoded images' change lies near the edited token, pooled over all the edits."""
    info = vq_info(vq)
    rng = np.random.default_rng([seed, 4])
    before = decode_indices(vq, grids)
    edited = grids.copy()
    cells = []
    for k in range(len(grids)):
        row, col = (int(v) for v in rng.integers(0, info.grid, size=2))
        code = int(rng.integers(0, info.num_codes))
        while code == grids[k, row, col]:
            code = int(rng.integers(0, info.num_codes))
        edited[k, row, col] = code
        cells.append((row, col))
    after = decode_indices(vq, edited)

    def pooled(margin: int, visible: float) -> tuple[float, int]:
        sums = np.array([edit_change(b, a, r, c, info.downsample, margin, visible)
                         for b, a, (r, c) in zip(before, after, cells, strict=True)])
        return round(float(sums[:, 0].sum() / max(sums[:, 1].sum(), 1e-9)), 4), int(
            (sums[:, 1] == 0).sum())

    visible_share, unseen = pooled(LOCALITY_MARGIN, VISIBLE_CHANGE)
    return {
        "visible_share": visible_share,
        "all_share": pooled(LOCALITY_MARGIN, 0.0)[0],
        "visible_share_two_cells": pooled(2 * LOCALITY_MARGIN, VISIBLE_CHANGE)[0],
        "edits_without_visible_change": unseen,
        "margin_px": LOCALITY_MARGIN, "visible_above": VISIBLE_CHANGE, "edits": len(grids),
    }


def per_image_sharpness(vq: torch.nn.Module, originals: np.ndarray) -> np.ndarray:
    """Edge sharpness of each image's reconstruction: (n,)."""
    recons = np.concatenate([decode_indices(vq, encode_indices(vq, originals[i:i + BATCH]))
                             for i in range(0, len(originals), BATCH)])
    return np.array([edge_sharpness(o, r) for o, r in zip(originals, recons, strict=True)])


def check_targets(model_id: str, metrics: dict[str, Any]) -> dict[str, bool]:
    checks = {f"{k} >= {t}": metrics[k] >= t for k, t in TARGETS.get(model_id, {}).items()}
    if "vqvae_sharpness" in metrics:
        checks["sharper than shapes-vqvae"] = metrics["sharpness"] > metrics["vqvae_sharpness"]
    return checks


def load_vq(model_id: str, folder: Path | None = None) -> torch.nn.Module:
    """The model through the catalog's loader (or a VQModel folder, e.g. a run's export)."""
    from mmstudio.manager import ModelManager

    manager = ModelManager()
    if folder is None:
        return manager.get(model_id)["vq"]
    from mmstudio.loaders import load_vq as loader

    vq = loader(Path(folder), manager.catalog.get(model_id), torch.float32)["vq"]
    return vq.eval().requires_grad_(False)


def reproduce_commands(model_id: str, training: dict[str, Any]) -> list[str]:
    """The training commands of every part of the run (from ``training.json``'s history), without
    the run-local ``--run``/``--out``/``--no-progress``; a part that was cut short gets the
    ``--stop-at`` that ends it where the next part resumed."""
    history = training.get("history") or [{"from_step": 0, "command": training.get("command")}]
    commands = []
    for i, part in enumerate(history):
        words = (part.get("command") or f"python -m mmstudio train {model_id}").split()
        clean: list[str] = []
        skip = False
        for word in words:
            if skip:
                skip = False
            elif word in ("--run", "--out"):
                skip = True
            elif word != "--no-progress":
                clean.append(word)
        if i + 1 < len(history) and "--stop-at" not in clean:
            clean += ["--stop-at", str(history[i + 1]["from_step"])]
        commands.append(" ".join(clean))
    return commands


def model_card(model_id: str, metrics: dict[str, Any], training: dict[str, Any],
               config: dict[str, Any]) -> str:
    """MODEL_CARD.md from the measured figures and the training summary."""
    gan = model_id == "shapes-vqgan"
    hours = training.get("train_seconds", 0) / 3600
    adv = training.get("adversarial") or {}
    arch = ", ".join(f"{k}={config[k]}" for k in (
        "block_out_channels", "layers_per_block", "latent_channels", "vq_embed_dim",
        "num_vq_embeddings", "norm_num_groups", "mid_block_add_attention",
        "lookup_from_codebook") if k in config)
    held, seen = metrics.get("held_out", {}), metrics.get("seen_pairs", {})
    loc = metrics["edit_locality"]
    rows = [
        ("PSNR (dB, pooled MSE over [0, 255])", metrics["psnr"], held.get("psnr"),
         seen.get("psnr"), f">= {TARGETS[model_id]['psnr']:.0f}"),
        ("PSNR (dB, mean per image)", metrics["psnr_mean_per_image"],
         held.get("psnr_mean_per_image"), seen.get("psnr_mean_per_image"), ""),
        ("attribute agreement (all 5 attributes)", metrics["agreement"], held.get("agreement"),
         seen.get("agreement"), ">= 0.98"),
        ("edge sharpness (Sobel at the original's edges, recon / original)",
         metrics["sharpness"], held.get("sharpness"), seen.get("sharpness"),
         "> shapes-vqvae's" if gan else "(reported)"),
        ("whole-image gradient ratio (recon / original)", metrics.get("gradient_ratio"),
         held.get("gradient_ratio"), seen.get("gradient_ratio"), ""),
    ]
    table = ["| figure | all | held-out pairs | seen pairs | target |",
             "| --- | --- | --- | --- | --- |"]
    table += [f"| {name} | {a} | {h} | {s} | {t} |" for name, a, h, s, t in rows]
    checks = check_targets(model_id, metrics)
    compare = ""
    if gan and "vqvae_sharpness" in metrics:
        compare = (f"\nshapes-vqvae on the same renders: sharpness {metrics['vqvae_sharpness']}, "
                   f"PSNR {metrics.get('vqvae_psnr')} dB, so this VQGAN's edges are "
                   f"{metrics['sharpness'] / metrics['vqvae_sharpness']:.3f}x as steep; its "
                   "reconstruction has the steeper edges on "
                   f"{metrics.get('sharper_than_vqvae_share', 0):.0%} of the images.\n")
    if gan:
        frozen = ("Its encoder and codebook are kept frozen, so both models give the same tokens "
                  "and differ only in the decoder (fine-tuning everything let the tokens drift "
                  "under the adversarial gradients, and the reconstructions collapsed). "
                  if training.get("decoder_only") else "")
        method = (
            "Initialised from the trained `shapes-vqvae` (its folder in `assets/models/`). "
            f"{frozen}Fine-tuned for {training.get('steps')} steps with an added PatchGAN critic "
            f"({adv.get('critic')}; hinge loss; adversarial weight {adv.get('weight')} x the "
            "adaptive VQGAN weight ||grad rec|| / ||grad adv|| at the decoder's last layer, from "
            f"step {adv.get('start_step')}; critic lr {adv.get('critic_lr')}) and a Sobel edge "
            f"loss (weight {adv.get('edge_loss_weight')}: L1 between the gradient-magnitude maps "
            "of reconstruction and original; it replaces VQGAN's LPIPS term, which would need "
            "downloaded VGG weights, and rewards the same thing the critic is for: crisp, "
            "correctly placed edges), besides the pixel loss "
            f"({training.get('reconstruction_loss')})."
        )
    else:
        parts = training.get("history") or []
        switched = len(parts) > 1 and "--loss l1" in (parts[-1].get("command") or "")
        pixel = (f"The pixel loss was L1 + MSE for the first {parts[-1]['from_step']} steps, then "
                 "L1 alone: L1's optimum is a median, so where an edge's position is uncertain "
                 "it picks a side instead of averaging both into a blur." if switched else
                 f"Pixel loss: {training.get('reconstruction_loss')}.")
        method = (
            f"Trained from scratch for {training.get('steps')} steps with reconstruction, "
            f"codebook and commitment (beta {training.get('beta')}) losses only. {pixel} "
            f"Codebook: unit-norm {config.get('vq_embed_dim')}-d codes (cosine nearest "
            "neighbour, which equals the Euclidean lookup diffusers does at inference), "
            "initialised from encoder outputs, with dead-code restarts every "
            f"{training.get('codebook', {}).get('dead_code_restart_every')} steps."
        )
    overlap_text = (sentence(metrics["train_overlap"]) if metrics.get("train_overlap") else
                    "Overlap with training: not measured for this folder.")
    return _reflow(f"""# {model_id}

A diffusers `VQModel` that turns a 32 x 32 RGB image of the shapes world (`WORLDS.md`) into an
8 x 8 grid of tokens from a codebook of {config.get('num_vq_embeddings')} codes, and decodes any
such grid back into an image. Inputs and outputs are floats in [0, 1] (as aMUSEd's VQ); the config
sets `lookup_from_codebook`, so `decode(indices, force_not_quantize=True, shape=(B, 8, 8,
{config.get('vq_embed_dim')}))` decodes token ids directly. Loaded by `mmstudio.loaders.load_vq`.
License: Apache-2.0.

## Data

Shapes-world renders drawn on the fly from the `train` split (`worlds.datasets.WorldSampler`):
every attribute uniformly at random, except that the held-out color/shape pairs (purple triangle,
cyan cross, yellow square) never appear. Batch {training.get('batch')}, seed
{training.get('seed')}; the batch of step s is rendered from its own seed (seed x 1,000,003 + s).

## Model and training

Architecture: {arch} ({metrics.get('params', '?')} parameters,
{metrics.get('file_mb', '?')} MB of fp32 safetensors).

{method}

Adam, lr {training.get('lr')} (linear warm-up, cosine decay to 5%), gradient clipping at 1.0, on
{training.get('threads')} CPU thread (torch.compile) of a busy shared machine:
{training.get('train_seconds')} s ({hours:.1f} h) of training.

Reproduce: {' then '.join(f'`{c}`' for c in reproduce_commands(model_id, training))}
(checkpoints, `train.log` and the exported model in `runs/{model_id}/`; an interrupted run
continues with `--resume`), then ship `runs/{model_id}/export` as `assets/models/{model_id}` and
run `python -m mmstudio eval {model_id} --write`.

## Evaluation

`python -m mmstudio eval {model_id}`: {metrics['n']} renders of the evaluation set (seed
{metrics['seed']}; {metrics['n_held_out']} of them held-out pairs), tokenized and decoded by the
Tokenize tab's own pipeline; uint8 outputs.

{chr(10).join(table)}
{compare}
Codebook on the evaluation set: {metrics['codes_used']} of {metrics['num_codes']} codes used
(share {metrics['code_share']}; target >= 0.5), perplexity {metrics['perplexity']}.
Compression: {32 * 32 * 3 * 8} bits of pixels vs {metrics['grid'][0] * metrics['grid'][1]} tokens x
{metrics['bits_per_token']} bits = {metrics['compression']}x.

Edit locality: one random token of each of {loc['edits']} token grids set to a random other code.
Of the visible change this causes in the decoded images (pixels whose summed |change| over RGB
exceeds {loc['visible_above']:.0f} levels), pooled over the edits, {loc['visible_share']:.1%} lies
within the edited 4 x 4 cell dilated by {loc['margin_px']} px (the token's 12 x 12 px neighbourhood,
14% of the image) and {loc['visible_share_two_cells']:.1%} within two cells (20 x 20 px). Counting
every changed pixel, {loc['all_share']:.1%} lies within one cell: the decoder's group norms spread
small shifts over the whole image. {loc['edits_without_visible_change']} of the edits changed
nothing visibly (the new code was a near-synonym of the old one).

{overlap_text}

Targets: {', '.join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items())}.
""")


def _reflow(markdown: str, width: int = 100) -> str:
    """Re-wrap the plain paragraphs of ``markdown`` (tables and headings are kept as they are)."""
    import textwrap

    blocks = []
    for block in markdown.strip().split("\n\n"):
        if block.lstrip().startswith(("|", "#")):
            blocks.append(block.strip("\n"))
        else:
            blocks.append(textwrap.fill(" ".join(block.split()), width, break_long_words=False,
                                        break_on_hyphens=False))
    return "\n\n".join(blocks) + "\n"


def main(model_id: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=f"python -m mmstudio eval {model_id}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=500, help="evaluation renders (default 500)")
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.add_argument("--folder", type=Path, default=None,
                   help="evaluate this VQModel folder instead of the catalog's")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--write", action="store_true",
                   help="write metrics.json and MODEL_CARD.md into the model folder")
    args = p.parse_args(argv)
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    torch.set_num_threads(args.threads)
    vq = load_vq(model_id, args.folder)
    metrics = evaluate_vq(vq, args.n, args.seed)
    metrics["params"] = sum(p.numel() for p in vq.parameters())
    if model_id == "shapes-vqgan":
        try:
            base_vq = load_vq("shapes-vqvae")
            base = evaluate_vq(base_vq, args.n, args.seed)
            metrics["vqvae_sharpness"], metrics["vqvae_psnr"] = base["sharpness"], base["psnr"]
            originals = np.stack([item.sample for item in eval_set(shapes, args.n, args.seed)])
            paired = per_image_sharpness(vq, originals) - per_image_sharpness(base_vq, originals)
            metrics["sharper_than_vqvae_share"] = round(float((paired > 0).mean()), 4)
        except UserError as exc:
            print(f"note: no comparison with shapes-vqvae ({exc})")
    checks = check_targets(model_id, metrics)
    metrics["targets"] = checks
    metrics["passed"] = all(checks.values())
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{model_id}: {args.n} evaluation renders, seed {args.seed}")
        for key, value in metrics.items():
            if key != "targets":
                print(f"  {key:22s} {value}")
        for check, ok in checks.items():
            print(f"  target {check}: {'met' if ok else 'MISSED'}")
    if args.write:
        from mmstudio.config import Settings
        from mmstudio.evaluation.overlap import for_model

        if args.folder is None:  # the shipped model: its training stream is recorded
            metrics["train_overlap"] = for_model(model_id, args.n, args.seed)
        settings = Settings.from_env()
        folder = Path(args.folder) if args.folder else settings.models_dir / model_id
        weights = folder / "diffusion_pytorch_model.safetensors"
        metrics["file_mb"] = round(weights.stat().st_size / 1e6, 2) if weights.is_file() else None
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        training_file = folder / "training.json"
        training = json.loads(training_file.read_text()) if training_file.is_file() else {}
        config = json.loads((folder / "config.json").read_text())
        (folder / "MODEL_CARD.md").write_text(model_card(model_id, metrics, training, config))
        print(f"wrote {folder / 'metrics.json'} and {folder / 'MODEL_CARD.md'}")
    return 0 if metrics["passed"] else 1
