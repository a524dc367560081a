"""A denoising run's trace as pictures: per-step panels (x_t, predicted x0, predicted noise), a grid
of all steps, and GIF / MP4 files. Used by the Diffusion tab and ``generate --trace``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmstudio.pipelines.denoise import Denoiser, DenoiseStep, to_uint8

PANELS = ("x_t", "predicted x0", "predicted noise")


@dataclass
class StepFrames:
    """One step of one image as uint8 pictures (H, W, 3) at the model's preview resolution."""

    index: int
    timestep: float
    alpha_bar: float
    x_t: np.ndarray
    x0: np.ndarray
    eps: np.ndarray

    @property
    def panels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x_t, self.x0, self.eps


def step_frames(step: DenoiseStep, denoiser: Denoiser, image: int = 0) -> StepFrames:
    """Pictures of ``step`` for batch item ``image``; latents are previewed cheaply."""
    pick = slice(image, image + 1)

    def picture(x: torch.Tensor, scale: float = 1.0) -> np.ndarray:
        return to_uint8(denoiser.to_rgb(x[pick]) / scale)[0]

    return StepFrames(step.index, step.timestep, step.alpha_bar, picture(step.x_t),
                      picture(step.x0_pred), picture(step.eps_pred, scale=3.0))


@dataclass
class Trace:
    frames: list[StepFrames] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    def strip(self, index: int, scale: int = 1, gap: int = 2) -> np.ndarray:
        """The three panels of step ``index`` side by side: (H, 3W + 2 gap, 3)."""
        panels = [_upscale(p, scale) for p in self.frames[index].panels]
        height = panels[0].shape[0]
        spacer = np.full((height, gap * scale, 3), 255, np.uint8)
        return np.concatenate([panels[0], spacer, panels[1], spacer, panels[2]], axis=1)

    def grid(self, max_columns: int = 25, scale: int = 2) -> np.ndarray:
        """Rows x_t / x0 / noise, one column per step (evenly subsampled to ``max_columns``)."""
        picks = np.unique(np.linspace(0, len(self) - 1, min(max_columns, len(self))).round())
        rows = []
        for row in range(3):
            cells = [_upscale(self.frames[int(i)].panels[row], scale) for i in picks]
            spacer = np.full((cells[0].shape[0], scale, 3), 255, np.uint8)
            rows.append(np.concatenate([c for cell in cells for c in (cell, spacer)][:-1], 1))
        spacer = np.full((scale, rows[0].shape[1], 3), 255, np.uint8)
        return np.concatenate([rows[0], spacer, rows[1], spacer, rows[2]], axis=0)

    def write_gif(self, path: Path, scale: int = 4, seconds_per_step: float = 0.15) -> Path:
        from PIL import Image

        images = [Image.fromarray(self.strip(i, scale)) for i in range(len(self))]
        durations = [int(seconds_per_step * 1000)] * (len(images) - 1) + [1500]
        images[0].save(path, save_all=True, append_images=images[1:], duration=durations,
                       loop=0)
        return Path(path)

    def write_mp4(self, path: Path, scale: int = 4, fps: int = 8) -> Path:
        from mmstudio.worlds.media import write_mp4

        frames = np.stack([self.strip(i, scale) for i in range(len(self))])
        frames = np.concatenate([frames, np.repeat(frames[-1:], fps, axis=0)])  # hold the end
        return write_mp4(_even(frames), path, fps=fps, scale=1)


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    return image if scale == 1 else np.repeat(np.repeat(image, scale, 0), scale, 1)


def _even(frames: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even width and height: pad with white."""
    _, height, width, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)),
                  constant_values=255)
