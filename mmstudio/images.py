"""Reading user images safely: any file or array -> an RGB image, with clear reasons on failure.

Shared by every tab and CLI command that takes images. Returns what was done to the input (mode
conversion, resize) so the UI can say so.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmstudio.errors import UserError

MAX_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)
MAX_FILE_BYTES = 50 * 2**20


@dataclass
class PreparedImage:
    image: Image.Image  # RGB, at the requested size
    original_size: tuple[int, int]  # (width, height) of the input
    original_mode: str
    notes: list[str] = field(default_factory=list)  # what was done, for the UI to show

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.image, dtype=np.uint8)  # (H, W, 3)


def open_image(source: str | Path | np.ndarray | Image.Image) -> Image.Image:
    """Open ``source`` as a PIL image; a clear ``UserError`` for anything that is not one."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    path = Path(source)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path.name} is empty (0 bytes), not an image")
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path.name} is {size / 2**20:.0f} MB; images up to "
                        f"{MAX_FILE_BYTES // 2**20} MB are accepted")
    try:
        with warnings.catch_warnings():
            # our own pixel limit (below) is checked from the header, before any decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UserError(f"{path.name} is {width} x {height} pixels; images up to "
                                f"{MAX_PIXELS // 1_000_000} megapixels are accepted")
            image.load()
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError(f"{path.name} is far larger than {MAX_PIXELS // 1_000_000} megapixels, "
                        "the most that is accepted") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{path.name} is not an image that can be read ({exc.__class__.__name__}); "
                        "use PNG, JPEG, WebP, GIF or BMP") from None
    return image


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise UserError(f"expected an image array of shape (H, W[, 1|3|4]), got {array.shape}")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise UserError(f"image is {array.shape[1]} x {array.shape[0]} pixels; images up to "
                        f"{MAX_PIXELS // 1_000_000} megapixels are accepted")
    if array.dtype != np.uint8:
        scale = 255.0 if np.issubdtype(array.dtype, np.floating) and array.max() <= 1.0 else 1.0
        array = np.clip(array.astype(np.float32) * scale, 0, 255).round().astype(np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[array.shape[2]]
    return Image.fromarray(array[..., 0] if mode == "L" else array, mode)


def prepare_image(
    source: str | Path | np.ndarray | Image.Image,
    size: int,
    background: tuple[int, int, int] = (10, 10, 10),
) -> PreparedImage:
    """Open ``source``, convert to RGB (transparency composited on ``background``) and resize to
    ``size`` x ``size`` (centre crop to a square first). The notes say what changed."""
    image = open_image(source)
    original_size, original_mode = image.size, image.mode
    notes: list[str] = []
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        image = Image.alpha_composite(canvas, rgba).convert("RGB")
        notes.append(f"transparency ({original_mode}) composited on RGB{background}")
    elif image.mode != "RGB":
        image = image.convert("RGB")
        notes.append(f"converted from mode {original_mode} to RGB")
    width, height = image.size
    if width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        notes.append(f"centre-cropped from {width} x {height} to {side} x {side}")
    if image.size != (size, size):
        shrinking = image.size[0] > size
        resample = Image.Resampling.LANCZOS if shrinking else Image.Resampling.NEAREST
        notes.append(f"resized from {image.size[0]} x {image.size[1]} to the model's "
                     f"{size} x {size}")
        image = image.resize((size, size), resample)
    return PreparedImage(image, original_size, original_mode, notes)
