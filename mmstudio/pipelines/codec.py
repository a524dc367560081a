"""Neural audio codec tokens: encode a clip into residual-VQ codes and decode any subset of levels.

Works on transformers' ``EncodecModel`` (Defossez et al. 2022, "High Fidelity Neural Audio
Compression"; its residual vector quantizer comes from Zeghidour et al. 2021, "SoundStream"), the
class of both the embedded ``sounds-codec`` and the hub's ``facebook/encodec_24khz``. A clip is
encoded once with every level; decoding with the first ``k`` levels is then the sum of the first
``k`` codebook vectors per frame through the decoder, exactly what ``EncodecModel.decode`` does
with ``k`` codebooks (tested), and it also allows what the library's call cannot: zeroing or
replacing one level in the middle of the stack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class CodecInfo:
    """The numbers of a codec: rates, levels and the bitrate of each level count."""

    sample_rate: int
    hop_length: int
    frame_rate: float  # frames per second
    levels: int
    codebook_size: int

    @property
    def bits_per_code(self) -> float:
        return math.log2(self.codebook_size)

    def bitrate(self, k: int) -> float:
        """Bits per second with the first ``k`` levels: frames/s x k x log2(codebook size)."""
        return self.frame_rate * k * self.bits_per_code

    def bitrate_sentence(self, k: int) -> str:
        return (f"{self.frame_rate:g} frames/s x {k} level{'s' * (k != 1)} x "
                f"{self.bits_per_code:g} bits = {self.bitrate(k) / 1000:g} kbit/s")


def codec_info(model: Any) -> CodecInfo:
    cfg = model.config
    return CodecInfo(sample_rate=int(cfg.sampling_rate), hop_length=int(cfg.hop_length),
                     frame_rate=cfg.sampling_rate / cfg.hop_length,
                     levels=int(cfg.num_quantizers), codebook_size=int(cfg.codebook_size))


def _as_batch(audio: np.ndarray | torch.Tensor, model: Any) -> torch.Tensor:
    """(N,) or (B, N) mono audio at the codec's rate -> (B, 1, N) float on the model's device."""
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"expected mono audio (N,) or (B, N), got {tuple(x.shape)}")
    param = next(model.parameters())
    return x[:, None, :].to(param.device, param.dtype)


@torch.inference_mode()
def encode(model: Any, audio: np.ndarray | torch.Tensor, levels: int | None = None) -> torch.Tensor:
    """Codes of every level: (B, levels, frames) int64 (or (levels, frames) for one clip)."""
    single = np.ndim(audio) == 1
    x = _as_batch(audio, model)
    info = codec_info(model)
    k = info.levels if levels is None else int(levels)
    if not 1 <= k <= info.levels:
        raise ValueError(f"levels must be between 1 and {info.levels}, got {k}")
    embeddings = model.encoder(x)  # (B, D, frames)
    codes = model.quantizer.encode(embeddings, bandwidth=info.bitrate(k) / 1000)  # (k, B, F)
    codes = codes.transpose(0, 1).contiguous()  # (B, k, frames)
    return codes[0] if single else codes


def embeddings_of(model: Any, codes: torch.Tensor, keep: list[bool] | None = None) -> torch.Tensor:
    """Sum of the codebook vectors of the kept levels: (B, D, frames). ``codes`` (B, L, F)."""
    layers = model.quantizer.layers
    total = None
    for level in range(codes.shape[1]):
        if keep is not None and not keep[level]:
            continue
        part = layers[level].decode(codes[:, level])  # (B, D, F)
        total = part if total is None else total + part
    if total is None:  # nothing kept: the all-zero embedding
        dim = layers[0].codebook.embed.shape[1]
        total = torch.zeros(codes.shape[0], dim, codes.shape[2],
                            device=codes.device, dtype=layers[0].codebook.embed.dtype)
    return total


@torch.inference_mode()
def decode(model: Any, codes: torch.Tensor, k: int | None = None,
           keep: list[bool] | None = None, length: int | None = None) -> np.ndarray:
    """Audio from the first ``k`` levels of ``codes`` ((levels, frames) or (B, levels, frames)),
    optionally keeping only the levels flagged in ``keep``; float32 (N,) or (B, N)."""
    single = codes.ndim == 2
    codes = codes[None] if single else codes
    if k is not None:
        codes = codes[:, :k]
    audio = model.decoder(embeddings_of(model, codes.to(next(model.parameters()).device), keep))
    audio = audio[:, 0].float().cpu().numpy()  # (B, N)
    if length is not None:
        audio = audio[:, :length]
    return audio[0] if single else audio


def replace_level(codes: torch.Tensor, level: int, how: str, seed: int = 0,
                  codebook_size: int = 1024, other: torch.Tensor | None = None) -> torch.Tensor:
    """A copy of ``codes`` (levels, frames) with one level changed: ``zero`` keeps the codes but
    the caller drops the level (see ``decode(keep=...)``); ``random`` draws codes uniformly;
    ``other`` takes that level from another clip's codes."""
    out = codes.clone()
    if how == "random":
        g = torch.Generator().manual_seed(seed)
        out[level] = torch.randint(0, codebook_size, (codes.shape[1],), generator=g)
    elif how == "other":
        if other is None:
            raise ValueError("replacing a level from another clip needs that clip's codes")
        out[level] = other[level, : codes.shape[1]]
    elif how != "zero":
        raise ValueError(f"unknown replacement '{how}'")
    return out


