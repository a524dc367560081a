"""Train the shapes VQ-VAE / VQGAN pairs: diffusers ``VQModel``s, 32 x 32 RGB -> a grid of tokens.

Two pairs, one per compression (``PAIRS``): ``shapes-vqvae`` / ``shapes-vqgan`` downsample 4
(8 x 8 tokens), ``shapes-vqvae-f8`` / ``shapes-vqgan-f8`` downsample 8 (4 x 4 tokens, one per
8 x 8 pixel patch; ``ARCHITECTURE_F8``). Each VQGAN starts from the VQ-VAE of its pair. The f4
pair, as described here, is the recipe of both; the paragraph after it says what differs at f8.

- ``shapes-vqvae`` (van den Oord et al. 2017, "Neural Discrete Representation Learning"):
  reconstruction, codebook and commitment losses only. The pixel loss is L1 + MSE by default;
  the shipped model switched to L1 alone (``--resume --loss l1``) for the second part of its run:
  L1's optimum is a median, so where an edge's position is uncertain it picks a side instead of
  averaging both into a blur, and the shapes analyzer needs edges crisp to a fraction of a pixel.
- ``shapes-vqgan`` (Esser et al. 2021, "Taming Transformers for High-Resolution Image Synthesis"):
  the same architecture and codebook size, initialised from the trained ``shapes-vqvae``, whose
  encoder and codebook it keeps (``--decoder-only``: the same tokens; fine-tuning everything let
  the tokens drift under the adversarial gradients and the reconstructions collapsed), with the
  decoder fine-tuned (L1 pixel loss) with an added PatchGAN critic (hinge loss, adaptive weight
  from the ratio of gradient norms at the decoder's last layer, as in VQGAN) and a Sobel edge
  loss: L1 between the gradient maps of reconstruction and original. The edge loss stands in for
  VQGAN's LPIPS term, which would need downloaded VGG weights; it rewards exactly what the
  adversarial loss is there for (crisp, correctly placed edges) and steadies the GAN on such
  simple images.

Codebook: low-dimensional (16-d), l2-normalised codes (Yu et al. 2022, "Vector-quantized Image
Modeling with Improved VQGAN"), initialised from encoder outputs of the first batch, and dead-code
restarts (codes unused for about a hundred steps jump to a random encoder output of the batch).
With unit-norm codes, the Euclidean nearest neighbour that ``diffusers``' ``VectorQuantizer`` looks
up at inference is exactly the cosine nearest neighbour used here in training. We compute the
losses ourselves because ``VectorQuantizer``'s default ``legacy=True`` swaps the weights of the two
terms (commitment weight 1, codebook weight beta); here the codebook term has weight 1 and the
commitment term beta = 0.25, as in the paper.

At 4 x 4 tokens a token's 9 bits must say where the edges run inside its 8 x 8 patch, and they
cannot say it exactly: a pixel loss then settles for the average of the edge positions it cannot
tell apart, a blur (the L1 + MSE of the plain ``shapes-vqvae-f8``; MSE is the original VQ-VAE's
loss). ``shapes-vqgan-f8`` keeps those tokens (``--decoder-only``) and teaches the decoder to commit
to one sharp edge instead: the PatchGAN critic's hinge loss with a larger weight than at f4
(``--disc-weight 0.8``, VQGAN's own value, times the adaptive weight), the L1 pixel loss (a median:
it picks a side of an uncertain edge instead of averaging) and the Sobel edge loss (weight 1; it
pulls the edges to where the original has them). No LPIPS (it would need downloaded VGG weights).

``python -m mmstudio train shapes-vqvae [--steps N] [--stop-at S] [--resume] ...``; then
``python -m mmstudio train shapes-vqgan [--init assets/models/shapes-vqvae] ...``; the same with
``shapes-vqvae-f8`` then ``shapes-vqgan-f8`` (``--init assets/models/shapes-vqvae-f8``, or the
VQ-VAE run's ``runs/shapes-vqvae-f8/export`` before it is shipped). Seeded (the batch
of step ``s`` is rendered from its own seed, so a resumed run sees the same data), with a progress
bar and a log (``RUN/train.log``), a resumable checkpoint every ``--save-every`` seconds under
``runs/<id>/``, and at the end the ``save_pretrained`` folder (safetensors) plus
``training.json`` (settings, time, and the command of every resumed part) in ``--out`` (default
``runs/<id>/export``: a run never writes into the shipped ``assets/models/<id>`` unless asked).
``torch.compile`` makes a step about 4x faster on a CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmstudio.config import REPO_ROOT
from mmstudio.errors import UserError
from mmstudio.models.patch_discriminator import (
    PatchDiscriminator,
    PatchDiscriminatorConfig,
    hinge_d_loss,
    hinge_g_loss,
)
from mmstudio.pipelines.tokenize import (  # PAIRS: compression -> (VQ-VAE, its VQGAN)
    PAIRS,
    codebook_usage,
    edge_sharpness,
    psnr,
    sobel_magnitude,
)
from mmstudio.training.checkpoint import (
    Every,
    load_checkpoint,
    require_checkpoint,
    save_checkpoint,
)
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import WorldSampler, eval_set

log = logging.getLogger("mmstudio.train.vq")

MODEL_IDS = tuple(model_id for pair in PAIRS.values() for model_id in pair)


def compression_of(model_id: str) -> str:
    """``"f4"`` or ``"f8"``: the pair a model id belongs to."""
    for compression, pair in PAIRS.items():
        if model_id in pair:
            return compression
    raise UserError(f"this trainer makes {', '.join(MODEL_IDS)}, not {model_id}")


def is_gan(model_id: str) -> bool:
    return PAIRS[compression_of(model_id)][1] == model_id


def base_of(model_id: str) -> str:
    """The VQ-VAE of ``model_id``'s pair (for a VQ-VAE: itself)."""
    return PAIRS[compression_of(model_id)][0]


