"""Train ``shapes-clip``: an open_clip CLIP (small ViT + small text transformer) on shapes.

Contrastive language-image pre-training after Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision" (CLIP), with one change for captions that leave out
attributes: a batch may hold several images that a shortened caption describes truthfully ("a red
circle" is true of every red circle), so instead of the identity target the loss uses a
multi-positive target, uniform over every image-caption pair whose named attributes all hold
(cf. Khosla et al. 2020, "Supervised Contrastive Learning"). Nothing true is pushed apart.

``python -m mmstudio train shapes-clip [--steps N] [--batch B] [--resume] ...``. Runs on one CPU
thread by default, logs step, loss, in-batch accuracy, it/s and ETA, writes a resumable checkpoint
(``training/checkpoint.py``) every ``--save-every`` seconds under ``runs/shapes-clip/``, and exports
the open_clip ``local-dir:`` folder (``open_clip_config.json`` + fp16
``open_clip_model.safetensors``) to ``--out`` at the end (default ``runs/shapes-clip/export``: a
run never writes into the shipped ``assets/models/shapes-clip`` unless asked).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmstudio.config import REPO_ROOT
from mmstudio.errors import UserError
from mmstudio.training.checkpoint import (
    Every,
    load_checkpoint,
    require_checkpoint,
    save_checkpoint,
)
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import WorldSampler

log = logging.getLogger("mmstudio.train.clip")

#: open_clip ``CLIP`` config. The text width is narrow because open_clip's BPE vocabulary has
#: 49,408 tokens: the token embedding alone is 49,408 x width parameters (fp16 storage keeps the
#: file under 10 MB). The text tower's per-token states (width 64) also condition the diffusion
#: U-Net later on.
MODEL_CFG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 128, "layers": 4,
                   "head_width": 32, "mlp_ratio": 4.0},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 4,
                 "layers": 3, "mlp_ratio": 4.0},
}
#: Pixel normalisation (stored in the config's ``preprocess_cfg`` so every loader applies it).
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
RUN_DIR = REPO_ROOT / "runs" / "shapes-clip"


def build_model(model_cfg: dict[str, Any] | None = None) -> torch.nn.Module:
    from open_clip import CLIP

    return CLIP(**(model_cfg or MODEL_CFG))


def images_to_tensor(samples: np.ndarray) -> torch.Tensor:
    """(B, 32, 32, 3) uint8 -> (B, 3, 32, 32) float, normalised like open_clip's preprocess."""
    x = torch.from_numpy(np.ascontiguousarray(samples)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std  # (B, 3, H, W)


class CaptionTokens:
    """open_clip's tokenizer with a cache: the shapes grammar has only a few thousand captions."""

    def __init__(self, context_length: int) -> None:
        from open_clip import SimpleTokenizer

        self.tokenizer = SimpleTokenizer(context_length=context_length)
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in dict.fromkeys(captions) if c not in self._cache]
        if missing:
            for caption, row in zip(missing, self.tokenizer(missing), strict=True):
                self._cache[caption] = row
        return torch.stack([self._cache[c] for c in captions])  # (B, L)


def positives(captions: list[str], attrs: list[shapes.ShapeAttrs]) -> torch.Tensor:
    """(B images, B captions) bool: caption j names only attributes that image i has."""
    named = [shapes.parse(c) for c in captions]
    truth = np.array([[getattr(a, f) for f in shapes.FIELDS] for a in attrs], dtype=object)
    said = np.array([[getattr(n, f) for f in shapes.FIELDS] for n in named], dtype=object)
    match = (said[None, :, :] == truth[:, None, :]) | (said[None, :, :] == None)  # noqa: E711
    return torch.from_numpy(match.all(axis=-1))  # (B, B)


def multi_positive_clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    positive: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE with a target spread over the positives of each row/column.

    With ``positive`` the identity this is exactly CLIP's loss. ``positive`` may also be a float
    matrix of target weights (1 for a true caption, less for partly true ones): each row/column
    is normalised into a distribution. Returns (loss, in-batch top-1 accuracy of image ->
    caption, counting any fully true caption, weight 1, as correct).
    """
    logits = logit_scale * image_features @ text_features.T  # (B images, B texts)
    target = positive.float()
    loss_i = -(target / target.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
    loss_t = -(target / target.sum(0, keepdim=True) * F.log_softmax(logits, 0)).sum(0).mean()
    hit = (target.gather(1, logits.argmax(1, keepdim=True)) >= 1).float().mean()
    return (loss_i + loss_t) / 2, hit


def batch_for_step(seed: int, step: int, batch: int, p_shorten: float) -> tuple:
    """The batch of ``step``, from its own seeded sampler: a resumed run sees the same data."""
    sampler = WorldSampler(shapes, seed=seed * 1_000_003 + step, p_shorten=p_shorten, p_empty=0.0,
                           split="train")
    return sampler.batch(batch)


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5% of ``lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; no decay on gains, biases, embeddings and the logit scale (as open_clip's trainer)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "embedding" in name or "logit_scale" in name or "ln" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def export(model: torch.nn.Module, folder: Path, model_cfg: dict[str, Any] | None = None,
           dtype: torch.dtype = torch.float16) -> Path:
    """Write the open_clip ``local-dir:`` folder: config + safetensors (fp16 by default)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": model_cfg or MODEL_CFG,
        "preprocess_cfg": {"mean": list(MEAN), "std": list(STD), "interpolation": "bicubic",
                           "resize_mode": "shortest"},
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "open_clip_model.safetensors")
    return folder


