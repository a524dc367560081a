"""Tokenize: image -> grid of codebook indices -> image, for any diffusers ``VQModel``.

Vector-quantised autoencoders after van den Oord et al. 2017, "Neural Discrete Representation
Learning" (VQ-VAE), and Esser et al. 2021, "Taming Transformers for High-Resolution Image Synthesis"
(VQGAN). The encoder maps an image to a grid of vectors; each is replaced by the nearest entry of a
learned codebook, so the image becomes a grid of integers (tokens, "visual words"); the decoder
turns any such grid back into an image.

One code path serves the embedded models (``PAIRS``: ``shapes-vqvae`` / ``shapes-vqgan`` with 8 x 8
tokens, ``shapes-vqvae-f8`` / ``shapes-vqgan-f8`` with 4 x 4) and aMUSEd's VQGAN
(``amused/amused-256``, subfolder ``vqvae``): images go in as floats in [0, 1] (aMUSEd's pipelines
use ``VaeImageProcessor(do_normalize=False)``, and ours are trained the same way), indices come from
``vq.quantize`` and go back through ``vq.decode(indices, force_not_quantize=True, shape=...)``,
which needs ``lookup_from_codebook=True`` in the model config (set in ours and in aMUSEd's).

Nothing here imports gradio: the UI, the CLI and the tests call these functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmstudio.errors import UserError

#: The embedded VQ-VAE / VQGAN pairs by compression (pixels per token side): each VQGAN is its
#: VQ-VAE's tokenizer with the decoder fine-tuned adversarially (``training.vq``), so the two give
#: the same tokens and the Tokenize tab compares their decoders side by side.
PAIRS: dict[str, tuple[str, str]] = {
    "f4": ("shapes-vqvae", "shapes-vqgan"),  # 32 x 32 -> 8 x 8 tokens
    "f8": ("shapes-vqvae-f8", "shapes-vqgan-f8"),  # 32 x 32 -> 4 x 4 tokens
}

# ------------------------------------------------------------------------------------ metrics


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over [0, 255] of two uint8 images (inf when equal)."""
    a = np.asarray(reference, np.float64)
    b = np.asarray(test, np.float64)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude per pixel, averaged over channels: (B, C, H, W) -> (B, H, W).

    Replicate padding, so a flat image has zero gradient everywhere, borders included.
    """
    b, c, h, w = images.shape
    kx = _SOBEL_X.to(images)
    kernel = torch.stack([kx, kx.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    flat = F.pad(images.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    grad = F.conv2d(flat, kernel)  # (B*C, 2, H, W)
    magnitude = torch.sqrt(grad.pow(2).sum(1) + 1e-12)  # (B*C, H, W)
    return magnitude.reshape(b, c, h, w).mean(1)


def mean_gradient(images_uint8: np.ndarray) -> float:
    """Mean Sobel gradient magnitude of (..., H, W, 3) uint8 images, in [0, 1] units."""
    x = torch.from_numpy(np.asarray(images_uint8, np.float32) / 255.0)
    x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)  # (B, 3, H, W)
    return float(sobel_magnitude(x).mean())


EDGE_THRESHOLD = 0.1  # Sobel magnitude (of [0, 1] images) above which an original pixel is "edge"


def edge_sharpness(originals: np.ndarray, reconstructions: np.ndarray,
                   threshold: float = EDGE_THRESHOLD) -> float:
    """How steep the reconstruction's edges are where the original has edges: the summed Sobel
    gradient magnitude of the reconstructions over the originals' edge pixels (magnitude above
    ``threshold``) divided by the originals' own sum there. 1.0 = as sharp as the original; blur
    spreads an edge over more pixels and lowers it. Noise in flat areas does not count (it would
    raise a whole-image gradient mean without any edge being sharper). (..., H, W, 3) uint8."""

    def magnitude(images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(images, np.float32) / 255.0)
        x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)  # (B, 3, H, W)
        return sobel_magnitude(x).numpy()  # (B, H, W)

    reference = magnitude(originals)
    edges = reference > threshold
    total = float(reference[edges].sum())
    return float(magnitude(reconstructions)[edges].sum()) / total if total > 0 else 1.0


def code_histogram(indices: np.ndarray, num_codes: int) -> np.ndarray:
    """How often each code occurs in ``indices`` (any shape): (num_codes,) int64."""
    return np.bincount(np.asarray(indices).ravel(), minlength=num_codes).astype(np.int64)


@dataclass(frozen=True)
class CodebookUsage:
    """How much of the codebook a set of token grids uses."""

    num_codes: int
    tokens: int  # tokens counted
    used: int  # distinct codes that occur
    perplexity: float  # exp(entropy) of the code distribution: the "effective" number of codes

    @property
    def share(self) -> float:
        return self.used / self.num_codes

    def to_dict(self) -> dict[str, Any]:
        return {"num_codes": self.num_codes, "tokens": self.tokens, "used": self.used,
                "share": round(self.share, 4), "perplexity": round(self.perplexity, 2)}


def codebook_usage(indices: np.ndarray, num_codes: int) -> CodebookUsage:
    counts = code_histogram(indices, num_codes)
    total = int(counts.sum())
    p = counts[counts > 0] / max(total, 1)
    entropy = float(-(p * np.log(p)).sum()) if total else 0.0
    return CodebookUsage(num_codes, total, int((counts > 0).sum()), float(math.exp(entropy)))


# ------------------------------------------------------------------------------ the model side


@dataclass(frozen=True)
class VQInfo:
    """What the pipeline needs to know about a ``VQModel``."""

    resolution: int  # the model's input side in pixels
    downsample: int  # pixels per token side: 2 ** (number of blocks - 1)
    num_codes: int
    embed_dim: int

    @property
    def grid(self) -> int:
        return self.resolution // self.downsample

    @property
    def bits_per_token(self) -> int:
        return max(1, math.ceil(math.log2(self.num_codes)))


def vq_info(vq: torch.nn.Module, resolution: int | None = None) -> VQInfo:
    """Read the geometry off the model config (``resolution`` from the catalog when given)."""
    config = vq.config
    downsample = 2 ** (len(config.block_out_channels) - 1)
    size = int(resolution or config.sample_size)
    weight = vq.quantize.embedding.weight
    return VQInfo(size, downsample, int(weight.shape[0]), int(weight.shape[1]))


def images_to_batch(images: np.ndarray, vq: torch.nn.Module) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) in [0, 1], on the model's device and dtype."""
    x = torch.from_numpy(np.array(images, np.uint8)).permute(0, 3, 1, 2).float() / 255.0
    return x.to(device=vq.device, dtype=vq.dtype)


