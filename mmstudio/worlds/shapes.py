"""The shapes world (WORLDS.md section 1): one coloured shape on a plain 32 x 32 background.

Pixel convention (used by the renderer and the analyzer alike): continuous image coordinates with
x to the right and y downwards, origin at the top-left corner of the canvas. Pixel ``img[i, j]``
covers the unit square ``[j, j+1) x [i, i+1)``, so its centre is ``(j + 0.5, i + 0.5)`` and the
canvas centre ``(16, 16)`` is the corner shared by the four middle pixels. An object is drawn with
an integer centre ``(cx, cy)`` and integer radius ``r``; its bounding box is exactly
``[cx - r, cx + r] x [cy - r, cy + r]``, i.e. the pixels ``cx - r .. cx + r - 1`` (same for y).
The object's centre, which decides its position, is the centre of that box. Edges are anti-aliased
by 8 x 8 supersampling of each pixel's coverage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np

from mmstudio.worlds.common import (
    CaptionError,
    alternation,
    check_words,
    fill_attrs,
    grammar_error,
    normalize_caption,
    vocabulary_of,
)

NAME = "shapes"
KIND = "image"
CANVAS = 32
SAMPLE_SHAPE = (CANVAS, CANVAS, 3)

SHAPES = ("circle", "square", "triangle", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (40, 200, 60),
    "cyan": (40, 210, 220),
    "blue": (50, 90, 230),
    "purple": (160, 60, 200),
    "white": (245, 245, 245),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (10, 10, 10),
    "gray": (120, 120, 120),
    "navy": (20, 30, 80),
    "darkgreen": (20, 70, 40),
}
SIZES = ("small", "large")
#: Radius (half the bounding-box side) in pixels, inclusive ranges.
SIZE_RADII: dict[str, tuple[int, int]] = {"small": (4, 6), "large": (8, 11)}
POSITIONS = ("center", "top left", "top right", "bottom left", "bottom right")
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("purple", "triangle"), ("cyan", "cross"), ("yellow", "square")}
)
#: Fields of the held-out pairs, in the order of ``HELD_OUT``'s tuples.
PAIR_FIELDS = ("color", "shape")
CROSS_THICKNESS = 0.6  # arm thickness as a fraction of the radius
SUPERSAMPLE = 8

CENTER_TOLERANCE = 3  # px: "center" = object centre within this distance of (16, 16)
CORNER_MARGIN = 4  # px: a corner position is at least this far from both centre lines


@dataclass(frozen=True)
class ShapeAttrs:
    """Attributes of a shapes sample; ``None`` = left out (caption) or undecided (analyzer)."""

    color: str | None = None
    shape: str | None = None
    size: str | None = None
    position: str | None = None
    background: str | None = None


ATTRS = ShapeAttrs
FIELDS = ("color", "shape", "size", "position", "background")
VALUES: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS),
    "shape": SHAPES,
    "size": SIZES,
    "position": POSITIONS,
    "background": tuple(BACKGROUNDS),
}
#: Fields a caption may leave out while still naming color and shape.
OPTIONAL_FIELDS = ("size", "position", "background")
GRAMMAR = "a [size] color shape [in the position] [on a background background]"

# ---------------------------------------------------------------------------------------- captions

_VOCAB = vocabulary_of(["a an in the on background"], SIZES, COLORS, SHAPES, POSITIONS, BACKGROUNDS)
#: Every word of the caption grammar: all a text encoder trained on this world ever read.
VOCABULARY: frozenset[str] = frozenset(_VOCAB)
_CAPTION_RE = re.compile(
    rf"^an? (?:(?P<size>{alternation(SIZES)}) )?(?P<color>{alternation(COLORS)})"
    rf" (?P<shape>{alternation(SHAPES)})"
    rf"(?: in the (?P<position>{alternation(POSITIONS)}))?"
    rf"(?: on an? (?P<background>{alternation(BACKGROUNDS)}) background)?$"
)


def caption(attrs: ShapeAttrs) -> str:
    """The caption naming exactly the set fields; ``""`` when nothing is set (unconditional).

    Full form: ``a {size} {color} {shape} in the {position} on a {background} background``.
    """
    if all(getattr(attrs, f) is None for f in FIELDS):
        return ""
    if attrs.color is None or attrs.shape is None:
        raise CaptionError("a shapes caption always names a color and a shape")
    words = ["a"]
    if attrs.size is not None:
        words.append(attrs.size)
    words += [attrs.color, attrs.shape]
    if attrs.position is not None:
        words += ["in the", attrs.position]
    if attrs.background is not None:
        words += ["on a", attrs.background, "background"]
    return " ".join(words)


def parse(text: str) -> ShapeAttrs:
    """Read a caption back into attributes (case and whitespace tolerant, trailing period allowed,
    ``an`` accepted for ``a``). The empty caption gives all-``None`` attributes.

    Raises ``CaptionError`` naming unknown words, or saying the order is off.
    """
    norm = normalize_caption(text)
    if not norm:
        return ShapeAttrs()
    check_words(norm, _VOCAB, NAME, GRAMMAR)
    m = _CAPTION_RE.match(norm)
    if m is None:
        raise grammar_error(norm, NAME, GRAMMAR)
    return ShapeAttrs(**m.groupdict())


def is_held_out(attrs: ShapeAttrs) -> bool:
    """True for the color/shape pairs no training data contains."""
    return (attrs.color, attrs.shape) in HELD_OUT


def sample_attrs(rng: np.random.Generator, split: str = "train") -> ShapeAttrs:
    """Draw complete attributes uniformly; ``train`` excludes held-out pairs (see ``SPLITS``)."""
    return fill_attrs(ShapeAttrs(), rng, VALUES, HELD_OUT, PAIR_FIELDS, split)


def random_caption_form(attrs: ShapeAttrs, rng: np.random.Generator, p_shorten: float) -> str:
    """The full caption of ``attrs``, or with probability ``p_shorten`` a shortened one that drops
    each optional phrase (size, position, background) with probability 1/2, at least one."""
    if rng.random() < p_shorten:
        while True:
            drop = rng.random(len(OPTIONAL_FIELDS)) < 0.5
            if drop.any():
                break
        kept = {f: getattr(attrs, f) for f in FIELDS}
        for field, d in zip(OPTIONAL_FIELDS, drop, strict=True):
            if d:
                kept[field] = None
        return caption(ShapeAttrs(**kept))
    return caption(attrs)


# ---------------------------------------------------------------------------------------- renderer


@cache
def shape_alpha(shape: str, radius: int) -> np.ndarray:
    """Anti-aliased coverage of a shape in its bounding box, ``(2r, 2r)`` float32 in [0, 1].

    The box's pixel ``[i, j]`` spans local coordinates ``u in [j - r, j - r + 1)``,
    ``v in [i - r, i - r + 1)`` around the object centre (v grows downwards).
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}")
    r, s = int(radius), SUPERSAMPLE
    t = (np.arange(2 * r * s, dtype=np.float64) + 0.5) / s - r  # sub-sample centres
    u, v = t[None, :], t[:, None]  # (1, 2rs), (2rs, 1)
    if shape == "circle":
        inside = u**2 + v**2 <= r**2
    elif shape == "square":
        inside = np.ones((t.size, t.size), dtype=bool)
    elif shape == "triangle":
        inside = np.abs(u) <= (v + r) / 2  # apex (0, -r), base corners (+-r, r)
    else:  # cross
        half = CROSS_THICKNESS * r / 2
        inside = (np.abs(u) <= half) | (np.abs(v) <= half)
    cover = inside.reshape(2 * r, s, 2 * r, s).mean(axis=(1, 3)).astype(np.float32)
    cover.setflags(write=False)
    return cover  # (2r, 2r)


