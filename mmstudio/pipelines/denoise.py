"""The denoising loop, step by step: our own loop over diffusers schedulers.

Library pipelines do not expose what the model believes at each step, so this loop does the same
work and yields, per step, the model input x_t, the predicted clean sample x0 and the predicted
noise eps, converted from whatever the model predicts (epsilon, v or sample; Ho et al. 2020,
Salimans & Ho 2022) and whatever the scheduler's parametrisation (variance preserving, or the
sigma space of the Euler family; Karras et al. 2022). Classifier-free guidance (Ho & Salimans 2022)
mixes conditional and unconditional predictions. One loop drives pixel-space and latent-space
models, U-Nets and DiTs, embedded and hub.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from mmstudio.checks import finite_number
from mmstudio.errors import UserError
from mmstudio.pipelines.schedulers import SCHEDULERS, alpha_bar, make_scheduler

MAX_PROMPT_CHARS = 1000
MAX_STEPS = 1000
MAX_GUIDANCE = 30.0
MAX_BATCH = 64

# Linear map from Stable Diffusion VAE latents (scaled) to RGB in about [-1, 1]: a cheap preview
# of a latent without running the decoder (the "latent RGB factors" of the SD 1.x/2.x VAE).
SD_LATENT_RGB = torch.tensor(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
)


@dataclass(frozen=True)
class DenoiseSettings:
    prompts: tuple[str, ...] = ("",)  # "" = unconditional
    negative_prompt: str = ""
    steps: int = 25
    guidance: float = 3.0
    seed: int = 0
    scheduler: str = "ddim"
    n: int = 1  # images per prompt; image k of prompt p uses seed + p * n + k
    image_seeds: tuple[int, ...] = ()  # explicit seed per image instead (len = prompts x n)

    def validated(self) -> DenoiseSettings:
        """The settings, or a ``UserError`` saying which one is out of range and what is allowed."""
        if not self.prompts:
            raise UserError("give at least one prompt (an empty prompt means unconditional)")
        for prompt in (*self.prompts, self.negative_prompt):
            if not isinstance(prompt, str):
                raise UserError("prompts must be text")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise UserError(f"a prompt is {len(prompt):,} characters long; at most "
                                f"{MAX_PROMPT_CHARS:,} are accepted")
        steps = finite_number(self.steps, "steps")
        if steps != int(steps) or not 1 <= steps <= MAX_STEPS:
            raise UserError(f"steps must be a whole number from 1 to {MAX_STEPS}, not {self.steps}")
        guidance = finite_number(self.guidance, "guidance")
        if not 0.0 <= guidance <= MAX_GUIDANCE:
            raise UserError(f"guidance must be between 0 and {MAX_GUIDANCE:g} (1 or less "
                            f"turns it off), not {self.guidance:g}")
        seed = finite_number(self.seed, "seed")
        if seed != int(seed) or not 0 <= seed < 2**63:
            raise UserError(f"seed must be a whole number from 0 to 2^63 - 1, not {self.seed}")
        n = finite_number(self.n, "n")
        if n != int(n) or not 1 <= n * len(self.prompts) <= MAX_BATCH:
            raise UserError(f"at most {MAX_BATCH} images per run (prompts x n), not "
                            f"{len(self.prompts)} x {self.n}")
        if self.image_seeds and (len(self.image_seeds) != len(self.prompts) * int(n)
                                 or any(s < 0 for s in self.image_seeds)):
            raise UserError("give one seed (0 or more) per image")
        if self.scheduler not in SCHEDULERS:
            raise UserError(f"unknown scheduler '{self.scheduler}'; choose one of: "
                            f"{', '.join(SCHEDULERS)}")
        return replace(self, steps=int(steps), guidance=float(guidance), seed=int(seed), n=int(n))

    @property
    def seeds(self) -> list[int]:
        if self.image_seeds:
            return list(self.image_seeds)
        return [self.seed + i for i in range(len(self.prompts) * self.n)]

    @property
    def batch_prompts(self) -> list[str]:
        return [p for p in self.prompts for _ in range(self.n)]


@dataclass
class DenoiseStep:
    """What the model believes at one step; tensors are (B, C, H, W) float32 on the CPU
    ((B, C, F, H, W) for a clip)."""

    index: int  # 0-based
    total: int
    timestep: float
    alpha_bar: float  # share of signal variance in x_t
    x_t: torch.Tensor  # the model's input at this step
    x0_pred: torch.Tensor  # predicted clean sample
    eps_pred: torch.Tensor  # predicted noise


@dataclass
class DenoiseResult:
    images: np.ndarray  # (B, H, W, 3) uint8 at the model's native resolution; (B, F, H, W, 3) clips
    settings: DenoiseSettings
    seconds: float
    latent: bool
    prompts: list[str] = field(default_factory=list)  # one per image
    seeds: list[int] = field(default_factory=list)  # one per image


# ---------------------------------------------------------------------------------- denoisers
class Denoiser:
    """A model seen by the loop: conditioning, one prediction, previews and the final decode."""

    latent: bool = False
    prediction_type: str = "epsilon"
    scheduler_config: dict[str, Any]
    channels: int
    size: int  # spatial size of x (pixels or latent cells)
    device: torch.device
    dtype: torch.dtype
    #: set by a caller that wants attention maps (``pipelines.attention``); None: plain sampling
    recorder: Any = None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample the loop denoises: (C, h, w) for an image or a spectrogram;
        a video model's is (C, F, h, w)."""
        return (self.channels, self.size, self.size)

    def encode(self, prompts: list[str]) -> Any:  # conditioning for a batch of prompts
        raise NotImplementedError

    def attention_kwargs(self) -> dict[str, Any]:
        """``cross_attention_kwargs`` for one model call: the recorder (the loop tells it the
        step), or nothing."""
        if self.recorder is None:
            return {}
        return {"cross_attention_kwargs": {"recorder": self.recorder}}

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        raise NotImplementedError

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """Cheap preview: (B, C, h, w) -> (B, 3, h, w) in about [-1, 1]."""
        return x[:, :3]

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Full decode of the final sample: (B, C, h, w) -> (B, 3, H, W) in [-1, 1]."""
        return self.to_rgb(x)


class PixelUNetDenoiser(Denoiser):
    """A pixel-space ``UNet2DConditionModel`` conditioned on open_clip token states."""

    def __init__(self, unet: Any, scheduler_config: dict, clip_model: Any, tokenizer: Any) -> None:
        self.unet, self.clip_model, self.tokenizer = unet, clip_model, tokenizer
        self.scheduler_config = scheduler_config
        self.prediction_type = scheduler_config.get("prediction_type", "epsilon")
        self.channels = unet.config.out_channels
        self.coords = unet.config.in_channels - unet.config.out_channels
        if self.coords not in (0, COORD_CHANNELS):
            raise ValueError(f"a pixel U-Net takes its {self.channels} image channels, plus "
                             f"{COORD_CHANNELS} coordinate channels or none; this one takes "
                             f"{unet.config.in_channels}")
        self.size = unet.config.sample_size
        self.device, self.dtype = unet.device, unet.dtype

    def encode(self, prompts: list[str]) -> torch.Tensor:
        from mmstudio.pipelines.text import open_clip_token_states

        states = open_clip_token_states(self.clip_model, self.tokenizer, prompts)
        return states.to(self.device, self.dtype)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.coords:
            x = with_coordinates(x)
        return self.unet(x, t, encoder_hidden_states=cond).sample


COORD_CHANNELS = 2


def with_coordinates(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 2, H, W): x and y of every pixel, in [-1, 1], appended as channels.

    Convolutions and cross-attention are translation-equivariant, so a plain U-Net can only learn
    *where* an object goes ("in the top left") from the faint edge effects of zero padding;
    coordinate channels (Liu et al. 2018, "An intriguing failing of convolutional neural networks
    and the CoordConv solution") tell every pixel where it is. A U-Net whose ``in_channels`` exceed
    its ``out_channels`` by 2 is given them, in training and in the loop alike.
    """
    b, _, h, w = x.shape
    ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # (2, H, W): x, y
    return torch.cat([x, grid.expand(b, -1, -1, -1)], dim=1)


