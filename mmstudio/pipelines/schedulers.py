"""The samplers the Diffusion and DiT tabs offer: diffusers schedulers, a new one per request.

Schedulers hold state (step index, solver history), so concurrent requests must never share one:
``make_scheduler`` builds a new instance from the model's own scheduler config every time.
"""

from __future__ import annotations

from typing import Any

import torch

SCHEDULERS: dict[str, str] = {
    "ddim": "DDIM (Song et al. 2021), deterministic",
    "ddpm": "DDPM (Ho et al. 2020), stochastic",
    "euler": "Euler (Karras et al. 2022)",
    "euler_a": "Euler ancestral, stochastic",
    "dpmpp_2m": "DPM-Solver++ 2M (Lu et al. 2022)",
}


def make_scheduler(name: str, config: dict[str, Any]) -> Any:
    """A new scheduler of kind ``name`` configured like the model's own (betas, prediction type)."""
    from diffusers import (
        DDIMScheduler,
        DDPMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
    )

    from mmstudio.errors import UserError

    config = {k: v for k, v in config.items() if not k.startswith("_")}
    if name == "ddim":
        # the last step lands on the predicted x0 itself, not on alpha-bar(0) of it
        return DDIMScheduler.from_config(config, set_alpha_to_one=True)
    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(config)
    if name == "dpmpp_2m":
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2
        )
    raise UserError(f"unknown scheduler '{name}'; choose one of: {', '.join(SCHEDULERS)}")


def alpha_bar(scheduler: Any, timestep: torch.Tensor | float) -> float:
    """Signal share alpha-bar of the *model input* at the current step.

    Sigma-space samplers (Euler family: ``init_noise_sigma`` > 1) keep x = x0 + sigma * eps and
    hand the model x / sqrt(sigma^2 + 1), whose alpha-bar is 1 / (sigma^2 + 1); the others use the
    variance-preserving x_t = sqrt(ab) x0 + sqrt(1 - ab) eps directly.
    """
    if float(scheduler.init_noise_sigma) > 1.0:
        sigma = float(scheduler.sigmas[scheduler.step_index])
        return 1.0 / (sigma**2 + 1.0)
    index = int(round(float(timestep)))
    return float(scheduler.alphas_cumprod[index])