def paint(
    canvas: np.ndarray, shape: str, radius: int, cx: int, cy: int, color: tuple[int, int, int]
) -> None:
    """Blend one shape with centre ``(cx, cy)`` into ``canvas`` (H, W, 3) uint8, in place."""
    alpha = shape_alpha(shape, radius)[..., None]  # (2r, 2r, 1)
    y0, x0 = cy - radius, cx - radius
    region = canvas[y0 : y0 + 2 * radius, x0 : x0 + 2 * radius]
    bg = region.astype(np.float32)
    region[...] = (bg + alpha * (np.asarray(color, np.float32) - bg) + 0.5).astype(np.uint8)


_CENTER_OFFSETS = [
    (dx, dy)
    for dx in range(-CENTER_TOLERANCE, CENTER_TOLERANCE + 1)
    for dy in range(-CENTER_TOLERANCE, CENTER_TOLERANCE + 1)
    if dx * dx + dy * dy <= CENTER_TOLERANCE**2
]


def place(position: str, radius: int, rng: np.random.Generator) -> tuple[int, int]:
    """An integer object centre ``(cx, cy)`` for ``position`` keeping the object on the canvas."""
    mid = CANVAS // 2
    if position == "center":
        dx, dy = _CENTER_OFFSETS[rng.integers(len(_CENTER_OFFSETS))]
        return mid + dx, mid + dy
    vertical, horizontal = position.split()
    low = (radius, mid - CORNER_MARGIN)  # top / left: centre in [r, 12]
    high = (mid + CORNER_MARGIN, CANVAS - radius)  # bottom / right: centre in [20, 32 - r]
    xr = low if horizontal == "left" else high
    yr = low if vertical == "top" else high
    return int(rng.integers(xr[0], xr[1] + 1)), int(rng.integers(yr[0], yr[1] + 1))


