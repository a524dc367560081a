"""Train ``sounds-codec``: a neural audio codec with residual vector quantization, as EnCodec.

The model is transformers' ``EncodecModel`` (Defossez et al. 2022, "High Fidelity Neural Audio
Compression"), so the embedded codec and ``facebook/encodec_24khz`` run through the same code: a
SEANet convolutional encoder (16 kHz mono, strides 2 x 4 x 5 x 8 = 320 samples: 50 frames per
second, 64-dimensional) -> 4 residual VQ levels of 1,024 codes each -> a mirrored decoder.
Non-causal convolutions (the studio codes whole clips, never streams).

The library's quantizer is inference-only (its codebooks are buffers), so they are learned here as
SoundStream/EnCodec do (Zeghidour et al. 2021): each level quantizes what the levels above left
(the residual), its codebook follows an exponential moving average of the vectors assigned to each
code (k-means online; van den Oord et al. 2017, appendix), codes unused for a while are restarted
on vectors of the batch, a commitment loss pulls the encoder to its codes, and gradients pass the
quantizer straight through. Quantizer dropout (SoundStream): each step uses the first ``n`` levels
for a random ``n`` in 1..4, so decoding with fewer levels works (the ladder of the Audio tab).

Loss: L1 on the waveform (weight 1) + multi-scale spectral distance (spectral convergence +
log-magnitude L1 of mel spectrograms at windows 256 to 2,048 and the sounds analyzer's own
1,024 / hop 250, and of the linear-frequency spectrograms at windows of 1,024 and more; see
``SpectralLoss`` for why) + commitment.

Why the waveform weight of 1 (EnCodec uses 0.1) and the linear spectra: a first run of 4,000
steps with mel terms only and the waveform at 0.1 learned a codec that ignores phase. Its encoder
sent the magnitude of each 20 ms frame and its decoder drew the same waveform in every frame, so
the output repeated at the frame rate and its spectrum sat on a 50 Hz grid: a 220 Hz tone came
back as two lines at 200 and 250 Hz with nothing at 220, which mel bands about 35 Hz wide barely
see but the analyzer reads as energy below the fundamental (timbre unreadable on 68% of clips;
quantizer out of the loop, the autoencoder alone did the same). Probing autoencoders for 600
steps: mel only, sidebands +53 dB over the carrier (low sine); + linear spectra, +44 dB; +
linear spectra and the waveform at weight 1, -1.5 dB (low) and -26.8 dB (mid sine), still
falling, and a lower spectral loss too (0.53 vs 0.61). No adversarial term: the sounds
are tones and noise bands, which the spectral loss alone should rebuild well enough for the
analyzer (the card states what was measured).

Trained on random 0.32 s crops (16 frames) of fresh sounds-world renders (train split: no
held-out pitch/timbre pair); the convolutional encoder and decoder see every position alike.

    python -m mmstudio train sounds-codec [--steps N] [--resume] [--out DIR]

Resumable: a checkpoint goes to ``--run`` every ``--save-minutes``; ``--resume`` continues (the
batch of a step comes from that step's own seed). The export (``save_pretrained``: config.json +
model.safetensors, and training.json) goes to ``--out``, by default ``RUN/export``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmstudio.config import REPO_ROOT
from mmstudio.errors import UserError
from mmstudio.training.checkpoint import Every, load_checkpoint, save_checkpoint
from mmstudio.training.vq import lr_at

log = logging.getLogger("mmstudio.train.codec")

MODEL_ID = "sounds-codec"

#: The ``EncodecConfig``: 16 kHz, hop 320 (50 frames/s), 4 levels x 1,024 codes (500 bit/s each,
#: so the target bandwidths 0.5 ... 2.0 kbit/s select 1 ... 4 levels, as the 24 kHz model's do).
ARCHITECTURE: dict[str, Any] = {
    "sampling_rate": 16_000,
    "audio_channels": 1,
    "upsampling_ratios": [8, 5, 4, 2],
    "target_bandwidths": [0.5, 1.0, 1.5, 2.0],
    "codebook_size": 1024,
    "hidden_size": 64,
    "num_filters": 8,
    "num_lstm_layers": 1,
    "num_residual_layers": 1,
    "use_causal_conv": False,
    "norm_type": "weight_norm",
    "normalize": False,
}

#: (n_fft, hop) of the spectral loss; (1024, 250) is the sounds analyzer's own mel.
SPECTRAL_SCALES = ((256, 64), (512, 128), (1024, 256), (2048, 512), (1024, 250))


class FastELU(torch.nn.Module):
    """ELU (alpha 1) as max(x, 0) + exp(min(x, 0)) - 1: the same function, twice as fast as
    ``nn.ELU`` on a CPU (ELU was 28% of a training step). Swapped in for training only; the
    saved model is the library's (ELU has no weights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0) + x.clamp(max=0).exp() - 1