def batch_to_images(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8 (clamped, rounded)."""
    x = x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


@torch.inference_mode()
def encode_indices(vq: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, h, w) int64 token grids, through ``vq.quantize`` (the library's
    nearest-code lookup, exactly as aMUSEd's pipeline does it)."""
    h = vq.encode(images_to_batch(images, vq)).latents  # (B, D, h, w)
    b, _, hh, ww = h.shape
    indices = vq.quantize(h)[2][2]
    return indices.reshape(b, hh, ww).cpu().numpy().astype(np.int64)


@torch.inference_mode()
def decode_indices(vq: torch.nn.Module, indices: np.ndarray) -> np.ndarray:
    """(B, h, w) or (h, w) token grids -> (B, H, W, 3) uint8 images.

    ``vq.decode(indices, force_not_quantize=True, shape=(B, h, w, D))`` when the config has
    ``lookup_from_codebook`` (ours, aMUSEd's); otherwise the codebook entries are looked up here.
    """
    grid = np.asarray(indices, np.int64)
    if grid.ndim == 2:
        grid = grid[None]
    num_codes, dim = vq.quantize.embedding.weight.shape
    if grid.min() < 0 or grid.max() >= num_codes:
        raise UserError(f"token ids must be between 0 and {num_codes - 1}")
    idx = torch.from_numpy(grid).to(vq.device)
    b, hh, ww = grid.shape
    shape = (b, hh, ww, int(dim))
    if vq.config.lookup_from_codebook:
        out = vq.decode(idx, force_not_quantize=True, shape=shape).sample
    else:
        quant = vq.quantize.get_codebook_entry(idx.reshape(-1), shape)
        out = vq.decode(quant, force_not_quantize=True).sample
    return batch_to_images(out)


# ------------------------------------------------------------------------------ one image


@dataclass
class TokenizeResult:
    """An image, its token grid, the decoded grid and the figures, for one model."""

    model_id: str
    info: VQInfo
    image: np.ndarray  # (H, W, 3) uint8: the model's input (after conversion / resize)
    indices: np.ndarray  # (h, w) int64
    reconstruction: np.ndarray  # (H, W, 3) uint8: decode(indices)
    notes: list[str] = field(default_factory=list)  # what was done to the input

    @property
    def psnr(self) -> float:
        return psnr(self.image, self.reconstruction)

    @property
    def error(self) -> np.ndarray:
        """Per-pixel absolute error, mean over channels, in [0, 255]: (H, W) float32."""
        diff = self.image.astype(np.float32) - self.reconstruction.astype(np.float32)
        return np.abs(diff).mean(axis=-1)

    @property
    def usage(self) -> CodebookUsage:
        return codebook_usage(self.indices, self.info.num_codes)

    @property
    def bits_image(self) -> int:
        h, w, c = self.image.shape
        return h * w * c * 8

    @property
    def bits_tokens(self) -> int:
        return int(self.indices.size) * self.info.bits_per_token

    @property
    def compression(self) -> float:
        return self.bits_image / self.bits_tokens

    def figures(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "model": self.model_id,
            "psnr_db": round(self.psnr, 2),
            "grid": list(self.indices.shape),
            "codes_in_image": usage.used,
            "codebook_size": self.info.num_codes,
            "image_perplexity": round(usage.perplexity, 2),
            "bits_image": self.bits_image,
            "bits_tokens": self.bits_tokens,
            "compression": round(self.compression, 1),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.figures(), "tokens": self.indices.tolist(), "notes": list(self.notes)}


def tokenize_array(
    vq: torch.nn.Module, image: np.ndarray, model_id: str = "", info: VQInfo | None = None,
    notes: list[str] | None = None,
) -> TokenizeResult:
    """Tokenize an (H, W, 3) uint8 image already at the model's resolution, and decode it."""
    info = info or vq_info(vq)
    image = np.asarray(image, np.uint8)
    if image.shape != (info.resolution, info.resolution, 3):
        raise UserError(f"expected a {info.resolution} x {info.resolution} RGB image, got "
                        f"shape {image.shape}; use tokenize_image to convert")
    indices = encode_indices(vq, image[None])[0]
    reconstruction = decode_indices(vq, indices)[0]
    return TokenizeResult(model_id, info, image, indices, reconstruction, list(notes or []))


def tokenize_image(
    vq: torch.nn.Module, source: Any, model_id: str = "", resolution: int | None = None
) -> TokenizeResult:
    """Any image (path, array, PIL) -> converted to RGB at the model's size -> tokens -> decode.

    Raises ``UserError`` with a clear reason for files that are not images, empty or too large.
    """
    from mmstudio.images import prepare_image

    info = vq_info(vq, resolution)
    prepared = prepare_image(source, info.resolution)
    return tokenize_array(vq, prepared.array, model_id, info, prepared.notes)


BATCH = 64  # images per encode/decode pass of a batch


def tokenize_images(
    vq: torch.nn.Module, sources: list[Any], model_id: str = "", resolution: int | None = None,
    batch: int = BATCH,
) -> Iterator[TokenizeResult | UserError]:
    """``tokenize_image`` for any number of images, ``batch`` per encode and decode pass: one
    result per source, in order, or the ``UserError`` saying why that source was refused (the
    others still go through)."""
    from mmstudio.images import prepare_image

    info = vq_info(vq, resolution)
    for begin in range(0, len(sources), batch):
        prepared: list[Any] = []
        for source in sources[begin: begin + batch]:
            try:
                prepared.append(prepare_image(source, info.resolution))
            except UserError as exc:
                prepared.append(exc)
        good = [p for p in prepared if not isinstance(p, UserError)]
        if good:
            images = np.stack([p.array for p in good])  # (B, H, W, 3)
            indices = encode_indices(vq, images)
            reconstructions = decode_indices(vq, indices)
            results = iter([TokenizeResult(model_id, info, p.array, i, r, list(p.notes))
                            for p, i, r in zip(good, indices, reconstructions, strict=True)])
        for item in prepared:
            yield item if isinstance(item, UserError) else next(results)


def redecode(vq: torch.nn.Module, result: TokenizeResult, indices: np.ndarray) -> TokenizeResult:
    """The same input with an edited token grid, decoded again (PSNR still against the input)."""
    indices = np.asarray(indices, np.int64)
    if indices.shape != result.indices.shape:
        raise UserError(f"token grid must be {result.indices.shape}, got {indices.shape}")
    reconstruction = decode_indices(vq, indices)[0]
    return TokenizeResult(result.model_id, result.info, result.image, indices, reconstruction,
                          list(result.notes))


# ------------------------------------------------------------------------------ token edits


def _check_code(code: int, num_codes: int, what: str = "code") -> int:
    if not isinstance(code, (int, np.integer)) or isinstance(code, bool):
        raise UserError(f"{what} must be a whole number, got {code!r}")
    if not 0 <= int(code) < num_codes:
        raise UserError(f"{what} must be between 0 and {num_codes - 1}, got {code}")
    return int(code)


def set_token(indices: np.ndarray, row: int, col: int, code: int, num_codes: int) -> np.ndarray:
    """A copy of the grid with cell (``row``, ``col``) set to ``code``."""
    grid = np.array(indices, np.int64, copy=True)
    rows, cols = grid.shape
    for name, value, limit in (("row", row, rows), ("column", col, cols)):
        if not isinstance(value, (int, np.integer)) or not 0 <= int(value) < limit:
            raise UserError(f"{name} must be between 0 and {limit - 1}, got {value}")
    grid[int(row), int(col)] = _check_code(code, num_codes)
    return grid


def replace_code(indices: np.ndarray, old: int, new: int, num_codes: int
                 ) -> tuple[np.ndarray, int]:
    """A copy with every occurrence of code ``old`` replaced by ``new``; and how many there were."""
    old = _check_code(old, num_codes, "the code to replace")
    new = _check_code(new, num_codes, "the new code")
    grid = np.array(indices, np.int64, copy=True)
    hits = grid == old
    grid[hits] = new
    return grid, int(hits.sum())


def randomize_tokens(indices: np.ndarray, k: int, num_codes: int, seed: int
                     ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A copy with ``k`` distinct cells (seeded choice) given uniformly random codes."""
    grid = np.array(indices, np.int64, copy=True)
    if not isinstance(k, (int, np.integer)) or not 0 <= int(k) <= grid.size:
        raise UserError(f"k must be between 0 and {grid.size}, got {k}")
    rng = np.random.default_rng(seed)
    cells = rng.choice(grid.size, size=int(k), replace=False)
    grid.reshape(-1)[cells] = rng.integers(0, num_codes, size=int(k))
    return grid, [(int(c) // grid.shape[1], int(c) % grid.shape[1]) for c in sorted(cells)]


# ------------------------------------------------------------------------------ codebook


def code_images(vq: torch.nn.Module, codes: list[int], grid: int | tuple[int, int],
                context: np.ndarray | None = None) -> np.ndarray:
    """What each code looks like, decoded: (N, H, W, 3) uint8.

    Without ``context`` each image is a whole grid of one code; with a token grid as ``context``,
    the code replaces the centre cell of that grid (one word in a sentence).
    """
    num_codes = int(vq.quantize.embedding.weight.shape[0])
    codes = [_check_code(c, num_codes) for c in codes]
    rows, cols = (grid, grid) if isinstance(grid, int) else grid
    if context is None:
        grids = np.repeat(np.asarray(codes, np.int64)[:, None, None], rows, 1).repeat(cols, 2)
    else:
        grids = np.repeat(np.asarray(context, np.int64)[None], len(codes), axis=0)
        grids[:, rows // 2, cols // 2] = codes
    return decode_indices(vq, grids)


def edit_change(before: np.ndarray, after: np.ndarray, row: int, col: int, cell: int,
                margin: int, visible: float = 0.0) -> tuple[float, float]:
    """How much a token edit changed the decoded image near the token and in total:
    ``(change inside the edited cell's cell x cell block dilated by margin px, total change)``.

    Per pixel, the change is the sum over channels of |after - before| (0-255 levels); with
    ``visible`` > 0, pixels that changed by no more than that are left out (the small shifts that
    the decoder's group norms spread over the whole image when any token changes).
    """
    change = np.abs(after.astype(np.float64) - before.astype(np.float64)).sum(axis=-1)  # (H, W)
    change[change <= visible] = 0.0
    y0, x0 = max(0, row * cell - margin), max(0, col * cell - margin)
    y1, x1 = (row + 1) * cell + margin, (col + 1) * cell + margin
    return float(change[y0:y1, x0:x1].sum()), float(change.sum())


def edit_locality(before: np.ndarray, after: np.ndarray, row: int, col: int, cell: int,
                  margin: int, visible: float = 0.0) -> float:
    """Share of an edit's change that lies near the edited token (see ``edit_change``); 1.0 when
    nothing changed."""
    inside, total = edit_change(before, after, row, col, cell, margin, visible)
    return inside / total if total > 0 else 1.0