#: The ``VQModel`` config of the f4 pair. Three blocks = two 2x downsamplings: 32 x 32 -> 8 x 8.
#: No attention in the mid blocks (as in aMUSEd's VQ): a token's influence on the decoded image
#: stays local, so editing one token changes mostly its own 4 x 4 pixel cell.
ARCHITECTURE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [16, 32, 64],
    "layers_per_block": 1,
    "act_fn": "silu",
    "latent_channels": 32,
    "vq_embed_dim": 16,
    "num_vq_embeddings": 512,
    "norm_num_groups": 8,
    "sample_size": 32,
    "scaling_factor": 1.0,
    "mid_block_add_attention": False,
    "lookup_from_codebook": True,
    "force_upcast": False,
}

#: The f8 pair: four blocks = three 2x downsamplings, 32 x 32 -> 4 x 4; the same codebook (512
#: unit-norm 16-d codes) and no attention. The extra block runs at 8 x 8 and 4 x 4 pixels, so its
#: 96 channels cost little time (a step about 1.15x an f4 step); they give the decoder room to
#: draw a whole 8 x 8 patch from one token's vector. 1.7 M parameters, 6.8 MB in fp32 (128
#: channels would be 10.6 MB, over the 10 MB a checkpoint may have).
ARCHITECTURE_F8: dict[str, Any] = {
    **ARCHITECTURE,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [16, 32, 64, 96],
}
ARCHITECTURES: dict[str, dict[str, Any]] = {"f4": ARCHITECTURE, "f8": ARCHITECTURE_F8}


def architecture_of(model_id: str) -> dict[str, Any]:
    return ARCHITECTURES[compression_of(model_id)]


def build_vq(architecture: dict[str, Any] | None = None) -> torch.nn.Module:
    from diffusers import VQModel

    return VQModel(**(architecture or ARCHITECTURE))