def render(attrs: ShapeAttrs, rng: np.random.Generator, split: str = "all") -> np.ndarray:
    """Draw the sample; left-out attributes are drawn at random (held-out pairs only when named,
    or when ``split`` allows). Deterministic given the generator's state. Returns (32, 32, 3) uint8.
    """
    return render_with_attrs(attrs, rng, split)[0]


class Layout(NamedTuple):
    """Everything that fixes a render's pixels: two renders are equal exactly when these are."""

    color: str
    shape: str
    background: str
    radius: int
    cx: int
    cy: int


def layout(attrs: ShapeAttrs, rng: np.random.Generator, split: str = "all") -> Layout:
    """What ``render`` would draw, with the same random draws, without painting (fast)."""
    a = fill_attrs(attrs, rng, VALUES, HELD_OUT, PAIR_FIELDS, split)
    lo, hi = SIZE_RADII[a.size]
    radius = int(rng.integers(lo, hi + 1))
    cx, cy = place(a.position, radius, rng)
    return Layout(a.color, a.shape, a.background, radius, cx, cy)


def render_with_attrs(
    attrs: ShapeAttrs, rng: np.random.Generator, split: str = "all"
) -> tuple[np.ndarray, ShapeAttrs]:
    """``render`` that also returns the complete attributes it drew."""
    a = fill_attrs(attrs, rng, VALUES, HELD_OUT, PAIR_FIELDS, split)
    return paint_layout(layout(a, rng)), a


def paint_layout(lay: Layout) -> np.ndarray:
    """The (32, 32, 3) uint8 render of a layout."""
    img = np.empty(SAMPLE_SHAPE, dtype=np.uint8)  # (H, W, 3)
    img[...] = BACKGROUNDS[lay.background]
    paint(img, lay.shape, lay.radius, lay.cx, lay.cy, COLORS[lay.color])
    return img


# ---------------------------------------------------------------------------------------- analyzer

_BG_NAMES = tuple(BACKGROUNDS)
_BG_RGB = np.array([BACKGROUNDS[n] for n in _BG_NAMES], np.float32)  # (4, 3)
_FG_NAMES = tuple(COLORS)
_FG_RGB = np.array([COLORS[n] for n in _FG_NAMES], np.float32)  # (8, 3)
BG_TOLERANCE = 48.0  # RGB distance within which a pixel counts as a background colour
FG_TOLERANCE = 60.0  # RGB distance within which a pixel votes for a palette colour
NOISE_FLOOR = 0.2  # object coverage below this, next to the object, is treated as noise


@dataclass(frozen=True)
class ObjectReading:
    """What the analyzer reads off one image before naming attributes."""

    background: str | None
    color: str | None
    alpha: np.ndarray | None  # (H, W) object coverage in [0, 1]


def read_object(img: np.ndarray) -> ObjectReading:
    """Find the background, the object's colour and its coverage (alpha) in a (H, W, 3) image."""
    px = np.asarray(img, np.float32).reshape(-1, 3)  # (N, 3)
    d_bg = np.linalg.norm(px[:, None, :] - _BG_RGB[None], axis=-1)  # (N, 4)
    near_bg = d_bg <= BG_TOLERANCE
    counts = near_bg.sum(axis=0)
    k = int(np.argmax(counts))
    if counts[k] < 0.25 * px.shape[0]:
        return ObjectReading(None, None, None)
    bg_mean = px[near_bg[:, k]].mean(axis=0)
    candidates = px[np.linalg.norm(px - bg_mean, axis=-1) > BG_TOLERANCE]
    if len(candidates) < 3:
        return ObjectReading(_BG_NAMES[k], None, None)
    d_fg = np.linalg.norm(candidates[:, None, :] - _FG_RGB[None], axis=-1)  # (M, 8)
    nearest = np.argmin(d_fg, axis=1)
    votes = np.bincount(nearest[d_fg.min(axis=1) <= FG_TOLERANCE], minlength=len(_FG_NAMES))
    c = int(np.argmax(votes))
    if votes[c] < 3 or votes[c] < 0.5 * votes.sum():
        return ObjectReading(_BG_NAMES[k], None, None)
    fg_mean = candidates[(nearest == c) & (d_fg[:, c] <= FG_TOLERANCE)].mean(axis=0)
    axis = fg_mean - bg_mean
    alpha = np.clip((px - bg_mean) @ axis / float(axis @ axis), 0.0, 1.0)
    h, w = np.asarray(img).shape[:2]
    return ObjectReading(_BG_NAMES[k], _FG_NAMES[c], _largest_blob(alpha.reshape(h, w)))


