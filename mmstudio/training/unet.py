"""Train ``shapes-unet``: a pixel-space text-to-image ``UNet2DConditionModel`` on the shapes world.

Diffusion objective with v-prediction on a cosine schedule (Nichol & Dhariwal 2021; Salimans & Ho
2022), Min-SNR loss weighting (Hang et al. 2023), caption dropout so that classifier-free guidance
works (Ho & Salimans 2022), an exponential moving average of the weights for sampling. Conditioning
is the per-token states of the frozen ``shapes-clip`` text tower, as Stable Diffusion uses CLIP's.

    python -m mmstudio train shapes-unet --steps 20000 [--resume]

Resumable: a checkpoint is written to ``--run`` every ``--save-minutes``; ``--resume`` continues
from it. The model folder (unet/ in fp16 safetensors, scheduler/, text_encoder.json) is written to
``--out`` at every checkpoint, by default ``RUN/export``: a run never writes into the shipped
``assets/models/shapes-unet`` unless asked.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from mmstudio.config import Settings
from mmstudio.pipelines.denoise import with_coordinates
from mmstudio.training.checkpoint import (
    Every,
    load_checkpoint,
    require_checkpoint,
    save_checkpoint,
)

log = logging.getLogger("mmstudio.train.unet")


def build_unet(channels: tuple[int, ...], cross_attention_dim: int, layers: int = 1,
               coords: bool = True):
    """Full-resolution block without attention, cross-attention at the lower resolutions, and an
    attention-pooled text embedding added to the timestep embedding ("text" addition embedding):
    a global path that learns colour, background and size fast, while cross-attention places.
    With ``coords``, two coordinate channels join the image at the input
    (``pipelines.denoise.with_coordinates``): without them, position was the one attribute the
    model had not learned after 4,700 steps (8%, below chance, with colour at 100%)."""
    from diffusers import UNet2DConditionModel

    from mmstudio.pipelines.denoise import COORD_CHANNELS

    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 1)
    up = ("CrossAttnUpBlock2D",) * (len(channels) - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(
        sample_size=32,
        in_channels=3 + (COORD_CHANNELS if coords else 0),
        out_channels=3,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=channels,
        layers_per_block=layers,
        cross_attention_dim=cross_attention_dim,
        # diffusers' legacy naming: for this class "attention_head_dim" is the number of heads
        attention_head_dim=tuple(max(1, c // 32) for c in channels),
        norm_num_groups=math.gcd(16, *channels),
        addition_embed_type="text",
        addition_embed_type_num_heads=max(1, cross_attention_dim // 32),
    )


def make_train_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction", clip_sample=True, clip_sample_range=1.0,
        timestep_spacing="trailing",
    )


class CaptionStates:
    """Token states of the frozen text tower, cached per caption (the grammar has few forms)."""

    def __init__(self, clip_model, tokenizer) -> None:
        self.model, self.tokenizer = clip_model, tokenizer
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, captions: list[str]) -> torch.Tensor:
        from mmstudio.pipelines.text import open_clip_token_states

        missing = sorted({c for c in captions if c not in self.cache})
        if missing:
            states = open_clip_token_states(self.model, self.tokenizer, missing)
            self.cache.update(zip(missing, states, strict=True))
        return torch.stack([self.cache[c] for c in captions])  # (B, L, D)


def learning_rate(step: int, args: argparse.Namespace, cycle_start: int = 0) -> float:
    """Linear warm-up, then cosine decay to zero at args.steps.

    The cycle starts at `cycle_start`: 0 for a fresh run, the starting model's step for
    --init-from (fresh optimizer state, so a new warm-up and a whole new cosine cycle).
    """
    done, length = step - cycle_start, max(1, args.steps - cycle_start)
    lr = args.lr * min(1.0, (done + 1) / args.warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, done / length)))


def to_model_range(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m mmstudio train shapes-unet")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--channels", default="32,64,128")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--coords", action=argparse.BooleanOptionalAction, default=True,
                        help="give the U-Net two coordinate channels (x, y) besides the image")
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--p-empty", type=float, default=0.1)
    parser.add_argument("--p-shorten", type=float, default=0.5)
    parser.add_argument("--min-snr", type=float, default=5.0,
                        help="Min-SNR gamma of the loss weighting; 0: the plain v-loss")
    parser.add_argument("--clip", default="shapes-clip", help="catalog id of the text encoder")
    parser.add_argument("--run", type=Path, default=Path("runs/shapes-unet"))
    parser.add_argument("--out", type=Path, default=None,
                        help="export folder, written at every checkpoint (default RUN/export; "
                        f"the shipped model is {settings.models_dir / 'shapes-unet'})")
    parser.add_argument("--save-minutes", type=float, default=3.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start from an exported shapes-unet folder (weights only, e.g. the "
                        "shipped model, when the run folder with optimizer state is gone)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    args.out = args.out or args.run / "export"
    if args.resume:
        require_checkpoint(args.run / "checkpoint")  # before anything loads
    return args


def main(model_id: str, argv: list[str]) -> int:
    from mmstudio.manager import ModelManager
    from mmstudio.worlds.datasets import WorldSampler

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    manager = ModelManager()
    clip = manager.get(args.clip)
    args.clip_sha256 = _weights_digest(manager.catalog.resolve(args.clip))
    clip_model = clip["model"].float().to(device)
    text_states = CaptionStates(clip_model, clip["tokenizer"])
    width = int(text_states([""]).shape[-1])
    channels = tuple(int(c) for c in args.channels.split(","))
    unet = build_unet(channels, width, args.layers, args.coords).to(device)
    ema = copy.deepcopy(unet).requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.01)
    scheduler = make_train_scheduler()
    alphas = scheduler.alphas_cumprod.to(device)

    start_step = cycle_start = 0
    if args.init_from is not None:
        from diffusers import UNet2DConditionModel

        shipped = UNet2DConditionModel.from_pretrained(args.init_from / "unet",
                                                       torch_dtype=torch.float32)
        weights = widen_conv_in(shipped.state_dict(), unet.conv_in.in_channels)
        unet.load_state_dict(weights)
        ema.load_state_dict(weights)
        previous = json.loads((args.init_from / "training.json").read_text())
        start_step = cycle_start = int(previous.get("step", 0))
        log.info("initialised from %s (step %d); a new learning-rate cycle to step %d",
                 args.init_from, start_step, args.steps)
    if args.resume:
        state = load_checkpoint(args.run / "checkpoint", {"unet": unet, "ema": ema},
                                {"adamw": optimizer})
        assert state is not None  # parse_args checked that there is one
        start_step = state["step"]
        cycle_start = int(state.get("cycle_start", 0))
        log.info("resumed from step %d", start_step)
    sampler = WorldSampler("shapes", seed=args.seed * 1_000_003 + start_step,
                           p_shorten=args.p_shorten, p_empty=args.p_empty, split="train")
    generator = torch.Generator().manual_seed(args.seed * 7919 + start_step)
    save_timer = Every(args.save_minutes * 60)
    params = sum(p.numel() for p in unet.parameters())
    log.info("shapes-unet: %.2f M parameters, channels %s, text width %d, batch %d",
             params / 1e6, channels, width, args.batch)

    def save(step: int) -> None:
        save_checkpoint(args.run / "checkpoint", {"unet": unet, "ema": ema},
                        {"adamw": optimizer}, {"step": step, "cycle_start": cycle_start, "args": {
                            k: str(v) if isinstance(v, Path) else v
                            for k, v in vars(args).items()}})
        export(ema, args, step)

    running, started, step = 0.0, time.perf_counter(), start_step
    for step in range(start_step, args.steps):
        batch = sampler.batch(args.batch)
        x0 = to_model_range(batch.samples).to(device)  # (B, 3, 32, 32)
        cond = text_states(batch.captions).to(device)  # (B, L, D)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        t = torch.randint(0, 1000, (args.batch,), generator=generator).to(device)
        x_t = scheduler.add_noise(x0, noise, t)
        target = scheduler.get_velocity(x0, noise, t)
        pred = unet(with_coordinates(x_t) if args.coords else x_t, t,
                    encoder_hidden_states=cond).sample
        snr = alphas[t] / (1 - alphas[t])
        if args.min_snr > 0:  # Min-SNR for v-prediction: x0-loss weight min(SNR, gamma)
            weight = torch.clamp(snr, max=args.min_snr) / (snr + 1)
        else:  # plain v-loss: x0-loss weight SNR + 1, more of it at high noise (layout)
            weight = torch.ones_like(snr)
        loss = (weight * (pred - target).pow(2).mean(dim=(1, 2, 3))).mean()
        lr = learning_rate(step, args, cycle_start)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            decay = min(args.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(list(ema.parameters()), list(unet.parameters()), 1 - decay)
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step > start_step else value
        if (step + 1) % 50 == 0:
            rate = (step + 1 - start_step) / (time.perf_counter() - started)
            eta = (args.steps - step - 1) / max(rate, 1e-9) / 60
            log.info("step %d/%d loss %.4f lr %.2e %.2f it/s eta %.0f min", step + 1,
                     args.steps, running, lr, rate, eta)
        if save_timer():
            save(step + 1)
    save(max(step + 1, start_step))
    log.info("done: %s", args.out)
    return 0


def widen_conv_in(state: dict[str, torch.Tensor], in_channels: int) -> dict[str, torch.Tensor]:
    """Weights of a U-Net with fewer input channels, for one with ``in_channels``: the new input
    channels (coordinates) start with zero weights, so the widened model computes exactly what the
    old one did and learns to use them."""
    weight = state["conv_in.weight"]  # (C_out, C_in, 3, 3)
    extra = in_channels - weight.shape[1]
    if extra < 0:
        raise ValueError(f"cannot narrow conv_in from {weight.shape[1]} to {in_channels} channels")
    if extra:
        zeros = weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])
        state = {**state, "conv_in.weight": torch.cat([weight, zeros], dim=1)}
    return state


def _weights_digest(folder: Path) -> str:
    """SHA-256 of the text encoder's weights: the U-Net is only valid with exactly these."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def export(ema, args: argparse.Namespace, step: int) -> None:
    """Write the library-native folder (fp16 safetensors keeps it under 10 MB)."""
    out: Path = args.out
    model = copy.deepcopy(ema).to("cpu", torch.float16)
    model.save_pretrained(out / "unet", safe_serialization=True)
    make_train_scheduler().save_pretrained(out / "scheduler")
    (out / "text_encoder.json").write_text(json.dumps({"model_id": args.clip}) + "\n")
    (out / "training.json").write_text(json.dumps(
        {"step": step, "steps": args.steps, "batch": args.batch, "lr": args.lr,
         "channels": args.channels, "layers": args.layers, "coords": args.coords,
         "ema": args.ema,
         "p_empty": args.p_empty, "p_shorten": args.p_shorten, "min_snr": args.min_snr,
         "seed": args.seed, "text_encoder": args.clip,
         "text_encoder_sha256": args.clip_sha256}, indent=2) + "\n")