def images_to_tensor(samples: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1] (the range aMUSEd's VQ uses too)."""
    return torch.from_numpy(np.ascontiguousarray(samples)).permute(0, 3, 1, 2).float() / 255.0


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8, rounded."""
    x = x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


# ------------------------------------------------------------------------------ quantisation


@dataclass
class Quantized:
    z: torch.Tensor  # (B, D, h, w) l2-normalised encoder output
    z_q: torch.Tensor  # (B, D, h, w) codes, with straight-through gradients to z
    indices: torch.Tensor  # (B, h, w) int64
    codebook_loss: torch.Tensor  # || sg(z) - e ||^2: moves the codes
    commitment_loss: torch.Tensor  # || z - sg(e) ||^2: keeps the encoder near its codes


def quantize(codebook: torch.Tensor, h: torch.Tensor) -> Quantized:
    """Nearest unit-norm code for each l2-normalised vector of ``h`` (B, D, h, w)."""
    z = F.normalize(h, dim=1)
    b, d, hh, ww = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (N, D)
    indices = (flat @ codebook.T).argmax(1)  # max cosine == min distance for unit vectors
    e = codebook[indices].view(b, hh, ww, d).permute(0, 3, 1, 2)  # (B, D, h, w)
    return Quantized(
        z=z,
        z_q=z + (e - z).detach(),
        indices=indices.view(b, hh, ww),
        codebook_loss=F.mse_loss(e, z.detach()),
        commitment_loss=F.mse_loss(z, e.detach()),
    )


def decode_latents(vq: torch.nn.Module, z_q: torch.Tensor) -> torch.Tensor:
    """What ``VQModel.decode`` does after the codebook lookup: (B, D, h, w) -> (B, 3, H, W)."""
    return vq.decoder(vq.post_quant_conv(z_q))


@torch.no_grad()
def normalize_codebook(vq: torch.nn.Module) -> None:
    weight = vq.quantize.embedding.weight
    weight.copy_(F.normalize(weight, dim=1))


class CodeUsage:
    """Exponential moving average of how often each code is picked per batch; codes far below
    use are 'dead' and get restarted on encoder outputs."""

    def __init__(self, num_codes: int, decay: float = 0.99) -> None:
        self.decay = decay
        self.ema = torch.ones(num_codes)

    def update(self, indices: torch.Tensor) -> None:
        counts = torch.bincount(indices.reshape(-1).cpu(), minlength=self.ema.numel()).float()
        self.ema.mul_(self.decay).add_(counts, alpha=1 - self.decay)

    @torch.no_grad()
    def restart_dead(self, vq: torch.nn.Module, z: torch.Tensor, rng: np.random.Generator,
                     threshold: float) -> int:
        """Move codes with EMA use below ``threshold`` onto random encoder outputs ``z``."""
        dead = torch.nonzero(self.ema < threshold).flatten()
        if dead.numel() == 0:
            return 0
        d = z.shape[1]
        pool = z.detach().permute(0, 2, 3, 1).reshape(-1, d)  # (N, D)
        pick = torch.from_numpy(rng.integers(0, pool.shape[0], size=dead.numel()))
        noise = torch.from_numpy(rng.standard_normal((dead.numel(), d)).astype(np.float32))
        weight = vq.quantize.embedding.weight
        weight[dead] = F.normalize(pool[pick] + 0.02 * noise.to(pool), dim=1).to(weight)
        self.ema[dead] = 1.0  # a grace period before it can be declared dead again
        return int(dead.numel())


@torch.no_grad()
def init_codebook_from_data(vq: torch.nn.Module, samples: np.ndarray, rng: np.random.Generator
                            ) -> None:
    """Codes <- random distinct encoder outputs of ``samples`` (data initialisation)."""
    z = F.normalize(vq.encode(images_to_tensor(samples)).latents, dim=1)
    pool = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    weight = vq.quantize.embedding.weight
    pick = torch.from_numpy(rng.permutation(pool.shape[0])[: weight.shape[0]])
    noise = torch.from_numpy(rng.standard_normal(tuple(weight.shape)).astype(np.float32))
    weight.copy_(F.normalize(pool[pick] + 0.02 * noise, dim=1))


# ------------------------------------------------------------------------------ training


def batch_for_step(seed: int, step: int, batch: int) -> np.ndarray:
    """The images of ``step`` (train split: never a held-out pair), from their own seed."""
    sampler = WorldSampler(shapes, seed=seed * 1_000_003 + step, p_shorten=0.0, p_empty=0.0,
                           split="train")
    return sampler.batch(batch).samples  # (B, 32, 32, 3) uint8


def lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 5% of ``lr``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor
                    ) -> torch.Tensor:
    """VQGAN's balance: ||grad rec|| / ||grad adv|| at the decoder's last layer, clamped."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0.0, 1e4).detach()


QUICK_EVAL_N = 256  # evaluation renders of the quick check during training


@torch.no_grad()
def reconstruct(vq: torch.nn.Module, originals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reconstructions (B, H, W, 3) uint8, token grids (B, h, w)) in eval mode, as trained."""
    was_training = vq.training
    vq.eval()
    q = quantize(vq.quantize.embedding.weight, vq.encode(images_to_tensor(originals)).latents)
    recon = tensor_to_images(decode_latents(vq, q.z_q))
    vq.train(was_training)
    return recon, q.indices.numpy()


def per_image_sharpness(originals: np.ndarray, recons: np.ndarray) -> np.ndarray:
    """``edge_sharpness`` of each reconstruction against its original: (B,)."""
    return np.array([edge_sharpness(o, r) for o, r in zip(originals, recons, strict=True)])


def quick_eval_originals(n: int = QUICK_EVAL_N) -> np.ndarray:
    return np.stack([item.sample for item in eval_set(shapes, n)])  # (n, 32, 32, 3) uint8


@torch.no_grad()
def quick_eval(vq: torch.nn.Module, n: int = QUICK_EVAL_N,
               base_sharpness: np.ndarray | None = None) -> dict[str, float]:
    """A progress signal on the first ``n`` evaluation renders: PSNR, code use, the share of
    renders whose attributes the analyzer still reads the same (``agreement``) and the edge
    sharpness (1.0 = as steep as the original). With ``base_sharpness`` (the per-render sharpness
    of the model a VQGAN started from) also the share of renders where this model's sharpness is
    the closer to 1.0 (``closer_share``) and the mean of how much closer (``margin``): the VQGAN
    targets of ``evaluation.vq``, on a smaller sample."""
    originals = quick_eval_originals(n)
    recon, indices = reconstruct(vq, originals)
    usage = codebook_usage(indices, vq.quantize.embedding.weight.shape[0])
    agree = np.mean([shapes.describe(r) == shapes.describe(o)
                     for r, o in zip(recon, originals, strict=True)])
    figures: dict[str, float] = {
        "psnr": round(psnr(originals, recon), 2), "codes_used": usage.used,
        "perplexity": round(usage.perplexity, 1), "agreement": round(float(agree), 4),
        "sharpness": round(edge_sharpness(originals, recon), 4)}
    if base_sharpness is not None:
        closer = np.abs(base_sharpness - 1.0) - np.abs(per_image_sharpness(originals, recon) - 1.0)
        figures["closer_share"] = round(float((closer > 0).mean()), 4)
        figures["margin"] = round(float(closer.mean()), 4)
    return figures


def _repo_relative(path: str | Path) -> str:
    """``path`` relative to the checkout when it lies inside it (records stay portable)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(path)


def default_args(model_id: str) -> dict[str, Any]:
    gan = is_gan(model_id)
    f8 = compression_of(model_id) == "f8"
    defaults = {
        "steps": 2000 if gan else 20000,
        "batch": 32,
        "lr": 5e-5 if gan else 6e-4,
        "warmup": 100 if gan else 300,
        "init": str(REPO_ROOT / "assets" / "models" / base_of(model_id)) if gan else None,
        "disc_weight": 0.2 if gan else 0.0,
        "edge_weight": 3.0 if gan else 0.0,
        "loss": "l1" if gan else "l1+mse",
        "decoder_only": gan,
        "disc_start": 200 if gan else 0,
        "disc_lr": 2e-4,
        "channels": architecture_of(model_id)["block_out_channels"],
        "run": REPO_ROOT / "runs" / model_id,
        "out": None,  # RUN/export: never the shipped assets unless asked
    }
    if f8 and gan:  # blur to undo, not a polish: a stronger critic, a longer and faster run
        defaults.update(steps=4000, lr=1e-4, disc_weight=0.8, edge_weight=1.0)
    return defaults


def parse_args(model_id: str, argv: list[str]) -> argparse.Namespace:
    d = default_args(model_id)
    p = argparse.ArgumentParser(prog=f"python -m mmstudio train {model_id}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=d["steps"])
    p.add_argument("--batch", type=int, default=d["batch"])
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--warmup", type=int, default=d["warmup"])
    p.add_argument("--beta", type=float, default=0.25, help="commitment weight")
    p.add_argument("--loss", choices=("l1+mse", "l1"), default=d["loss"],
                   help="pixel reconstruction loss (L1 keeps edges crisper: a median, not a mean)")
    blocks = len(d["channels"])
    p.add_argument("--channels", default=",".join(map(str, d["channels"])),
                   help=f"block_out_channels of a new model ({blocks} numbers: 32 -> "
                        f"{32 // 2 ** (blocks - 1)} x {32 // 2 ** (blocks - 1)} tokens)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codes", type=int, default=ARCHITECTURE["num_vq_embeddings"],
                   help="codebook size of a new model")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (1 is fastest for this small model on a busy machine)")
    p.add_argument("--restart-every", type=int, default=50,
                   help="steps between dead-code restarts (0: never)")
    p.add_argument("--dead-below", type=float, default=0.03,
                   help="a code is dead when its EMA use per batch is below this")
    p.add_argument("--init", default=d["init"],
                   help=f"VQModel folder to start from ({PAIRS['f4'][1]}: the trained "
                        f"{PAIRS['f4'][0]}; {PAIRS['f8'][1]}: {PAIRS['f8'][0]})")
    p.add_argument("--decoder-only", action=argparse.BooleanOptionalAction,
                   default=d["decoder_only"],
                   help="train only the decoder (post_quant_conv + decoder): the encoder and "
                        "codebook stay as initialised, so the tokens stay the same")
    p.add_argument("--disc-weight", type=float, default=d["disc_weight"],
                   help="adversarial weight (times the adaptive weight); 0: no critic")
    p.add_argument("--disc-start", type=int, default=d["disc_start"],
                   help="step at which the adversarial loss starts (the critic trains from 0)")
    p.add_argument("--disc-lr", type=float, default=d["disc_lr"])
    p.add_argument("--edge-weight", type=float, default=d["edge_weight"],
                   help="weight of the Sobel edge loss")
    p.add_argument("--run", type=Path, default=d["run"], help="run folder: checkpoint and log")
    p.add_argument("--out", type=Path, default=d["out"],
                   help="exported VQModel folder (default RUN/export; the shipped model is "
                        f"assets/models/{model_id})")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--save-every", type=float, default=180.0, help="seconds between checkpoints")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--eval-every", type=int, default=500, help="quick PSNR check (steps)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="run eagerly (torch.compile is about 4x faster on a CPU once compiled)")
    p.add_argument("--stop-at", type=int, default=None,
                   help="stop at this step with a checkpoint (split a run; --resume continues)")
    p.add_argument("--export-only", action="store_true",
                   help="write RUN/checkpoint's model to --out without training")
    args = p.parse_args(argv)
    args.model_id = model_id
    args.command = " ".join(["python -m mmstudio train", model_id, *argv])
    args.out = args.out or Path(args.run) / "export"
    if args.resume:
        require_checkpoint(Path(args.run) / "checkpoint")
    try:
        args.block_out_channels = [int(c) for c in args.channels.split(",")]
    except ValueError:
        raise UserError(f"--channels: expected numbers like 32,64,64: {args.channels}") from None
    if len(args.block_out_channels) != blocks:
        side = 32 // 2 ** (blocks - 1)
        raise UserError(f"--channels needs {blocks} numbers ({blocks - 1} downsamplings: "
                        f"32 x 32 -> {side} x {side})")
    if args.steps < 1 or args.batch < 1:
        raise UserError("--steps and --batch must be at least 1")
    return args


def train(args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Run (or resume) training; returns the model and a summary for ``training.json``."""
    from diffusers import VQModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gan = args.disc_weight > 0
    if args.init:
        init = Path(args.init)
        base = base_of(args.model_id)
        if not (init / "config.json").is_file():
            raise UserError(f"--init {init} holds no VQModel (train {base} first, then copy "
                            f"runs/{base}/export/* into assets/models/{base}/, or give --init "
                            "that export folder)")
        vq = VQModel.from_pretrained(init, use_safetensors=True)
        expected = len(architecture_of(args.model_id)["block_out_channels"])
        if len(vq.config.block_out_channels) != expected:
            raise UserError(f"--init {init} has {len(vq.config.block_out_channels)} blocks; "
                            f"{args.model_id} needs {expected} (the {base} architecture)")
    else:
        vq = build_vq({**architecture_of(args.model_id),
                       "block_out_channels": args.block_out_channels,
                       "num_vq_embeddings": args.codes})
    vq.train()
    if args.decoder_only:  # same encoder and codebook, so the same tokens: only the decoder learns
        for module in (vq.encoder, vq.quant_conv, vq.quantize):
            module.requires_grad_(False)
    trained = [p for p in vq.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trained, lr=args.lr, betas=(0.5, 0.9) if gan else (0.9, 0.99))
    modules: dict[str, torch.nn.Module] = {"vq": vq}
    optimizers: dict[str, torch.optim.Optimizer] = {"adam": optimizer}
    disc = None
    if gan:
        disc = PatchDiscriminator(PatchDiscriminatorConfig()).train()
        d_optimizer = torch.optim.Adam(disc.parameters(), lr=args.disc_lr, betas=(0.5, 0.9))
        modules["disc"], optimizers["disc_adam"] = disc, d_optimizer
    num_codes = vq.quantize.embedding.weight.shape[0]
    usage = CodeUsage(num_codes)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / "checkpoint"
    file_log = logging.FileHandler(run / "train.log")
    file_log.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(file_log)
    log.setLevel(logging.INFO)  # the run's log file gets every progress line
    start, elapsed, history = 0, 0.0, []
    state = load_checkpoint(ckpt, modules, optimizers) if args.resume else None
    if state is not None:
        start, elapsed = int(state["step"]), float(state["elapsed"])
        history = list(state.get("history") or [{"from_step": 0, "args": state.get("args")}])
        usage.ema = torch.tensor(state["usage_ema"])
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        log.info("resumed from %s at step %d", ckpt, start)
    else:
        if not args.init:
            init_codebook_from_data(vq, batch_for_step(args.seed + 999_983, 0, 256),
                                    np.random.default_rng([args.seed, 7]))
        normalize_codebook(vq)
    log.info("%s: %s, %d steps of %d, lr %.1e, %s", args.model_id,
             "VQGAN fine-tune" if gan else "VQ-VAE", args.steps, args.batch, args.lr,
             f"critic from step {args.disc_start}" if gan else "no critic")
    history.append({"from_step": start, "command": args.command})
    last_layer = vq.decoder.conv_out.weight

    def autoencode(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q = quantize(vq.quantize.embedding.weight, vq.encode(x).latents)
        return decode_latents(vq, q.z_q), q.z, q.indices, q.codebook_loss, q.commitment_loss

    # torch.compile fuses the group norms and activations: about 4x faster on a CPU (after a few
    # minutes of compiling, cached by inductor for later runs). Same losses, same data.
    if args.compile and gan:  # the adaptive weight backpropagates twice through the graph
        torch._functorch.config.donated_buffer = False
    forward = torch.compile(autoencode) if args.compile else autoencode
    critic = (torch.compile(disc) if args.compile else disc) if gan else None
    save_timer = Every(args.save_every)
    evals: list[dict[str, Any]] = list(state.get("quick_evals") or []) if state else []
    base_sharpness = None  # a VQGAN's quick evals compare it with the model it started from
    if gan and args.init and args.eval_every:
        originals = quick_eval_originals()
        with torch.random.fork_rng():  # loading a model must not move the run's random stream
            base_vq = VQModel.from_pretrained(Path(args.init), use_safetensors=True)
        base_sharpness = per_image_sharpness(originals, reconstruct(base_vq, originals)[0])
        del base_vq

    def checkpoint(step: int) -> None:
        save_checkpoint(ckpt, modules, optimizers,
                        {"step": step, "elapsed": elapsed + time.perf_counter() - t0,
                         "usage_ema": usage.ema.tolist(), "history": history,
                         "quick_evals": evals,
                         "torch_rng": torch.get_rng_state().tolist(),
                         "args": {k: str(v) for k, v in vars(args).items()}})
        log.info("checkpoint at step %d -> %s", step, ckpt)

    from tqdm.auto import tqdm

    bar = tqdm(total=args.steps, initial=start, disable=args.no_progress, desc=args.model_id,
               dynamic_ncols=True)
    t0, smooth = time.perf_counter(), {}
    stop = min(args.steps, args.stop_at) if args.stop_at else args.steps
    for step in range(start, stop):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        x = images_to_tensor(batch_for_step(args.seed, step, args.batch))  # (B, 3, 32, 32)
        recon, z, indices, codebook_loss, commitment_loss = forward(x)
        rec_loss = F.l1_loss(recon, x)
        if args.loss == "l1+mse":
            rec_loss = rec_loss + F.mse_loss(recon, x)
        loss = rec_loss + codebook_loss + args.beta * commitment_loss
        stats = {"rec": rec_loss.item(), "commit": commitment_loss.item()}
        if gan:
            edge_loss = F.l1_loss(sobel_magnitude(recon), sobel_magnitude(x))
            loss = loss + args.edge_weight * edge_loss
            stats["edge"] = edge_loss.item()
            if step >= args.disc_start:
                g_loss = hinge_g_loss(critic(recon))
                weight = adaptive_weight(rec_loss + args.edge_weight * edge_loss, g_loss,
                                         last_layer)
                loss = loss + args.disc_weight * weight * g_loss
                stats["g"], stats["w"] = g_loss.item(), weight.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        normalize_codebook(vq)
        if gan:
            d_loss = hinge_d_loss(critic(x), critic(recon.detach()))
            d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optimizer.step()
            stats["d"] = d_loss.item()
        usage.update(indices)
        if args.restart_every and not args.decoder_only and (step + 1) % args.restart_every == 0:
            restarted = usage.restart_dead(vq, z, np.random.default_rng([args.seed, step]),
                                           args.dead_below)
            if restarted:
                log.debug("step %d: restarted %d dead codes", step + 1, restarted)
        with torch.no_grad():
            stats["psnr"] = psnr(tensor_to_images(x), tensor_to_images(recon))
        smooth = {k: v if k not in smooth else 0.95 * smooth[k] + 0.05 * v
                  for k, v in stats.items()}
        bar.update(1)
        bar.set_postfix({k: f"{v:.3g}" for k, v in smooth.items()}, refresh=False)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            alive = int((usage.ema >= args.dead_below).sum())
            log.info("step %d/%d %s alive-codes %d lr %.2e", step + 1, args.steps,
                     " ".join(f"{k} {v:.4g}" for k, v in smooth.items()), alive,
                     optimizer.param_groups[0]["lr"])
        if args.eval_every and (step + 1) % args.eval_every == 0:
            figures = quick_eval(vq, base_sharpness=base_sharpness)
            evals.append({"step": step + 1, **figures})
            log.info("step %d quick eval (%d eval renders): %s", step + 1, QUICK_EVAL_N, figures)
        if save_timer():
            checkpoint(step + 1)
    bar.close()
    checkpoint(stop)
    elapsed += time.perf_counter() - t0
    log.removeHandler(file_log)
    summary = {
        "model_id": args.model_id,
        "command": args.command,
        "history": history,  # one entry per (resumed) run: the step it started at, its command
        "steps": stop,
        "batch": args.batch,
        "seed": args.seed,
        "train_seconds": round(elapsed, 1),
        "threads": args.threads,
        "lr": args.lr,
        "beta": args.beta,
        "reconstruction_loss": {"l1+mse": "L1 + MSE", "l1": "L1"}[args.loss] + " on [0, 1] pixels",
        "codebook": {"codes": num_codes, "dim": int(vq.quantize.embedding.weight.shape[1]),
                     "l2_normalised": True, "data_init": not args.init,
                     "dead_code_restart_every": args.restart_every,
                     "dead_below_ema_use": args.dead_below},
        "init": _repo_relative(args.init) if args.init else None,
        "decoder_only": args.decoder_only,
        "adversarial": {"critic": PatchDiscriminatorConfig().to_dict(), "loss": "hinge",
                        "weight": args.disc_weight, "adaptive": True,
                        "start_step": args.disc_start, "critic_lr": args.disc_lr,
                        "edge_loss_weight": args.edge_weight} if gan else None,
        "final_train_stats": {k: round(v, 4) for k, v in smooth.items()},
        "quick_evals": evals,
    }
    summary["compression"] = compression_of(args.model_id)
    return vq, summary


def from_checkpoint(args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model saved in ``RUN/checkpoint`` (e.g. to look at a run that is still going)."""
    from diffusers import VQModel

    ckpt = Path(args.run) / "checkpoint"
    if not (ckpt / "state.json").is_file():
        raise UserError(f"no checkpoint in {ckpt}")
    state = json.loads((ckpt / "state.json").read_text())["state"]
    saved = state.get("args", {})
    if saved.get("init") not in (None, "None"):
        vq = VQModel.from_pretrained(REPO_ROOT / saved["init"], use_safetensors=True)
    else:
        channels = json.loads(saved.get("block_out_channels", "null") or "null")
        architecture = architecture_of(args.model_id)
        codes = int(saved.get("codes", architecture["num_vq_embeddings"]))
        vq = build_vq({**architecture, "block_out_channels": channels or args.block_out_channels,
                       "num_vq_embeddings": codes})
    load_checkpoint(ckpt, {"vq": vq}, {})
    return vq, {"model_id": args.model_id, "steps": state["step"],
                "train_seconds": round(state["elapsed"], 1), "partial": True}


def export(vq: torch.nn.Module, summary: dict[str, Any], folder: Path) -> Path:
    """Write the diffusers ``save_pretrained`` folder (safetensors) and ``training.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vq.eval().save_pretrained(folder, safe_serialization=True)
    (folder / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return folder


def main(model_id: str, argv: list[str]) -> int:
    if model_id not in MODEL_IDS:
        raise UserError(f"this trainer makes {', '.join(MODEL_IDS)}, not {model_id}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    args = parse_args(model_id, argv)
    if args.export_only:
        vq, summary = from_checkpoint(args)
    else:
        vq, summary = train(args)
    folder = export(vq, summary, args.out)
    size = (folder / "diffusion_pytorch_model.safetensors").stat().st_size / 1e6
    log.info("exported %s (%.2f MB); measure it with `python -m mmstudio eval %s --write`",
             folder, size, model_id)
    return 0
