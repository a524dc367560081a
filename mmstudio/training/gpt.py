"""Train ``shapes-gpt``: a DALL-E v1 style token prior over ``shapes-vqvae``'s 8 x 8 codes.

One stream per image (``pipelines.token_stream``): the caption's open_clip tokens (the tokenizer
every shapes caption of the studio goes through), padded to 16, a begin-of-image token, then the
64 codes of the frozen ``shapes-vqvae`` in raster order (Ramesh et al. 2021, "Zero-Shot
Text-to-Image Generation"). The model is transformers' ``GPT2LMHeadModel`` (Radford et al. 2019):
4 layers, width 192, 4 heads, tied input/output embeddings, 1.9 M parameters (3.8 MB in fp16).
Width 192 rather than 256 for sampling speed: a step at batch 2 (one guided image) reads every
weight once, and 3.3 M fp32 weights (13 MB) fall out of a loaded CPU's caches where 1.9 M (7.6 MB)
stay in: 64 tokens took 0.19 s at width 256 and 0.07-0.08 s at 192 here (training: 0.94 against
1.3 it/s).
Loss: cross-entropy of each image token given everything before it, over the image codes only
(the text is given, never predicted: as DALL-E's image loss, without its 1/8 text term, since the
studio never asks the prior for a caption). Caption dropout (``--p-empty``) teaches the
unconditional stream that classifier-free guidance mixes against (Ho & Salimans 2022), and half
the captions are shortened (left-out attributes are drawn at random), as for the diffusion models.

Data: fresh shapes-world renders of the train split (no held-out colour/shape pair), encoded on
the fly by the shipped ``shapes-vqvae``; step ``s`` renders its batch from its own seed
(``seed * 1_000_003 + s``), so a resumed run sees the same data and the stream can be replayed.
AdamW with a linear warm-up and a cosine decay to zero, gradient clipping, an EMA of the weights
(the exported model). Every ``--check-every`` steps the EMA model writes ``--check-prompts``
evaluation captions (guidance ``--check-guidance``); the shapes analyzer reads the decoded images
and the log gives their adherence, so a run can be judged long before it ends.

    python -m mmstudio train shapes-gpt [--steps N] [--resume] [--run DIR] [--out DIR]

Resumable: a checkpoint goes to ``RUN/checkpoint`` every ``--save-minutes``; ``--resume``
continues. The exported folder (``save_pretrained``: config.json + model.safetensors, plus
token_stream.json, vq.json, training.json) goes to ``--out``, by default ``RUN/export``: a run
never writes into the shipped ``assets/models/shapes-gpt`` unless asked.
"""

from __future__ import annotations

import argparse
import copy
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
from mmstudio.pipelines.token_stream import ImageTokenStream
from mmstudio.training.checkpoint import (
    Every,
    load_checkpoint,
    require_checkpoint,
    save_checkpoint,
)

log = logging.getLogger("mmstudio.train.gpt")

MODEL_ID = "shapes-gpt"
SEED_STRIDE = 1_000_003  # step s draws its batch from seed * SEED_STRIDE + s (evaluation.overlap)


def shapes_stream(num_codes: int = 512, grid: int = 8) -> ImageTokenStream:
    """The stream of the shapes world: its caption words, then a ``grid`` x ``grid`` VQ grid."""
    from mmstudio.worlds import shapes

    return ImageTokenStream.for_words(sorted(shapes.VOCABULARY), num_codes, grid)


