"""The forward (noising) process q(x_t | x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I) (Ho et al. 2020),
and the noise schedules it runs on: linear betas (Ho et al. 2020) and cosine (Nichol & Dhariwal
2021), taken from diffusers' ``DDPMScheduler`` so they are exactly what the models train with."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from mmstudio.errors import UserError

SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
NUM_TRAIN_TIMESTEPS = 1000


@cache
def alphas_cumprod(schedule: str) -> np.ndarray:
    """alpha-bar_t for t = 0..999 under ``schedule`` ('linear' or 'cosine'): (1000,) float64."""
    from diffusers import DDPMScheduler

    if schedule not in SCHEDULES:
        raise UserError(f"unknown schedule '{schedule}'; choose one of: {', '.join(SCHEDULES)}")
    scheduler = DDPMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS,
                              beta_schedule=SCHEDULES[schedule])
    return scheduler.alphas_cumprod.double().numpy()


def snr(schedule: str) -> np.ndarray:
    """Signal-to-noise ratio ab / (1 - ab) over t: (1000,)."""
    ab = alphas_cumprod(schedule)
    return ab / (1.0 - ab)


@dataclass
class ForwardSample:
    x_t: np.ndarray  # (H, W, 3) uint8, clipped for display
    noise: np.ndarray  # (H, W, 3) uint8, the added noise mapped from [-3, 3] sigma to [0, 255]
    timestep: int
    alpha_bar: float  # share of signal variance remaining
    signal_scale: float  # sqrt(ab): how much of x_0 is left in x_t
    noise_scale: float  # sqrt(1 - ab)


def forward_noise(image: np.ndarray, timestep: int, schedule: str = "cosine",
                  seed: int = 0) -> ForwardSample:
    """Noise ``image`` (H, W, 3) uint8 to ``timestep`` in one jump, with a seeded noise draw."""
    if not 0 <= int(timestep) < NUM_TRAIN_TIMESTEPS or int(timestep) != timestep:
        raise UserError(f"timestep must be a whole number from 0 to {NUM_TRAIN_TIMESTEPS - 1}")
    ab = float(alphas_cumprod(schedule)[int(timestep)])
    x0 = torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1.0)  # (H, W, 3)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(int(seed)))
    x_t = ab**0.5 * x0 + (1.0 - ab) ** 0.5 * noise

    def show(x: torch.Tensor, scale: float) -> np.ndarray:
        return ((x / scale).clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8).numpy()

    return ForwardSample(show(x_t, 1.0), show(noise, 3.0), int(timestep), ab, ab**0.5,
                         (1.0 - ab) ** 0.5)