class StableDiffusionDenoiser(Denoiser):
    """A latent ``UNet2DConditionModel`` + ``AutoencoderKL`` + transformers CLIP text encoder."""

    latent = True

    def __init__(self, components: dict[str, Any]) -> None:
        self.unet, self.vae = components["unet"], components["vae"]
        self.text_encoder, self.tokenizer = components["text_encoder"], components["tokenizer"]
        self.scheduler_config = components["scheduler_config"]
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        self.channels = self.unet.config.in_channels
        self.size = self.unet.config.sample_size
        self.device, self.dtype = self.unet.device, self.unet.dtype

    def encode(self, prompts: list[str]) -> torch.Tensor:
        from mmstudio.pipelines.text import hf_clip_token_states

        return hf_clip_token_states(self.text_encoder, self.tokenizer, prompts).to(self.dtype)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, encoder_hidden_states=cond).sample

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        return latent_to_rgb(x)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return vae_decode(self.vae, x)


class PixArtDenoiser(Denoiser):
    """A text-conditioned DiT (``PixArtTransformer2DModel``: adaLN-single + cross-attention to text
    states) on an ``AutoencoderKL``'s latents, conditioned on an open_clip text tower's per-token
    states with the padding masked out (Chen et al. 2023, PixArt-alpha; Peebles & Xie 2023)."""

    latent = True

    def __init__(self, components: dict[str, Any], vae: Any, clip_model: Any,
                 tokenizer: Any) -> None:
        self.transformer, self.vae = components["transformer"], vae
        self.clip_model, self.tokenizer = clip_model, tokenizer
        self.scheduler_config = components["scheduler_config"]
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        self.channels = self.transformer.config.in_channels
        self.size = self.transformer.config.sample_size
        self.device, self.dtype = self.transformer.device, self.transformer.dtype

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from mmstudio.pipelines.text import open_clip_token_mask, open_clip_token_states

        states = open_clip_token_states(self.clip_model, self.tokenizer, prompts)
        mask = open_clip_token_mask(self.tokenizer, prompts)
        return states.to(self.device, self.dtype), mask.to(self.device)  # (B, L, D), (B, L)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        states, mask = cond
        timesteps = t.expand(x.shape[0]).to(self.device) if t.ndim == 0 else t.to(self.device)
        out = self.transformer(x, encoder_hidden_states=states, timestep=timesteps,
                               encoder_attention_mask=mask,
                               added_cond_kwargs={"resolution": None, "aspect_ratio": None},
                               **self.attention_kwargs()).sample
        return out[:, : self.channels]  # the rest, if any, is a learned variance

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        # a small latent (the embedded 8 x 8) decodes in about a millisecond: show the real thing
        return vae_decode(self.vae, x) if self.size <= 16 else latent_to_rgb(x)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return vae_decode(self.vae, x)