def build_gpt(stream: ImageTokenStream, layers: int = 4, width: int = 256, heads: int = 4) -> Any:
    """A ``GPT2LMHeadModel`` over the stream's vocabulary and length, no dropout (the data are
    endless), tied embeddings."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if width % heads:
        raise UserError(f"--width ({width}) must be a multiple of --heads ({heads})")
    config = GPT2Config(
        vocab_size=stream.vocab_size, n_positions=stream.length, n_embd=width, n_layer=layers,
        n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=stream.boi, eos_token_id=None, pad_token_id=None,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(config)


def image_loss(gpt: Any, streams: torch.Tensor, stream: ImageTokenStream) -> torch.Tensor:
    """Mean cross-entropy of the image tokens of (B, length) streams, over the image codes."""
    inputs = streams[:, :-1]
    logits = gpt(input_ids=inputs, logits_to_keep=stream.image_tokens).logits  # (B, 64, V)
    logits = logits[..., : stream.num_codes].float()
    targets = streams[:, stream.prefix_length:]  # (B, 64)
    return F.cross_entropy(logits.reshape(-1, stream.num_codes), targets.reshape(-1))


def batch_for_step(seed: int, step: int, batch: int, p_shorten: float, p_empty: float) -> Any:
    from mmstudio.worlds.datasets import WorldSampler

    sampler = WorldSampler("shapes", seed=seed * SEED_STRIDE + step, p_shorten=p_shorten,
                           p_empty=p_empty, split="train")
    return sampler.batch(batch)


def checkpointed(gpt: Any, ema: Any) -> dict[str, torch.nn.Module]:
    """The modules a checkpoint holds: the transformers without the LM head, which is tied to the
    token embedding (safetensors refuses two names for one tensor; loading restores both)."""
    return {"gpt": gpt.transformer, "ema": ema.transformer}


def learning_rate(step: int, args: argparse.Namespace) -> float:
    from mmstudio.training.unet import learning_rate as warmup_cosine

    return warmup_cosine(step, args)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m mmstudio train {MODEL_ID}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--p-empty", type=float, default=0.1, help="caption dropout (for guidance)")
    p.add_argument("--p-shorten", type=float, default=0.5, help="share of shortened captions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vq", default="shapes-vqvae", help="catalog id of the VQ model")
    p.add_argument("--check-every", type=int, default=1000,
                   help="steps between adherence checks in the log (0: none)")
    p.add_argument("--check-prompts", type=int, default=48)
    p.add_argument("--check-guidance", type=float, default=3.0)
    p.add_argument("--run", type=Path, default=REPO_ROOT / "runs" / MODEL_ID)
    p.add_argument("--out", type=Path, default=None, help="export folder (default RUN/export)")
    p.add_argument("--save-minutes", type=float, default=3.0)
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--stop-at", type=int, default=None,
                   help="stop (checkpoint, export) after this step; the schedule still ends at "
                        "--steps, so --resume continues the same run")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (measure it first on your machine)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        raise UserError("--steps and --batch must be at least 1")
    if args.check_every < 0 or args.check_prompts < 1:
        raise UserError("--check-every must be 0 or more and --check-prompts at least 1")
    args.out = args.out or args.run / "export"
    args.command = " ".join(["python -m mmstudio train", MODEL_ID, *argv])
    if args.resume:
        require_checkpoint(args.run / "checkpoint")  # before anything loads
    return args


def check(ema: Any, stream: ImageTokenStream, vq: Any, args: argparse.Namespace) -> dict:
    """The EMA model on the first ``--check-prompts`` evaluation captions, read by the analyzer."""
    from mmstudio.evaluation.unet import adherence_hits
    from mmstudio.pipelines.token_prior import ImagePrior, PriorSettings
    from mmstudio.worlds import shapes
    from mmstudio.worlds.datasets import eval_attrs

    prior = ImagePrior(ema, stream, vq, MODEL_ID, args.vq)

    def generate(captions: list[str], seed: int) -> np.ndarray:
        settings = PriorSettings(tuple(captions), guidance=args.check_guidance, seed=seed)
        return prior.run(settings).images

    was_training = ema.training
    ema.eval()
    try:
        return adherence_hits(generate, eval_attrs(shapes, args.check_prompts), seed=0,
                              batch=args.check_prompts)
    finally:
        ema.train(was_training)


def main(model_id: str, argv: list[str]) -> int:
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.tokenize import encode_indices, vq_info
    from mmstudio.training.unet import _weights_digest

    if model_id != MODEL_ID:
        raise UserError(f"this trainer makes {MODEL_ID}, not {model_id}")
    args = parse_args(argv)
    ckpt = Path(args.run) / "checkpoint"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    manager = ModelManager()
    vq = manager.get(args.vq)["vq"].float().to(device).eval().requires_grad_(False)
    args.vq_sha256 = _weights_digest(manager.catalog.resolve(args.vq))
    info = vq_info(vq)
    stream = shapes_stream(info.num_codes, info.grid)
    gpt = build_gpt(stream, args.layers, args.width, args.heads).to(device).train()
    ema = copy.deepcopy(gpt).requires_grad_(False)
    decay_params = [p for n, p in gpt.named_parameters() if p.ndim >= 2]
    other_params = [p for n, p in gpt.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay_params, "weight_decay": 0.01},
                                   {"params": other_params, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95))
    Path(args.run).mkdir(parents=True, exist_ok=True)
    start, elapsed, history = 0, 0.0, []
    if args.resume:
        state = load_checkpoint(ckpt, checkpointed(gpt, ema), {"adamw": optimizer})
        assert state is not None  # parse_args checked that there is one
        start, elapsed = int(state["step"]), float(state["elapsed"])
        history = list(state.get("history", []))
        log.info("resumed from step %d", start)
    history.append({"from_step": start, "command": args.command})
    params = sum(p.numel() for p in gpt.parameters())
    log.info("%s: %.2f M parameters (%d layers, width %d, %d heads), vocabulary %d (%d codes, "
             "%d text ids), stream %d tokens, batch %d", MODEL_ID, params / 1e6, args.layers,
             args.width, args.heads, stream.vocab_size, stream.num_codes,
             len(stream.text_table), stream.length, args.batch)
    loss_fn = torch.compile(image_loss) if args.compile else image_loss
    save_timer = Every(args.save_minutes * 60)
    t0 = time.perf_counter()

    def save(step: int) -> None:
        seconds = elapsed + time.perf_counter() - t0
        save_checkpoint(ckpt, checkpointed(gpt, ema), {"adamw": optimizer},
                        {"step": step, "elapsed": seconds, "history": history})
        export(ema, stream, args, step, seconds, history)

    running, step = 0.0, start
    stop = min(args.steps, args.stop_at) if args.stop_at else args.steps
    for step in range(start, stop):
        batch = batch_for_step(args.seed, step, args.batch, args.p_shorten, args.p_empty)
        codes = encode_indices(vq, batch.samples)  # (B, 8, 8)
        streams = stream.stream(batch.captions, codes).to(device)  # (B, 81)
        loss = loss_fn(gpt, streams, stream)
        lr = learning_rate(step, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            decay = min(args.ema, (1 + step) / (10 + step))
            torch._foreach_lerp_(list(ema.parameters()), list(gpt.parameters()), 1 - decay)
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step > start else value
        done = step + 1
        if done % 50 == 0 or done == args.steps:
            rate = (done - start) / (time.perf_counter() - t0)
            log.info("step %d/%d loss %.4f lr %.2e %.2f it/s eta %.0f min", done, args.steps,
                     running, lr, rate, (args.steps - done) / max(rate, 1e-9) / 60)
        if args.check_every and (done % args.check_every == 0 or done == args.steps):
            begun = time.perf_counter()
            result = check(ema, stream, vq, args)
            accuracy = ", ".join(f"{k} {v:.0%}" for k, v in result["attribute_accuracy"].items())
            held = result["adherence_held_out"]
            log.info("check at step %d: adherence %.1f%% on %d prompts (held out %s over %d), "
                     "guidance %g; %s (%.1f s)", done, 100 * result["adherence"],
                     result["samples"], "-" if held is None else f"{held:.0%}",
                     result["held_out_samples"], args.check_guidance, accuracy,
                     time.perf_counter() - begun)
        if save_timer():
            save(done)
    save(max(step + 1, start))
    log.info("done: %s; measure it with `python -m mmstudio eval %s --model-dir %s`",
             args.out, MODEL_ID, args.out)
    return 0


def export(ema: Any, stream: ImageTokenStream, args: argparse.Namespace, step: int,
           seconds: float, history: list) -> Path:
    """The library-native folder: ``save_pretrained`` in fp16 safetensors, the stream layout,
    the VQ model's id and the training record."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(ema).to("cpu", torch.float16).eval()
    model.save_pretrained(out, safe_serialization=True)
    stream.save(out)
    (out / "vq.json").write_text(json.dumps({"model_id": args.vq}) + "\n")
    (out / "training.json").write_text(json.dumps(
        {"step": step, "steps": args.steps, "batch": args.batch, "lr": args.lr,
         "warmup": args.warmup, "layers": args.layers, "width": args.width, "heads": args.heads,
         "ema": args.ema, "p_empty": args.p_empty, "p_shorten": args.p_shorten,
         "seed": args.seed, "seed_stride": SEED_STRIDE, "vq": args.vq,
         "vq_sha256": args.vq_sha256, "train_seconds": round(seconds, 1),
         "history": history}, indent=2) + "\n")
    return out