@dataclass
class SoundTokens:
    """A clip as codec tokens: the codes of every level and the clip at the codec's rate."""

    codes: torch.Tensor  # (levels, frames) int64
    info: CodecInfo
    audio: np.ndarray  # (N,) float32 at info.sample_rate: what was encoded
    notes: list[str]

    @property
    def frames(self) -> int:
        return int(self.codes.shape[1])

    def arithmetic(self) -> str:
        i = self.info
        seconds = len(self.audio) / i.sample_rate
        return (f"{len(self.audio):,} samples ({seconds:.2f} s at {i.sample_rate:,} Hz) -> "
                f"{self.frames} frames ({i.frame_rate:g} per second, one per {i.hop_length} "
                f"samples) x {i.levels} levels = {self.frames * i.levels:,} tokens of "
                f"{i.bits_per_code:g} bits; all levels: {i.bitrate_sentence(i.levels)}, vs "
                f"{i.sample_rate * 16 / 1000:g} kbit/s for 16-bit PCM.")


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling (librosa, soxr) of mono float audio."""
    if rate_in == rate_out:
        return np.asarray(audio, dtype=np.float32)
    import librosa

    return librosa.resample(np.asarray(audio, dtype=np.float32), orig_sr=rate_in,
                            target_sr=rate_out, res_type="soxr_hq").astype(np.float32)


def tokenize_sound(model: Any, audio: np.ndarray, sample_rate: int) -> SoundTokens:
    """Resample a mono clip to the codec's rate when needed (with a note), pad it to whole frames
    and encode it with every level."""
    info = codec_info(model)
    notes: list[str] = []
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("expected a non-empty mono clip")
    if sample_rate != info.sample_rate:
        x = resample(x, sample_rate, info.sample_rate)
        notes.append(f"resampled {sample_rate:,} Hz -> {info.sample_rate:,} Hz for this codec")
    pad = (-len(x)) % info.hop_length
    if pad:
        x = np.pad(x, (0, pad))
        notes.append(f"padded with {pad} zeros to whole frames of {info.hop_length} samples")
    return SoundTokens(encode(model, x), info, x, notes)


def reconstruct(model: Any, tokens: SoundTokens, k: int | None = None,
                keep: list[bool] | None = None, codes: torch.Tensor | None = None) -> np.ndarray:
    """The clip decoded from the first ``k`` levels (all by default) of ``codes`` (the tokens'
    own by default), optionally dropping levels (``keep``); at the codec's rate."""
    return decode(model, tokens.codes if codes is None else codes, k=k, keep=keep,
                  length=len(tokens.audio))


ACTIVE_DB = 40.0  # spectral distances look at frames within this of the original's loudest
DB_PER_NEPER = 10.0 / math.log(10.0)  # natural-log power -> dB


def mel_distance_db(original: np.ndarray, decoded: np.ndarray) -> float:
    """Mean absolute difference of the analyzer's log-mel spectrograms (16 kHz clips of equal
    length), in dB of power, over the frames where the original sounds (within 40 dB of its
    loudest frame), so that silence does not dilute it."""
    from mmstudio.worlds import audio

    a, b = audio.mel_spectrogram(original), audio.mel_spectrogram(decoded)  # (64, T)
    loudness = a.max(axis=0)  # (T,)
    active = loudness >= loudness.max() - ACTIVE_DB / DB_PER_NEPER
    return float(np.abs(a - b)[:, active].mean() * DB_PER_NEPER)


@dataclass(frozen=True)
class LadderRow:
    levels: int
    bitrate: float  # bit/s
    mel_distance_db: float
    read: Any  # what the sounds analyzer reads from the reconstruction (SoundAttrs)


def to_16k(audio_at_codec_rate: np.ndarray, info: CodecInfo) -> np.ndarray:
    """The codec's output at the studio's rate (the sounds world's 16 kHz), for the analyzer."""
    from mmstudio.worlds import audio

    return resample(audio_at_codec_rate, info.sample_rate, audio.SAMPLE_RATE)


def ladder(model: Any, tokens: SoundTokens, original_16k: np.ndarray,
           analyze: bool = False) -> list[LadderRow]:
    """Decode with 1, 2, ..., N levels: bitrate, distance to the original and (``analyze``: a
    sounds-world clip) what the sounds analyzer reads from each reconstruction."""
    from mmstudio.worlds import sounds

    rows = []
    n = len(original_16k)
    for k in range(1, tokens.info.levels + 1):
        decoded = to_16k(reconstruct(model, tokens, k=k), tokens.info)[:n]
        decoded = np.pad(decoded, (0, n - len(decoded)))
        rows.append(LadderRow(k, tokens.info.bitrate(k), mel_distance_db(original_16k, decoded),
                              sounds.describe(decoded[:sounds.CLIP_SAMPLES])
                              if analyze and n >= sounds.CLIP_SAMPLES else None))
    return rows