def cat_conditions(parts: list[Any]) -> Any:
    """Concatenate conditioning along the batch: tensors, or tuples of tensors (states, mask)."""
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(group) for group in zip(*parts, strict=True))
    return torch.cat(parts)


class DiTDenoiser(Denoiser):
    """A class-conditional ``DiTTransformer2DModel`` on SD-VAE latents (Peebles & Xie 2023).

    A prompt is a class id or a class name (any of the comma-separated synonyms in id2label);
    the empty prompt is the null class, which classifier-free guidance uses as unconditional.
    """

    latent = True

    def __init__(self, components: dict[str, Any]) -> None:
        self.transformer, self.vae = components["transformer"], components["vae"]
        self.id2label: dict[int, str] = components.get("id2label") or {}
        self.scheduler_config = components["scheduler_config"]
        self.prediction_type = "epsilon"
        self.channels = self.transformer.config.in_channels
        self.size = self.transformer.config.sample_size
        self.null_class = self.transformer.config.num_embeds_ada_norm
        self.device, self.dtype = self.transformer.device, self.transformer.dtype

    def label_id(self, prompt: str) -> int:
        text = prompt.strip().lower()
        if not text:
            return self.null_class
        if text.isdigit() and int(text) < self.null_class:
            return int(text)
        for index, names in self.id2label.items():
            if text in (name.strip().lower() for name in names.split(",")):
                return index
        raise UserError(f"'{prompt}' is not a class of this model; give a class id from 0 to "
                        f"{self.null_class - 1} or one of its class names")

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return torch.tensor([self.label_id(p) for p in prompts], device=self.device)

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        timesteps = t.expand(x.shape[0]).to(self.device)
        out = self.transformer(x, timestep=timesteps, class_labels=cond,
                               **self.attention_kwargs()).sample
        return out[:, : self.channels]  # the rest is the learned variance

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        return latent_to_rgb(x)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return vae_decode(self.vae, x)