def use_fast_elu(model: torch.nn.Module) -> None:
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, torch.nn.ELU) and child.alpha == 1.0:
                setattr(module, name, FastELU())


def build_codec(**overrides: Any) -> torch.nn.Module:
    from transformers import EncodecConfig, EncodecModel

    return EncodecModel(EncodecConfig(**{**ARCHITECTURE, **overrides}))


class SpectralLoss(torch.nn.Module):
    """Multi-scale mel distance: the mean over scales of the spectral convergence of the mel
    magnitudes, ||M_y - M_x|| / ||M_x|| (Arik et al. 2019; the multi-resolution STFT loss of
    Yamamoto et al. 2020, "Parallel WaveGAN"), plus ``log_weight`` x L1 of their logs.

    Why these: with L1 on mel magnitudes and on log mel (an EnCodec-like loss) and no adversary,
    both a full run (450 steps) and a one-batch overfit (60 steps) collapsed onto silence: an
    autoencoder that cannot yet place energy precisely lowers every loss by making none.
    Spectral convergence of silence is 1, so the loss only falls by matching energy (measured:
    output std 0.0008 -> 0.30 in 80 steps on the overfit batch, loss 1.10 -> 0.53). The log term
    shapes the quiet bins between harmonics that tell the timbres apart; its floor ``eps`` is
    0.1 in magnitude at a 1,024 window (scaled with the window), about 50 dB below the loudest
    mel bin of a world sound, far more than the analyzer's thresholds (10-20 dB) need."""

    def __init__(self, sample_rate: int, scales: tuple[tuple[int, int], ...] = SPECTRAL_SCALES,
                 n_mels: int = 64, floor: float = 0.1, log_weight: float = 0.25,
                 linear_from: int = 1024) -> None:
        import librosa

        super().__init__()
        self.scales, self.floor, self.log_weight = scales, floor, log_weight
        self.linear_from = linear_from
        for i, (n_fft, _) in enumerate(scales):
            mels = min(n_mels, n_fft // 8)
            fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=mels, fmin=20.0,
                                     fmax=sample_rate / 2)
            self.register_buffer(f"fb{i}", torch.from_numpy(fb).float(), persistent=False)
            self.register_buffer(f"win{i}", torch.hann_window(n_fft), persistent=False)

    def mel(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Mel power (B, mels, T) of (B, N) audio at scale ``i``."""
        return getattr(self, f"fb{i}") @ self.power(x, i)

    def power(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Linear-frequency power spectrogram (B, F, T) of (B, N) audio at scale ``i``."""
        n_fft, hop = self.scales[i]
        return torch.stft(x, n_fft, hop, window=getattr(self, f"win{i}"), center=True,
                          pad_mode="constant", return_complex=True).abs().pow(2)

    def _distance(self, py: torch.Tensor, px: torch.Tensor, eps: float) -> torch.Tensor:
        my, mx = py.clamp_min(1e-12).sqrt(), px.clamp_min(1e-12).sqrt()  # magnitudes
        return ((my - mx).norm() / mx.norm().clamp_min(1e-6)
                + self.log_weight * F.l1_loss(torch.log(my + eps), torch.log(mx + eps)))

    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y, x = y.reshape(-1, y.shape[-1]), x.reshape(-1, x.shape[-1])  # (B, N)
        total = y.new_zeros(())
        terms = 0
        for i, (n_fft, _) in enumerate(self.scales):
            py, px = self.power(y, i), self.power(x, i)
            eps = self.floor * n_fft / 1024  # magnitude grows with the window
            fb = getattr(self, f"fb{i}")
            total = total + self._distance(fb @ py, fb @ px, eps)
            terms += 1
            if n_fft >= self.linear_from:  # the same STFT on its linear frequency axis
                total = total + self._distance(py, px, eps)
                terms += 1
        return total / terms


class CodeUsage(torch.nn.Module):
    """How often each code of each level was picked lately: an EMA (decay 0.9) of assignments
    per step, (levels, K). A code whose usage falls below ``threshold`` is dead and restarted on
    a vector of the batch. The codebook's own ``cluster_size`` (decay 0.99) is too slow for that
    here: after a collapse onto one code, the others would wait ~200 steps, and a batch has only
    512 frames for 1,024 codes (EnCodec's threshold of 2 assumes many thousand). A module, so
    that checkpoints carry it."""

    def __init__(self, levels: int, codes: int, decay: float = 0.9,
                 threshold: float = 0.01) -> None:
        super().__init__()
        self.decay, self.threshold = decay, threshold
        self.register_buffer("usage", torch.ones(levels, codes))

    @torch.no_grad()
    def update(self, level: int, indices: torch.Tensor) -> torch.Tensor:
        """Record one step's picks of ``level``; returns the mask of its dead codes."""
        counts = torch.bincount(indices, minlength=self.usage.shape[1]).to(self.usage.dtype)
        self.usage[level].mul_(self.decay).add_(counts, alpha=1 - self.decay)
        return self.usage[level] < self.threshold

    @torch.no_grad()
    def revive(self, level: int, dead: torch.Tensor) -> None:
        self.usage[level, dead] = 1.0


@torch.no_grad()
def _ema_update(codebook: Any, vectors: torch.Tensor, indices: torch.Tensor, decay: float,
                dead: torch.Tensor | None, generator: torch.Generator) -> int:
    """One online k-means step of a level's codebook (buffers of ``EncodecEuclideanCodebook``)
    and the restart of its ``dead`` codes on random vectors of the batch; returns how many
    were restarted. ``vectors`` (N, D) are the residuals the level saw, ``indices`` (N,)."""
    k = codebook.embed.shape[0]
    onehot = F.one_hot(indices, k).type(vectors.dtype)  # (N, K)
    codebook.cluster_size.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
    codebook.embed_avg.mul_(decay).add_(onehot.t() @ vectors, alpha=1 - decay)
    n = codebook.cluster_size.sum()
    smoothed = (codebook.cluster_size + 1e-5) / (n + k * 1e-5) * n  # Laplace smoothing
    codebook.embed.copy_(codebook.embed_avg / smoothed[:, None])
    n_dead = 0 if dead is None else int(dead.sum())
    if n_dead:
        pick = torch.randint(0, vectors.shape[0], (n_dead,), generator=generator)
        fresh = vectors[pick.to(vectors.device)]
        size = codebook.cluster_size[~dead].mean() if bool((~dead).any()) else 1.0
        codebook.embed[dead] = fresh
        codebook.embed_avg[dead] = fresh * size
        codebook.cluster_size[dead] = size
    return n_dead


def quantize_train(quantizer: Any, embeddings: torch.Tensor, n_levels: int,
                   usage: CodeUsage | None = None, decay: float = 0.99,
                   generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Residual VQ of encoder output (B, D, F) with the first ``n_levels`` levels: returns the
    quantized embeddings with a straight-through gradient (B, D, F), the commitment loss (sum
    over levels of the mean squared distance of each residual to its code) and the number of
    codes restarted. With ``usage`` the codebooks learn (EMA k-means + dead-code restarts);
    without, they stay as they are."""
    b, d, f = embeddings.shape
    residual = embeddings.permute(0, 2, 1).reshape(-1, d)  # (B*F, D)
    quantized = torch.zeros_like(residual)
    commit = embeddings.new_zeros(())
    restarted = 0
    generator = generator or torch.Generator().manual_seed(0)
    for level, layer in enumerate(quantizer.layers[:n_levels]):
        book = layer.codebook
        with torch.no_grad():
            distance = torch.cdist(residual.detach(), book.embed)  # (N, K)
            index = distance.argmin(dim=1)
        code = book.embed[index]  # (N, D), a buffer: no gradient
        commit = commit + F.mse_loss(residual, code)
        if usage is not None:
            dead = usage.update(level, index)
            restarted += _ema_update(book, residual.detach(), index, decay, dead, generator)
            usage.revive(level, dead)
        quantized = quantized + code
        residual = residual - code
    flat = embeddings.permute(0, 2, 1).reshape(-1, d)
    straight = flat + (quantized - flat).detach()
    return straight.reshape(b, f, d).permute(0, 2, 1), commit, restarted


@torch.no_grad()
def init_codebooks(model: Any, x: torch.Tensor, generator: torch.Generator,
                   iters: int = 10) -> None:
    """Start each level's codebook by k-means on the residuals of a batch (as EnCodec's
    ``kmeans_init``): level 1 on the encoder output, level l on what levels < l leave."""
    e = model.encoder(x)
    residual = e.permute(0, 2, 1).reshape(-1, e.shape[1])  # (N, D)
    for layer in model.quantizer.layers:
        book = layer.codebook
        k = book.embed.shape[0]
        centres = residual[torch.randint(0, residual.shape[0], (k,), generator=generator)]
        centres = centres + 1e-3 * residual.std() * torch.randn(centres.shape, generator=generator)
        for _ in range(iters):
            index = torch.cdist(residual, centres).argmin(dim=1)
            counts = torch.bincount(index, minlength=k).float()
            sums = torch.zeros_like(centres).index_add_(0, index, residual)
            used = counts > 0
            centres[used] = sums[used] / counts[used, None]
        index = torch.cdist(residual, centres).argmin(dim=1)
        counts = torch.bincount(index, minlength=k).float()
        book.embed.copy_(centres)
        book.embed_avg.copy_(centres * counts.clamp_min(1.0)[:, None])
        book.cluster_size.copy_(counts.clamp_min(1.0))
        book.inited.fill_(1.0)
        residual = residual - centres[index]


#: A generic signal is never closer (in octaves) to a held-out pair's pitch than to any other
#: pitch of the world, for that pair's kind of signal: half an octave on either side.
HELD_OUT_MARGIN_OCTAVES = 0.5


def _near(freq: float, pitch: str) -> bool:
    from mmstudio.worlds import sounds

    return abs(np.log2(freq / sounds.PITCHES[pitch])) < HELD_OUT_MARGIN_OCTAVES


def generic_clip(rng: np.random.Generator) -> np.ndarray:
    """One second (16000,) float32 of a signal of the world's kinds at any frequency, so that the
    codec learns to code tones and noise bands rather than the 30 sounds of the training split:
    a harmonic tone (fundamental log-uniform in 110-1,760 Hz; harmonic k at amplitude k^-a, a in
    0.3-4, all harmonics or odd ones only) or a noise band (centre log-uniform in 110-3,520 Hz,
    width 0.15-0.6 octave), under the world's note envelopes and peak range.

    The held-out pairs stay unheard: no noise band centred within half an octave of 220 Hz (low
    noise), and no tone with all harmonics and a second harmonic within 12 dB of the
    fundamental (what the analyzer reads as a sawtooth) within half an octave of 880 Hz (high
    sawtooth). Half an octave is the midpoint to the neighbouring pitches of the world, so
    nothing drawn here is nearer a held-out pair than a seen one; and a draw that the sounds
    analyzer reads as a held-out pair (a wide band centred at 150 Hz can) is drawn again."""
    from mmstudio.worlds import sounds

    sr, n = sounds.SAMPLE_RATE, sounds.CLIP_SAMPLES
    t = np.arange(n) / sr
    while True:
        if rng.random() < 0.7:  # a harmonic tone
            f0 = float(np.exp(rng.uniform(np.log(110.0), np.log(1760.0))))
            slope = float(rng.uniform(0.3, 4.0))
            odd = bool(rng.random() < 0.4)
            saw_like = not odd and 2.0 ** -slope >= 10 ** (-12 / 20)
            if saw_like and _near(f0, "high"):
                continue
            k = np.arange(1, int((sr / 2 - 1) // f0) + 1)
            if odd:
                k = k[k % 2 == 1]
            phase = rng.uniform(0, 2 * np.pi)
            carrier = (k[:, None] ** -slope * np.sin(
                2 * np.pi * f0 * k[:, None] * t[None] + k[:, None] * phase)).sum(0)
        else:  # a noise band
            centre = float(np.exp(rng.uniform(np.log(110.0), np.log(3520.0))))
            if _near(centre, "low"):
                continue
            width = float(rng.uniform(0.15, 0.6))
            spec = np.fft.rfft(rng.standard_normal(n))
            f = np.fft.rfftfreq(n, 1 / sr)
            octaves = np.log2(np.maximum(f, 1.0) / centre)
            gain = np.exp(-0.25 * (octaves / width) ** 2)
            gain[0] = 0.0
            carrier = np.fft.irfft(spec * gain, n=n)
        pattern = sounds.PATTERNS[int(rng.integers(len(sounds.PATTERNS)))]
        clip = carrier * sounds.envelope(sounds.note_times(pattern, rng))
        peak = np.abs(clip).max()
        if peak == 0:
            continue
        clip = (clip * rng.uniform(*sounds.PEAK_RANGE) / peak).astype(np.float32)
        if not sounds.is_held_out(sounds.describe(clip)):  # and what the analyzer reads
            return clip


GENERIC_POOL = 2048


@cache
def generic_pool(seed: int, size: int | None = None) -> np.ndarray:
    """(size, 16000) float32 ``generic_clip``s drawn once per run (a draw costs tens of
    milliseconds, too much for every step); the steps take random crops of them."""
    size = size or GENERIC_POOL
    rng = np.random.default_rng([seed, 13])
    log.info("drawing %d generic training signals", size)
    return np.stack([generic_clip(rng) for _ in range(size)])


def crops_for_step(seed: int, step: int, batch: int, length: int,
                   generic: float = 0.0) -> np.ndarray:
    """(B, length) float32 random crops of fresh training renders, from the step's own seed; a
    share ``generic`` of them from ``generic_clip`` instead."""
    from mmstudio.worlds.datasets import WorldSampler

    sampler = WorldSampler("sounds", seed=seed * 1_000_003 + step, p_shorten=0.0, p_empty=0.0,
                           split="train")
    clips = sampler.batch(batch).samples  # (B, 16000)
    n_generic = int(round(generic * batch))
    if n_generic:
        pool = generic_pool(seed)
        pick = np.random.default_rng([seed, step, 11]).integers(0, len(pool), n_generic)
        clips = np.concatenate([clips[: batch - n_generic], pool[pick]])
    rng = np.random.default_rng([seed, step, 7])
    starts = rng.integers(0, clips.shape[1] - length + 1, batch)
    return np.stack([clip[s:s + length] for clip, s in zip(clips, starts, strict=True)])


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m mmstudio train {MODEL_ID}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--crop", type=int, default=5_120,
                   help="training crop in samples (a multiple of the hop, 320)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ae-warmup", type=int, default=500,
                   help="steps as a plain autoencoder before the codebooks start (k-means on "
                        "the warmed-up encoder's output): codebooks started on a random encoder "
                        "collapse onto one code as the encoder moves")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--filters", type=int, default=ARCHITECTURE["num_filters"])
    p.add_argument("--commit", type=float, default=1.0, help="commitment loss weight")
    p.add_argument("--wave", type=float, default=1.0, help="waveform L1 weight")
    p.add_argument("--generic", type=float, default=0.0,
                   help="share of each batch drawn from generic tones and noise bands at any "
                        "frequency (generic_clip), never near a held-out pair")
    p.add_argument("--log-weight", type=float, default=0.25,
                   help="weight of the log-magnitude L1 in the spectral loss (the quiet bins "
                        "between and around harmonics)")
    p.add_argument("--decay", type=float, default=0.99, help="codebook EMA decay")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run", type=Path, default=REPO_ROOT / "runs" / MODEL_ID)
    p.add_argument("--out", type=Path, default=None, help="export folder (default RUN/export)")
    p.add_argument("--save-minutes", type=float, default=3.0)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        raise UserError("--steps and --batch must be at least 1")
    hop = int(np.prod(ARCHITECTURE["upsampling_ratios"]))
    if args.crop < hop or args.crop % hop:
        raise UserError(f"--crop must be a positive multiple of the hop ({hop} samples)")
    args.out = args.out or args.run / "export"
    args.command = " ".join(["python -m mmstudio train", MODEL_ID, *argv])
    return args


def export(model: torch.nn.Module, args: argparse.Namespace, step: int, seconds: float,
           history: list) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    (out / "training.json").write_text(json.dumps(
        {"model_id": MODEL_ID, "step": step, "steps": args.steps, "batch": args.batch,
         "crop_samples": args.crop, "lr": args.lr, "filters": args.filters,
         "commit": args.commit, "wave": args.wave, "log_weight": args.log_weight,
         "generic": args.generic,
         "decay": args.decay, "seed": args.seed,
         "ae_warmup": args.ae_warmup,
         "spectral_scales": SPECTRAL_SCALES, "linear_spectra_from": 1024,
         "quantizer_dropout": "uniform 1..levels",
         "train_seconds": round(seconds, 1), "history": history}, indent=2) + "\n")
    return out


def main(model_id: str, argv: list[str]) -> int:
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
    model = build_codec(num_filters=args.filters).to(device).train()
    use_fast_elu(model)
    levels = int(model.config.num_quantizers)
    spectral = SpectralLoss(int(model.config.sampling_rate), log_weight=args.log_weight).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.5, 0.9))
    generator = torch.Generator().manual_seed(args.seed)
    Path(args.run).mkdir(parents=True, exist_ok=True)
    usage = CodeUsage(levels, int(model.config.codebook_size)).to(device)
    start, elapsed, history = 0, 0.0, []
    if args.resume:
        state = load_checkpoint(ckpt, {"codec": model, "usage": usage}, {"adam": optimizer})
        start, elapsed = int(state["step"]), float(state["elapsed"])
        history = list(state.get("history", []))
        log.info("resumed from step %d", start)
    history.append({"from_step": start, "command": args.command})
    params = sum(p.numel() for p in model.parameters())
    log.info("%s: %.2f M parameters, %d levels x %d codes, %g frames/s, batch %d x %d samples",
             MODEL_ID, params / 1e6, levels, model.config.codebook_size,
             model.config.frame_rate, args.batch, args.crop)
    save_timer = Every(args.save_minutes * 60)
    t0 = time.perf_counter()
    smooth: dict[str, float] = {}

    def save(step: int) -> None:
        seconds = elapsed + time.perf_counter() - t0
        save_checkpoint(ckpt, {"codec": model, "usage": usage}, {"adam": optimizer},
                        {"step": step, "elapsed": seconds, "history": history})
        export(model, args, step, seconds, history)

    step = start
    for step in range(start, args.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        x = torch.from_numpy(crops_for_step(args.seed, step, args.batch, args.crop,
                                            args.generic))
        x = x[:, None].to(device)  # (B, 1, N)
        if step == args.ae_warmup:
            init = torch.from_numpy(crops_for_step(args.seed + 17, step, 4 * args.batch,
                                                   args.crop, args.generic))
            init_codebooks(model, init[:, None].to(device), generator)
            log.info("step %d: codebooks started by k-means on the encoder's output", step)
        n_levels = int(np.random.default_rng([args.seed, step, 3]).integers(1, levels + 1))
        generator.manual_seed(args.seed * 7919 + step)
        e = model.encoder(x)  # (B, 64, F)
        if step < args.ae_warmup:  # a plain autoencoder first
            q, commit, restarted = e, e.new_zeros(()), 0
        else:
            q, commit, restarted = quantize_train(model.quantizer, e, n_levels, usage,
                                                  decay=args.decay, generator=generator)
        y = model.decoder(q)[..., : x.shape[-1]]  # (B, 1, N)
        wave = F.l1_loss(y, x)
        spec = spectral(y, x)
        loss = args.wave * wave + spec + args.commit * commit
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        stats = {"spec": spec.item(), "wave": wave.item(), "commit": commit.item(),
                 "restarts": float(restarted)}
        smooth = {k: v if k not in smooth else 0.95 * smooth[k] + 0.05 * v
                  for k, v in stats.items()}
        if (step + 1) % args.log_every == 0:
            rate = (step + 1 - start) / (time.perf_counter() - t0)
            log.info("step %d/%d %s lr %.2e %.2f it/s eta %.0f min", step + 1, args.steps,
                     " ".join(f"{k} {v:.4g}" for k, v in smooth.items()),
                     optimizer.param_groups[0]["lr"], rate,
                     (args.steps - step - 1) / rate / 60)
        if save_timer():
            save(step + 1)
    save(max(step + 1, start))
    log.info("done: %s; measure it with `python -m mmstudio eval %s --model-dir %s`",
             args.out, MODEL_ID, args.out)
    return 0
