"""Inside a Diffusion Transformer: patches, the position embedding, attention maps, and the cost of
pixel-space vs latent-space diffusion.

A DiT (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers") cuts its input latent
(C, H, W) into p x p patches, embeds each as one token (a strided convolution), adds a fixed 2-D
sin-cos position embedding, and runs transformer blocks over the token sequence in raster order;
the output tokens are put back into the latent's shape ("unpatchify"). Text enters PixArt-style
DiTs through cross-attention (Chen et al. 2023), so each patch looks at the prompt's words.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mmstudio.errors import UserError
from mmstudio.pipelines.attention import AttentionRecorder
from mmstudio.pipelines.denoise import DenoiseResult, DenoiseSettings, DenoiseStep, denoise


# ---------------------------------------------------------------------------------- patches
def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, p*p*C) tokens in raster order (row by row), N = (H/p)(W/p)."""
    b, c, h, w = x.shape
    if h % patch or w % patch:
        raise UserError(f"a {h} x {w} latent does not split into {patch} x {patch} patches")
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return torch.einsum("bchpwq->bhwpqc", x).reshape(b, (h // patch) * (w // patch), -1)


def unpatchify(tokens: torch.Tensor, patch: int, h: int, w: int) -> torch.Tensor:
    """The inverse of ``patchify`` (what DiT's final layer does): (B, N, p*p*C) -> (B, C, H, W)."""
    b, n, d = tokens.shape
    gh, gw = h // patch, w // patch
    if n != gh * gw or d % (patch * patch):
        raise UserError(f"{n} tokens of width {d} are not a {h} x {w} latent in {patch}-patches")
    c = d // (patch * patch)
    x = tokens.reshape(b, gh, gw, patch, patch, c)
    return torch.einsum("bhwpqc->bchpwq", x).reshape(b, c, h, w)


@dataclass
class PatchInfo:
    patch: int  # patch side in latent cells
    grid: tuple[int, int]  # patches per column, per row
    tokens: int  # sequence length = grid rows x columns
    token_width: int  # numbers per patch (p * p * C)
    hidden: int  # the transformer's width: each patch becomes this many numbers
    pixels_per_patch: int  # image pixels a patch covers (side)
    position_embedding: np.ndarray  # (N, hidden)


def patch_info(transformer: Any, image_size: int) -> PatchInfo:
    """How a DiT / PixArt transformer tokenises its latent, read from the model itself."""
    config = transformer.config
    patch, size = int(config.patch_size), int(config.sample_size)
    grid = size // patch
    embedding = transformer.pos_embed.pos_embed  # (1, N, D) fixed sin-cos buffer
    return PatchInfo(patch, (grid, grid), grid * grid, patch * patch * int(config.in_channels),
                     int(embedding.shape[-1]), image_size // grid,
                     embedding[0].detach().float().cpu().numpy())


def position_similarity(embedding: np.ndarray, index: int, grid: tuple[int, int]) -> np.ndarray:
    """Cosine similarity of patch ``index``'s position embedding to every patch's: (rows, cols)."""
    if not 0 <= index < embedding.shape[0]:
        raise UserError(f"patch {index} does not exist; patches are numbered 0 to "
                        f"{embedding.shape[0] - 1}")
    unit = embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-8)
    return (unit @ unit[index]).reshape(grid)


# ---------------------------------------------------------------------------------- words
@dataclass
class Word:
    text: str
    positions: list[int]  # indices into the token sequence (0 = start-of-text)
    known: bool = True


def word_tokens(tokenizer: Any, prompt: str) -> list[Word]:
    """Each word of ``prompt`` with the positions of its BPE tokens in the encoded sequence.

    open_clip's tokenizer splits words independently (a word never shares a token with the next),
    so the sequence is start-of-text, each word's tokens in turn, end-of-text; a word such as
    "darkgreen" owns two positions. Checked against the full encoding."""
    bpe = getattr(tokenizer, "tokenizer", tokenizer)
    words, position = [], 1
    for text in prompt.split():
        ids = bpe.encode(text)
        if ids:
            words.append(Word(text, list(range(position, position + len(ids)))))
            position += len(ids)
    full = bpe.encode(prompt)
    if len(full) != position - 1:
        raise ValueError(f"word-by-word tokens ({position - 1}) differ from the prompt's "
                         f"({len(full)}): {prompt!r}")
    length = getattr(tokenizer, "context_length", 77)
    return [w for w in words if w.positions[-1] < length - 1]  # past the context: truncated


# ---------------------------------------------------------------------------------- attention
@dataclass
class AttentionTrace:
    """Attention of one (conditional) sample: maps per (step, layer, kind), and what they index."""

    steps: list[DenoiseStep]
    result: DenoiseResult
    maps: dict[tuple[int, int, str], torch.Tensor]  # (heads, queries, keys)
    words: list[Word]
    grid: tuple[int, int]
    layers: int
    heads: int

    def self_map(self, step: int, layer: int, patch: int, head: int | None) -> np.ndarray:
        """Attention from ``patch`` to every patch: (rows, cols); rows of a head sum to 1."""
        probs = self._get(step, layer, "self")  # (heads, N, N)
        if not 0 <= patch < probs.shape[1]:
            raise UserError(f"patch {patch} does not exist; patches are numbered 0 to "
                            f"{probs.shape[1] - 1}")
        row = probs[:, patch] if head is None else probs[self._head(head), patch][None]
        return row.mean(0).reshape(self.grid).numpy()

    def cross_map(self, step: int, layer: int | None, word: int, head: int | None
                  ) -> np.ndarray:
        """How much each patch attends to the word's tokens (summed over them): (rows, cols).
        ``layer`` None: the mean over layers."""
        if not 0 <= word < len(self.words):
            raise UserError(f"word {word} does not exist; the prompt has {len(self.words)} "
                            "known words")
        layers = range(self.layers) if layer is None else [layer]
        total = 0.0
        for index in layers:
            probs = self._get(step, index, "cross")  # (heads, N, L)
            probs = probs if head is None else probs[self._head(head)][None]
            total = total + probs[:, :, self.words[word].positions].sum(-1).mean(0)
        return (total / len(layers)).reshape(self.grid).numpy()

    def _head(self, head: int) -> int:
        if not 0 <= head < self.heads:
            raise UserError(f"head {head} does not exist; this model has heads 0 to "
                            f"{self.heads - 1}")
        return head

    def _get(self, step: int, layer: int, kind: str) -> torch.Tensor:
        if not 0 <= layer < self.layers:
            raise UserError(f"layer {layer} does not exist; this model has layers 0 to "
                            f"{self.layers - 1}")
        key = (step, layer, kind)
        if key not in self.maps:
            available = sorted({s for s, _, k in self.maps if k == kind})
            if not available:
                raise UserError(f"this model has no {kind}-attention to show")
            raise UserError(f"step {step + 1} was not captured; captured steps: "
                            f"{', '.join(str(s + 1) for s in available)}")
        return self.maps[key]


def capture_attention(denoiser: Any, settings: DenoiseSettings, self_steps: set[int] | None,
                      ) -> AttentionTrace:
    """Run the loop once with a recorder: cross-attention at every step, self-attention at
    ``self_steps`` (0-based; None: all). The first prompt's first image is recorded."""
    settings = settings.validated()
    transformer = denoiser.transformer
    has_cross = transformer.config.get("cross_attention_dim") is not None and \
        getattr(transformer, "caption_projection", None) is not None
    recorder = AttentionRecorder(self_steps=self_steps)
    denoiser.recorder = recorder
    try:
        steps, result = [], None
        for item in denoise(denoiser, settings):
            if isinstance(item, DenoiseResult):
                result = item
            else:
                steps.append(item)
    finally:
        denoiser.recorder = None
    assert result is not None
    config = transformer.config
    grid = int(config.sample_size) // int(config.patch_size)
    words = word_tokens(denoiser.tokenizer, settings.prompts[0]) if has_cross else []
    maps = {key: value[0] for key, value in recorder.maps.items()}  # the first image
    return AttentionTrace(steps, result, maps, words, (grid, grid), int(config.num_layers),
                          int(config.num_attention_heads))


# ---------------------------------------------------------------------------------- cost
@dataclass
class StepCost:
    model_id: str
    kind: str  # "pixel U-Net" / "latent DiT"
    parameters: int
    gflops_per_step: float  # one guided model call (batch 2)
    positions: int  # cells the network computes on at full resolution per step
    ms_per_step: float
    total_seconds: float  # a whole run, text encoding and decode included
    adherence: float | None


def measure_cost(denoiser: Any, model_id: str, settings: DenoiseSettings,
                 adherence: float | None, repeats: int = 3) -> StepCost:
    """Parameters, FLOPs of one guided step (``torch.utils.flop_counter``), positions per step,
    and wall time of whole runs (the fastest of ``repeats``) on this machine."""
    from torch.utils.flop_counter import FlopCounterMode

    from mmstudio.pipelines.denoise import run

    settings = settings.validated()
    model = getattr(denoiser, "transformer", None) or denoiser.unet
    params = sum(p.numel() for p in model.parameters())
    cond = denoiser.encode(["", settings.prompts[0]])
    x = torch.randn(2, denoiser.channels, denoiser.size, denoiser.size, dtype=denoiser.dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        denoiser.predict(x, torch.tensor(500), cond)
    if denoiser.latent:
        positions = denoiser.size * denoiser.size // int(model.config.patch_size) ** 2
        kind = "latent DiT"
    else:
        positions = denoiser.size * denoiser.size
        kind = "pixel U-Net"
    run(denoiser, settings)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(denoiser, settings)
        best = min(best, time.perf_counter() - start)
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(5):
            denoiser.predict(x, torch.tensor(500), cond)
        per_step = (time.perf_counter() - start) / 5
    return StepCost(model_id, kind, params, counter.get_total_flops() / 1e9, positions,
                    per_step * 1000, best, adherence)


# ---------------------------------------------------------------------------------- pictures
def _colormap(values: np.ndarray, name: str) -> np.ndarray:
    """(h, w) floats in [0, 1] -> (h, w, 3) uint8 through a matplotlib colormap."""
    from matplotlib import colormaps

    return (colormaps[name](np.clip(values, 0, 1))[..., :3] * 255).round().astype(np.uint8)


def _nearest(image: np.ndarray, size: int) -> np.ndarray:
    factor = max(1, size // image.shape[0])
    return np.repeat(np.repeat(image, factor, 0), factor, 1)


def heatmap_over(image: np.ndarray, values: np.ndarray, size: int = 256,
                 marker: int | None = None, alpha: float = 0.65) -> np.ndarray:
    """A (rows, cols) map over an (H, W, 3) image, both enlarged to ``size`` (crisp cells);
    the map is scaled to its own maximum; ``marker`` outlines that patch (the query)."""
    from PIL import Image, ImageDraw

    base = _nearest(image, size).astype(np.float32)
    scaled = values / max(float(values.max()), 1e-12)
    heat = _nearest(_colormap(scaled, "inferno"), base.shape[0]).astype(np.float32)
    picture = Image.fromarray(((1 - alpha) * base + alpha * heat).round().astype(np.uint8))
    if marker is not None:
        rows, cols = values.shape
        cell = base.shape[0] // rows
        r, c = divmod(marker, cols)
        ImageDraw.Draw(picture).rectangle([c * cell, r * cell, (c + 1) * cell - 1,
                                           (r + 1) * cell - 1], outline=(0, 255, 120), width=3)
    return np.asarray(picture)


def patch_grid(image: np.ndarray, grid: tuple[int, int], size: int = 256) -> np.ndarray:
    """The image cut into the transformer's patches, each numbered in sequence (raster) order."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(_nearest(image, size))
    draw = ImageDraw.Draw(picture)
    rows, cols = grid
    cell = picture.width // cols
    for index in range(rows * cols):
        r, c = divmod(index, cols)
        box = [c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1]
        draw.rectangle(box, outline=(255, 255, 255))
        if cell >= 14:
            draw.text((box[0] + 2, box[1] + 1), str(index), fill=(255, 255, 0))
    return np.asarray(picture)


def latent_channels(tensors: list[torch.Tensor], labels: tuple[str, ...] = ("x_t", "x0", "noise"),
                    size: int = 64, gap: int = 4) -> np.ndarray:
    """Rows of latents (C, h, w), one map per channel (``size`` pixels square), each row on a
    diverging colour scale symmetric around 0 (blue negative, white 0, red positive), labelled."""
    from PIL import Image, ImageDraw

    channels = tensors[0].shape[0]
    left, top = 48, 16
    canvas = Image.new("RGB", (left + channels * (size + gap), top + len(tensors) * (size + gap)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c in range(channels):
        draw.text((left + c * (size + gap) + 4, 2), f"channel {c}", fill=(60, 60, 60))
    for r, tensor in enumerate(tensors):
        x = tensor.detach().float().cpu().numpy()
        limit = max(float(np.abs(x).max()), 1e-6)
        y = top + r * (size + gap)
        draw.text((4, y + size // 2 - 6), labels[r] if r < len(labels) else "", fill=(60, 60, 60))
        for c, values in enumerate(x):
            cell = _nearest(_colormap(0.5 + 0.5 * values / limit, "RdBu_r"), size)
            canvas.paste(Image.fromarray(cell), (left + c * (size + gap), y))
    return np.asarray(canvas)


def embedding_picture(embedding: np.ndarray, height: int = 256) -> np.ndarray:
    """The position embedding as a picture: one row per patch, one column per dimension."""
    limit = max(float(np.abs(embedding).max()), 1e-6)
    picture = _colormap(0.5 + 0.5 * embedding / limit, "RdBu_r")
    factor = max(1, height // embedding.shape[0])
    return np.repeat(np.repeat(picture, factor, 0), max(1, factor // 2), 1)


def compare_pixel_latent(manager: Any, prompt: str, pixel_id: str = "shapes-unet",
                         latent_id: str = "shapes-dit", steps: int = 25, seed: int = 0,
                         repeats: int = 3) -> list[StepCost]:
    """The same prompt through a pixel-space U-Net and a latent DiT, measured here and now, each
    at its own default guidance and the DDIM scheduler."""
    from mmstudio.pipelines.denoise import denoiser_for

    costs = []
    for model_id in (pixel_id, latent_id):
        spec = manager.catalog.get(model_id)
        settings = DenoiseSettings((prompt,), steps=steps, guidance=spec.guidance or 3.0,
                                   seed=seed, scheduler="ddim")
        with denoiser_for(manager, model_id) as denoiser:
            costs.append(measure_cost(denoiser, model_id, settings,
                                      spec.metrics.get("adherence"), repeats))
    return costs


def cost_table(costs: list[StepCost]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows for a table of ``compare_pixel_latent``'s figures."""
    header = ["model", "kind", "parameters", "GFLOPs per step", "positions per step",
              "ms per step", "whole run (s)", "adherence"]
    rows = [[c.model_id, c.kind, f"{c.parameters / 1e6:.2f} M", f"{c.gflops_per_step:.3f}",
             c.positions, f"{c.ms_per_step:.1f}", f"{c.total_seconds:.3f}",
             "n/a" if c.adherence is None else f"{c.adherence:.1%}"] for c in costs]
    return header, rows


def why_latent_is_cheaper(costs: list[StepCost]) -> str:
    pixel, latent = costs
    return (f"The latent DiT works on {latent.positions} positions per step where the pixel U-Net "
            f"works on {pixel.positions} ({pixel.positions / latent.positions:.0f}x more): the "
            f"autoencoder has already compressed the 32 x 32 x 3 image into an 8 x 8 x 4 latent, "
            f"so each step costs {pixel.gflops_per_step / max(latent.gflops_per_step, 1e-9):.1f}x "
            f"fewer FLOPs and a whole run takes "
            f"{pixel.total_seconds / max(latent.total_seconds, 1e-9):.1f}x less time here, "
            f"decode included.")