def latent_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Cheap latent preview; 4-channel SD-VAE latents use the known linear map."""
    if x.shape[1] == 4:
        return torch.einsum("bchw,cr->brhw", x.float(), SD_LATENT_RGB.to(x.device))
    return x[:, :1].float().expand(-1, 3, -1, -1)


@torch.no_grad()
def vae_decode(vae: Any, x: torch.Tensor) -> torch.Tensor:
    return vae.decode(x.to(vae.dtype) / vae.config.scaling_factor).sample.float()


@contextlib.contextmanager
def denoiser_for(manager: Any, model_id: str) -> Iterator[Denoiser]:
    """The loop's view of a catalog model, with the model and every model it needs (its text
    encoder, a shared VAE) borrowed from the manager until the ``with`` block ends, so that no
    eviction or unload can take them away mid-run::

        with denoiser_for(manager, "shapes-unet") as denoiser:
            result = run(denoiser, settings)
    """
    with contextlib.ExitStack() as borrowed:
        yield _make_denoiser(_Borrowing(manager, borrowed), model_id)


class _Borrowing:
    """The manager as ``_make_denoiser`` sees it: ``get`` borrows (``use``) what it hands out,
    until the exit stack closes."""

    def __init__(self, manager: Any, stack: contextlib.ExitStack) -> None:
        self._manager, self._stack = manager, stack

    def get(self, model_id: str) -> Any:
        return self._stack.enter_context(self._manager.use(model_id))


def _make_denoiser(manager: _Borrowing, model_id: str) -> Denoiser:
    model = manager.get(model_id)
    loader = model.spec.loader
    if loader == "pixel_unet":
        text_id = model["text_encoder_id"]
        if not text_id:
            raise UserError(f"{model_id} names no text encoder (text_encoder.json)")
        clip = manager.get(text_id)
        return PixelUNetDenoiser(model["unet"], model["scheduler_config"], clip["model"],
                                 clip["tokenizer"])
    if loader == "stable_diffusion":
        return StableDiffusionDenoiser(model.components)
    if loader == "dit":
        return DiTDenoiser(model.components)
    if loader == "pixart":
        clip = manager.get(_component_id(model, "text_encoder_id", model_id))
        vae = model["vae"] if model["vae"] is not None else \
            manager.get(_component_id(model, "vae_id", model_id))["vae"]
        return PixArtDenoiser(model.components, vae, clip["model"], clip["tokenizer"])
    if loader == "text_to_video":
        from mmstudio.pipelines.video import TextToVideoDenoiser

        return TextToVideoDenoiser(model.components)
    if loader == "latte":
        from mmstudio.pipelines.video import LatteDenoiser

        vae = manager.get(_component_id(model, "vae_id", model_id))["vae"]
        return LatteDenoiser(model.components, vae)
    raise UserError(f"{model_id} is not a diffusion model (its loader is '{loader}')")


def _component_id(model: Any, key: str, model_id: str) -> str:
    """The catalog id of a shared component (text encoder, VAE) a model folder names."""
    component = model[key]
    if not component:
        raise UserError(f"{model_id} names no {key.removesuffix('_id').replace('_', ' ')} "
                        f"({key.removesuffix('_id')}.json)")
    return component


# ---------------------------------------------------------------------------------- the loop
def to_prediction(
    output: torch.Tensor, x_t: torch.Tensor, ab: float, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, eps) from a model output at a variance-preserving x_t with signal share ``ab``."""
    a, s = math.sqrt(ab), math.sqrt(1.0 - ab)
    if prediction_type == "epsilon":
        eps = output
        x0 = (x_t - s * eps) / a
    elif prediction_type == "v_prediction":
        x0 = a * x_t - s * output
        eps = s * x_t + a * output
    elif prediction_type == "sample":
        x0 = output
        eps = (x_t - a * x0) / max(s, 1e-8)
    else:
        raise ValueError(f"unknown prediction type {prediction_type!r}")
    return x0, eps


