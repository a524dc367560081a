"""Writing world samples to files people can open: PNG, WAV, browser-playable MP4."""

from __future__ import annotations

import wave
from pathlib import Path
from types import ModuleType

import numpy as np

#: Display scale of the 32 px worlds in MP4s and galleries (nearest neighbour: no blurred specks).
DISPLAY_SCALE = 8


def upscale_nearest(img: np.ndarray, scale: int) -> np.ndarray:
    """Repeat each pixel ``scale`` x ``scale`` times along the two axes before the last one:
    (..., H, W, C) -> (..., H*scale, W*scale, C)."""
    if scale == 1:
        return img
    return np.repeat(np.repeat(img, scale, axis=-3), scale, axis=-2)


def write_png(img: np.ndarray, path: str | Path, scale: int = 1) -> Path:
    """Save an (H, W, 3) uint8 image as PNG, optionally upscaled with nearest neighbour."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(upscale_nearest(np.asarray(img, np.uint8), scale)).save(path)
    return path


def write_wav(audio: np.ndarray, path: str | Path, sample_rate: int) -> Path:
    """Save mono float audio in [-1, 1] as 16-bit PCM WAV (plays in every browser)."""
    path = Path(path)
    pcm = (np.clip(np.asarray(audio, np.float64), -1.0, 1.0) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM mono WAV written by ``write_wav``: (float32 samples, sample rate)."""
    with wave.open(str(path), "rb") as f:
        rate, data = f.getframerate(), f.readframes(f.getnframes())
    return np.frombuffer(data, "<i2").astype(np.float32) / 32767, rate


def write_mp4(frames: np.ndarray, path: str | Path, fps: int, scale: int = DISPLAY_SCALE) -> Path:
    """Save (T, H, W, 3) uint8 frames as H.264 / yuv420p MP4 (plays in browsers), upscaled with
    nearest neighbour so that chroma subsampling does not smear 32 px frames."""
    import imageio_ffmpeg

    path = Path(path)
    big = np.ascontiguousarray(upscale_nearest(np.asarray(frames, np.uint8), scale))
    t, h, w, _ = big.shape
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=1,
        output_params=["-crf", "12", "-preset", "veryfast", "-movflags", "+faststart"],
    )
    writer.send(None)
    for frame in big:
        writer.send(frame)
    writer.close()
    return path


def save_sample(world: ModuleType, sample: np.ndarray, stem: str | Path) -> list[Path]:
    """Write one sample of ``world`` next to ``stem`` (no suffix); returns the files written:
    shapes -> .png (32 px), sounds -> .wav, motion -> .mp4 (upscaled) and .npy (raw frames)."""
    stem = Path(stem)
    if world.KIND == "image":
        return [write_png(sample, stem.with_suffix(".png"))]
    if world.KIND == "audio":
        return [write_wav(sample, stem.with_suffix(".wav"), world.SAMPLE_RATE)]
    if world.KIND == "video":
        npy = stem.with_suffix(".npy")
        np.save(npy, np.asarray(sample, np.uint8))
        return [write_mp4(sample, stem.with_suffix(".mp4"), world.FPS), npy]
    raise ValueError(f"unknown world kind {world.KIND!r}")