@torch.no_grad()
def quick_zero_shot(model: torch.nn.Module, tokens: CaptionTokens, n: int = 256) -> dict:
    """Color x shape zero-shot accuracy on the first ``n`` evaluation renders (progress signal)."""
    from mmstudio.worlds.datasets import eval_set

    model.eval()
    items = eval_set(shapes, n)
    pairs = [(c, s) for c in shapes.COLORS for s in shapes.SHAPES]
    text = F.normalize(model.encode_text(tokens([f"a {c} {s}" for c, s in pairs])), dim=-1)
    image = F.normalize(model.encode_image(images_to_tensor(np.stack([i.sample for i in items]))),
                        dim=-1)
    pred = (image @ text.T).argmax(1).tolist()
    hits = [pairs[p] == (i.attrs.color, i.attrs.shape) for p, i in zip(pred, items, strict=True)]
    held = [h for h, i in zip(hits, items, strict=True) if i.held_out]
    model.train()
    return {"color_shape": float(np.mean(hits)),
            "held_out": float(np.mean(held)) if held else float("nan")}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mmstudio train shapes-clip",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--p-shorten", type=float, default=0.5,
                   help="share of shortened captions (the loss treats every true caption as a "
                        "positive)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run", type=Path, default=RUN_DIR, help="run folder (checkpoints)")
    p.add_argument("--out", type=Path, default=None,
                   help="exported open_clip folder (default RUN/export; the shipped model is "
                        "assets/models/shapes-clip)")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--export-only", action="store_true",
                   help="with --resume: export the checkpoint to --out without training")
    p.add_argument("--save-every", type=float, default=180.0, help="seconds between checkpoints")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=250, help="quick zero-shot check (steps)")
    return p.parse_args(argv)


def train(args: argparse.Namespace) -> torch.nn.Module:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = build_model().train()
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    tokens = CaptionTokens(MODEL_CFG["text_cfg"]["context_length"])
    ckpt = Path(args.run) / "checkpoint"
    start = 0
    if args.resume:
        require_checkpoint(ckpt)
        state = load_checkpoint(ckpt, {"model": model}, {"adamw": optimizer})
        start = int(state["step"])
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        log.info("resumed from %s at step %d", ckpt, start)
    save_timer = Every(args.save_every)

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt, {"model": model}, {"adamw": optimizer},
                        {"step": step, "torch_rng": torch.get_rng_state().tolist(),
                         "args": {k: str(v) for k, v in vars(args).items()}})
        log.info("checkpoint at step %d -> %s", step, ckpt)

    if args.export_only:
        if start == 0:
            raise UserError(f"--export-only needs a checkpoint in {ckpt} (and --resume)")
        return model
    t0, done, smooth, reached = time.perf_counter(), 0, None, start
    for step in range(start, args.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        batch = batch_for_step(args.seed, step, args.batch, args.p_shorten)
        image_features, text_features, logit_scale = model(
            images_to_tensor(batch.samples), tokens(batch.captions)
        )[:3]
        loss, acc = multi_positive_clip_loss(image_features, text_features, logit_scale,
                                             positives(batch.captions, batch.attrs))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        done += 1
        reached = step + 1
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            rate = done / (time.perf_counter() - t0)
            eta = (args.steps - step - 1) / rate
            log.info("step %d/%d loss %.4f (avg %.4f) batch-acc %.3f scale %.1f lr %.2e "
                     "%.2f it/s ETA %dm%02ds", step + 1, args.steps, loss.item(), smooth,
                     acc.item(), model.logit_scale.exp().item(), optimizer.param_groups[0]["lr"],
                     rate, eta // 60, eta % 60)
        if args.eval_every and (step + 1) % args.eval_every == 0:
            log.info("step %d quick zero-shot (256 eval renders): %s", step + 1,
                     quick_zero_shot(model, tokens))
        if save_timer():
            checkpoint(step + 1)
    checkpoint(reached)
    return model


def main(model_id: str, argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    args = parse_args(argv)
    args.out = args.out or Path(args.run) / "export"
    if args.resume:
        require_checkpoint(Path(args.run) / "checkpoint")  # before building anything
    model = train(args)
    folder = export(model.eval(), args.out)
    log.info("exported %s (%.2f MB)", folder,
             (folder / "open_clip_model.safetensors").stat().st_size / 1e6)
    return 0