def initial_noise(shape: tuple[int, ...], seeds: list[int]) -> tuple[torch.Tensor, list]:
    """Per-image noise from per-image generators (CPU), so an image does not depend on its batch."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    noise = torch.stack([torch.randn(shape, generator=g) for g in generators])
    return noise, generators


@torch.no_grad()
def denoise(
    denoiser: Denoiser, settings: DenoiseSettings, trace: bool = True
) -> Iterator[DenoiseStep | DenoiseResult]:
    """Yield a ``DenoiseStep`` per step (when ``trace``), then the ``DenoiseResult``."""
    settings = settings.validated()
    start = time.perf_counter()
    scheduler = make_scheduler(settings.scheduler, denoiser.scheduler_config)
    scheduler.set_timesteps(settings.steps)
    prompts = settings.batch_prompts
    batch = len(prompts)
    guided = settings.guidance > 1.0
    cond = denoiser.encode(prompts)
    if guided:
        uncond = denoiser.encode([settings.negative_prompt] * batch)
        cond = cat_conditions([uncond, cond])
    noise, generators = initial_noise(denoiser.sample_shape, settings.seeds)
    x = (noise * scheduler.init_noise_sigma).to(denoiser.device, denoiser.dtype)
    timesteps = scheduler.timesteps
    for index, t in enumerate(timesteps):
        model_input = scheduler.scale_model_input(x, t)  # (B, C, h, w), variance preserving
        ab = alpha_bar(scheduler, t)
        t_model = t.to(denoiser.device)
        if denoiser.recorder is not None:
            denoiser.recorder.step, denoiser.recorder.guided = index, guided
        if guided:
            both = denoiser.predict(torch.cat([model_input, model_input]), t_model, cond)
            uncond_out, cond_out = both.chunk(2)
            output = uncond_out + settings.guidance * (cond_out - uncond_out)
        else:
            output = denoiser.predict(model_input, t_model, cond)
        if trace:
            x0, eps = to_prediction(output.float(), model_input.float(), ab,
                                    denoiser.prediction_type)
            yield DenoiseStep(index, len(timesteps), float(t), ab, model_input.float().cpu(),
                              x0.cpu(), eps.cpu())
        x = scheduler.step(output, t, x, generator=generators, return_dict=True).prev_sample
    images = to_uint8(denoiser.decode(x))
    yield DenoiseResult(images, settings, time.perf_counter() - start, denoiser.latent,
                        prompts, settings.seeds)


def run(denoiser: Denoiser, settings: DenoiseSettings) -> DenoiseResult:
    """The final result only (no per-step trace)."""
    *_, result = denoise(denoiser, settings, trace=False)
    assert isinstance(result, DenoiseResult)
    return result


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8; clips (B, 3, F, H, W) -> (B, F, H, W, 3)."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(1, -1).cpu().numpy()
