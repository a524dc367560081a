"""Pictures of a token prior's run and of the tokens-vs-diffusion comparison, as uint8 RGB arrays
drawn with numpy and PIL (no matplotlib: its drawing holds the GIL, see ``sound_pictures``).

- ``token_grid_picture``: the 8 x 8 grid of codes in raster order, each written cell tinted with
  the colour its patch decodes to and labelled with its code, the cells not written yet blank,
  the current one outlined;
- ``grid_overlay``: the (partial) image enlarged with the token cells drawn over it;
- ``candidates_picture``: the most probable tokens for one position, each as the code decoded in
  place, with its probability as a bar;
- ``scatter_picture``: adherence against time per sample, one labelled point per model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from mmstudio.pipelines.sound_pictures import _font

BACKGROUND = (255, 255, 255)
INK = (55, 65, 81)
FAINT = (150, 156, 170)
UNWRITTEN = (236, 238, 242)
CURRENT = (0, 200, 120)
BAR = (203, 210, 255)
BAR_TAKEN = (79, 70, 229)
PARADIGM_COLORS = {"tokens + autoregression": (214, 39, 40), "pixel diffusion": (31, 119, 180),
                   "latent diffusion": (44, 160, 44)}


def _enlarge(image: np.ndarray, size: int) -> np.ndarray:
    factor = max(1, size // image.shape[0])
    return np.repeat(np.repeat(np.asarray(image, np.uint8), factor, 0), factor, 1)


def _text_color(rgb: np.ndarray) -> tuple[int, int, int]:
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (20, 20, 20) if luminance > 140 else (245, 245, 245)


def token_grid_picture(tokens: Sequence[int], filled: int, image: np.ndarray | None,
                       grid: int = 8, current: int | None = None, size: int = 256) -> np.ndarray:
    """``tokens`` in raster order (at least ``filled`` of them) as a ``grid`` x ``grid`` table of
    codes: written cells tinted with the mean colour of their patch in ``image`` (the decoded
    grid), unwritten cells blank with a dot; ``current`` (a position) outlined."""
    cell = size // grid
    picture = Image.new("RGB", (cell * grid, cell * grid), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    font = _font(max(9, cell // 3))
    pixels = None if image is None else np.asarray(image, np.float64)
    patch = None if pixels is None else pixels.shape[0] // grid
    for position in range(grid * grid):
        row, col = divmod(position, grid)
        box = [col * cell, row * cell, (col + 1) * cell - 1, (row + 1) * cell - 1]
        if position < filled:
            if pixels is not None:
                tint = pixels[row * patch:(row + 1) * patch, col * patch:(col + 1) * patch]
                rgb = tint.reshape(-1, 3).mean(0)
            else:
                rgb = np.array([200.0, 205.0, 215.0])
            draw.rectangle(box, fill=tuple(int(v) for v in rgb), outline=(255, 255, 255))
            text, color = str(int(tokens[position])), _text_color(rgb)
        else:
            draw.rectangle(box, fill=UNWRITTEN, outline=(255, 255, 255))
            text, color = "·", FAINT
        width = draw.textlength(text, font=font)
        draw.text((box[0] + (cell - width) / 2, box[1] + cell / 2 - font.size / 2 - 1), text,
                  fill=color, font=font)
    if current is not None and 0 <= current < grid * grid:
        row, col = divmod(current, grid)
        draw.rectangle([col * cell, row * cell, (col + 1) * cell - 1, (row + 1) * cell - 1],
                       outline=CURRENT, width=3)
    return np.asarray(picture)


def grid_overlay(image: np.ndarray, grid: int = 8, current: int | None = None,
                 size: int = 256) -> np.ndarray:
    """The image enlarged (nearest neighbour) with the token cells' borders; ``current``
    outlined."""
    big = Image.fromarray(_enlarge(image, size))
    draw = ImageDraw.Draw(big)
    cell = big.width // grid
    for k in range(1, grid):
        draw.line([(k * cell, 0), (k * cell, big.height)], fill=(255, 255, 255, 90), width=1)
        draw.line([(0, k * cell), (big.width, k * cell)], fill=(255, 255, 255, 90), width=1)
    if current is not None and 0 <= current < grid * grid:
        row, col = divmod(current, grid)
        draw.rectangle([col * cell, row * cell, (col + 1) * cell - 1, (row + 1) * cell - 1],
                       outline=CURRENT, width=3)
    return np.asarray(big)


def candidates_picture(codes: Sequence[int], probabilities: Sequence[float],
                       tiles: np.ndarray, taken: int | None = None, width: int = 320,
                       row_height: int = 34) -> np.ndarray:
    """One row per candidate: the decoded tile of the code in place, ``code  p%`` and a bar of
    its probability (the most probable one full length); the token taken drawn in the strong
    colour."""
    picture = Image.new("RGB", (width, row_height * len(codes) + 4), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    font = _font(13)
    tile_size = row_height - 6
    left = tile_size + 12
    scale = max(max((float(p) for p in probabilities), default=0.0), 1e-9)
    for i, (code, p) in enumerate(zip(codes, probabilities, strict=True)):
        y = 2 + i * row_height
        tile = Image.fromarray(_enlarge(tiles[i], tile_size)).resize((tile_size, tile_size),
                                                                     Image.NEAREST)
        picture.paste(tile, (4, y + 3))
        bar_width = int((width - left - 96) * float(p) / scale)
        draw.rectangle([left + 92, y + 8, left + 92 + max(bar_width, 1), y + row_height - 8],
                       fill=BAR_TAKEN if code == taken else BAR)
        label = f"{int(code):>3}  {float(p):6.1%}"
        draw.text((left, y + row_height / 2 - 8), label, fill=INK, font=font)
    return np.asarray(picture)


def scatter_picture(points: Sequence[tuple[str, str, float, float | None]],
                    width: int = 440, height: int = 300) -> np.ndarray:
    """(model, paradigm, seconds per sample, adherence) points: adherence (0-100%) against
    time per sample on a log axis, each point labelled with its model."""
    picture = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(picture)
    font, small = _font(12), _font(10)
    left, right, top, bottom = 52, 20, 30, 44
    draw.rectangle([left, top, width - right, height - bottom], outline=FAINT)
    times = [t for _, _, t, a in points if a is not None and t > 0]
    lo = np.log10(min(times)) - 0.3 if times else -2.0
    hi = np.log10(max(times)) + 0.3 if times else 1.0
    if hi - lo < 1.0:
        middle = (hi + lo) / 2
        lo, hi = middle - 0.5, middle + 0.5

    def x_of(seconds: float) -> float:
        return left + (np.log10(seconds) - lo) / (hi - lo) * (width - left - right)

    def y_of(share: float) -> float:
        return height - bottom - share * (height - top - bottom)

    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(share)
        draw.line([(left, y), (width - right, y)], fill=(236, 238, 242))
        draw.text((6, y - 7), f"{share:.0%}", fill=INK, font=small)
    for exponent in range(int(np.floor(lo)), int(np.ceil(hi)) + 1):
        for mantissa in (1, 2, 5):
            seconds = mantissa * 10.0 ** exponent
            if not lo <= np.log10(seconds) <= hi:
                continue
            x = x_of(seconds)
            draw.line([(x, height - bottom), (x, height - bottom + 4)], fill=FAINT)
            label = f"{seconds * 1000:g} ms" if seconds < 1 else f"{seconds:g} s"
            draw.text((x - draw.textlength(label, font=small) / 2, height - bottom + 6), label,
                      fill=INK, font=small)
    draw.text((left, height - 16), "time per sample (log scale)", fill=INK, font=font)
    draw.text((left, 8), "adherence", fill=INK, font=font)
    for model, paradigm, seconds, share in points:
        if share is None or seconds <= 0:
            continue
        x, y = x_of(seconds), y_of(share)
        color = PARADIGM_COLORS.get(paradigm, INK)
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=color)
        label_x = x + 8 if x + 8 + draw.textlength(model, font=font) < width else \
            x - 8 - draw.textlength(model, font=font)
        draw.text((label_x, y - 7), model, fill=color, font=font)
    return np.asarray(picture)


class TokenTrace:
    """A token prior's run as one picture per token (the code grid and the decoded image side by
    side, as the grid fills), for the trace viewer's GIF and MP4 downloads
    (``ui.trace_viewer.trace_files``)."""

    def __init__(self, tokens: Sequence[int], frames: np.ndarray, grid: int = 8,
                 size: int = 192) -> None:
        self.tokens, self.frames, self.grid, self.size = list(tokens), frames, grid, size

    def __len__(self) -> int:
        return len(self.tokens)

    def strip(self, index: int) -> np.ndarray:
        image = self.frames[index]
        left = token_grid_picture(self.tokens, index + 1, image, self.grid, index, self.size)
        right = grid_overlay(image, self.grid, index, self.size)
        right = right[: left.shape[0], : left.shape[1]]
        spacer = np.full((left.shape[0], 8, 3), 255, np.uint8)
        return np.concatenate([left, spacer, right], axis=1)

    def write_gif(self, path, seconds_per_step: float = 0.08):
        from pathlib import Path

        pictures = [Image.fromarray(self.strip(i)) for i in range(len(self))]
        durations = [int(seconds_per_step * 1000)] * (len(pictures) - 1) + [1500]
        pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=durations,
                         loop=0)
        return Path(path)

    def write_mp4(self, path, fps: int = 12):
        from mmstudio.pipelines.trace import _even
        from mmstudio.worlds.media import write_mp4

        frames = np.stack([self.strip(i) for i in range(len(self))])
        frames = np.concatenate([frames, np.repeat(frames[-1:], fps, axis=0)])  # hold the end
        return write_mp4(_even(frames), path, fps=fps, scale=1)