def _largest_blob(alpha: np.ndarray) -> np.ndarray:
    """Keep the coverage inside (one pixel around) the largest connected blob of alpha > 0.5.

    Also when there is one blob: faint coverage elsewhere (a generated image's slightly noisy
    background) would otherwise add up along whole rows and columns and stretch the bounding box.
    """
    from scipy import ndimage

    labels, n = ndimage.label(alpha > 0.5)
    if n == 0:
        return alpha
    sizes = np.bincount(labels.ravel())[1:]
    blob = ndimage.binary_dilation(labels == 1 + int(np.argmax(sizes)), iterations=1)
    # Faint coverage in the ring is noise more often than an anti-aliased edge.
    return np.where(blob & (alpha >= NOISE_FLOOR), alpha, 0.0)


@dataclass(frozen=True)
class Geometry:
    """Bounding box (continuous coordinates) and shape features of an object's coverage."""

    x0: float
    y0: float
    x1: float
    y1: float
    fill: float  # coverage / bounding-box area
    asymmetry: float  # (bottom half - top half) / total coverage

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def side(self) -> float:
        return max(self.x1 - self.x0, self.y1 - self.y0)


def measure(alpha: np.ndarray, min_mass: float = 0.25) -> Geometry | None:
    """Bounding box from the rows/columns holding at least ``min_mass`` coverage, and features."""
    cols = np.flatnonzero(alpha.sum(axis=0) >= min_mass)
    rows = np.flatnonzero(alpha.sum(axis=1) >= min_mass)
    if len(cols) < 2 or len(rows) < 2:
        return None
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1
    box = alpha[y0:y1, x0:x1]
    total = float(box.sum())
    h = y1 - y0
    row_mass = box.sum(axis=1)
    top = float(row_mass[: h // 2].sum()) + (float(row_mass[h // 2]) / 2 if h % 2 else 0.0)
    asym = (total - 2 * top) / total if total > 0 else 0.0
    return Geometry(x0, y0, x1, y1, total / box.size, asym)


def classify_shape(g: Geometry) -> str | None:
    """Shape from geometry: a triangle holds 3/4 of its mass in the bottom half (asymmetry 0.5);
    the symmetric shapes differ in fill: square 1, circle pi/4, cross about 0.51."""
    if 0.3 <= g.asymmetry <= 0.7 and 0.35 <= g.fill <= 0.65:
        return "triangle"
    if abs(g.asymmetry) > 0.12:
        return None
    if g.fill >= 0.9:
        return "square"
    if 0.68 <= g.fill <= 0.88:
        return "circle"
    if 0.38 <= g.fill <= 0.62:
        return "cross"
    return None


def classify_size(g: Geometry) -> str | None:
    """small: side 8-12 px, large: 16-22 px; a side of 14 +- 1 px is undecided."""
    if g.side <= 13:
        return "small"
    if g.side >= 15:
        return "large"
    return None


def object_center(g: Geometry) -> tuple[float, float]:
    """The object's centre: the middle of its bounding box, which WORLDS.md makes a square of side
    2 x radius for every shape. A triangle's apex is a single anti-aliased pixel, the one edge whose
    coverage row can fall under the bounding box's mass threshold when the image is slightly soft
    (a reconstruction, a generated image), moving the box's top, and so its centre, by a whole
    pixel's half; its base row is the widest and firmest. So a triangle's centre is read from its
    base: half the side above the bottom edge (the side is the base's width, as firm)."""
    if classify_shape(g) == "triangle":
        return (g.x0 + g.x1) / 2, g.y1 - (g.x1 - g.x0) / 2
    return g.center


def classify_position(g: Geometry) -> str | None:
    """WORLDS.md exactly: center = the object's centre (``object_center``) within
    ``CENTER_TOLERANCE`` (3 px) of (16, 16); a corner = in that quadrant at least
    ``CORNER_MARGIN`` (4 px) from both centre lines; anywhere else (between the bands, or near one
    centre line only) undecided (None)."""
    cx, cy = object_center(g)
    dx, dy = cx - CANVAS / 2, cy - CANVAS / 2
    if dx * dx + dy * dy <= CENTER_TOLERANCE**2:
        return "center"
    if abs(dx) >= CORNER_MARGIN and abs(dy) >= CORNER_MARGIN:
        return f"{'top' if dy < 0 else 'bottom'} {'left' if dx < 0 else 'right'}"
    return None


def describe(img: np.ndarray) -> ShapeAttrs:
    """The analyzer: read every attribute off a (32, 32, 3) image (0-255 values), ``None`` where
    it cannot decide. Needs no model."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    obj = read_object(img)
    if obj.alpha is None:
        return ShapeAttrs(background=obj.background, color=obj.color)
    g = measure(obj.alpha)
    if g is None:
        return ShapeAttrs(color=obj.color, background=obj.background)
    return ShapeAttrs(
        color=obj.color,
        shape=classify_shape(g),
        size=classify_size(g),
        position=classify_position(g),
        background=obj.background,
    )
