"""The motion world (WORLDS.md section 3): one shape gliding across a 32 x 32 canvas.

A clip is 16 frames at 8 fps. The object is drawn like the shapes world (same palette, geometry and
pixel convention, see ``mmstudio.worlds.shapes``) with an integer radius of 5 to 8 px and moves 1 px
per frame in one direction, its whole path on the canvas. "up" means towards row 0.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from mmstudio.worlds import shapes
from mmstudio.worlds.common import (
    CaptionError,
    alternation,
    check_words,
    fill_attrs,
    grammar_error,
    normalize_caption,
    vocabulary_of,
)

NAME = "motion"
KIND = "video"
N_FRAMES = 16
FPS = 8
CANVAS = shapes.CANVAS
SAMPLE_SHAPE = (N_FRAMES, CANVAS, CANVAS, 3)
RADIUS_RANGE = (5, 8)  # inclusive
SPEED = 1  # px per frame

SHAPES = shapes.SHAPES
COLORS = shapes.COLORS
BACKGROUNDS = shapes.BACKGROUNDS
DIRECTIONS = ("left", "right", "up", "down")
#: Unit step per frame (dx, dy) in image coordinates (y grows downwards).
STEPS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
HELD_OUT = shapes.HELD_OUT
PAIR_FIELDS = ("color", "shape")


@dataclass(frozen=True)
class MotionAttrs:
    """Attributes of a motion clip; ``None`` = left out (caption) or undecided (analyzer)."""

    color: str | None = None
    shape: str | None = None
    direction: str | None = None
    background: str | None = None


ATTRS = MotionAttrs
FIELDS = ("color", "shape", "direction", "background")
VALUES: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS),
    "shape": SHAPES,
    "direction": DIRECTIONS,
    "background": tuple(BACKGROUNDS),
}
#: WORLDS.md defines no shortened motion captions: a caption names all four or nothing.
OPTIONAL_FIELDS: tuple[str, ...] = ()
GRAMMAR = "a color shape moving direction on a background background"

# ---------------------------------------------------------------------------------------- captions

_VOCAB = vocabulary_of(["a an moving on background"], COLORS, SHAPES, DIRECTIONS, BACKGROUNDS)
#: Every word of the caption grammar: all a text encoder trained on this world ever read.
VOCABULARY: frozenset[str] = frozenset(_VOCAB)
_CAPTION_RE = re.compile(
    rf"^an? (?P<color>{alternation(COLORS)}) (?P<shape>{alternation(SHAPES)})"
    rf" moving (?P<direction>{alternation(DIRECTIONS)})"
    rf" on an? (?P<background>{alternation(BACKGROUNDS)}) background$"
)


def caption(attrs: MotionAttrs) -> str:
    """``a {color} {shape} moving {direction} on a {background} background``; ``""`` when nothing
    is set. A motion caption names all four attributes or none."""
    if all(getattr(attrs, f) is None for f in FIELDS):
        return ""
    if any(getattr(attrs, f) is None for f in FIELDS):
        raise CaptionError(
            "a motion caption names the color, the shape, the direction and the background"
        )
    return (
        f"a {attrs.color} {attrs.shape} moving {attrs.direction} on a {attrs.background} background"
    )


def parse(text: str) -> MotionAttrs:
    """Read a caption back (case/whitespace tolerant, trailing period allowed, ``an`` accepted);
    ``""`` gives all-``None``. Raises ``CaptionError`` naming unknown words, or saying the order is
    off."""
    norm = normalize_caption(text)
    if not norm:
        return MotionAttrs()
    check_words(norm, _VOCAB, NAME, GRAMMAR)
    m = _CAPTION_RE.match(norm)
    if m is None:
        raise grammar_error(norm, NAME, GRAMMAR)
    return MotionAttrs(**m.groupdict())


def is_held_out(attrs: MotionAttrs) -> bool:
    """True for the color/shape pairs no training data contains (same as the shapes world)."""
    return (attrs.color, attrs.shape) in HELD_OUT


def sample_attrs(rng: np.random.Generator, split: str = "train") -> MotionAttrs:
    """Draw complete attributes uniformly; ``train`` excludes held-out pairs."""
    return fill_attrs(MotionAttrs(), rng, VALUES, HELD_OUT, PAIR_FIELDS, split)


def random_caption_form(attrs: MotionAttrs, rng: np.random.Generator, p_shorten: float) -> str:
    """The caption of ``attrs``: the grammar has no shortened forms, so ``p_shorten`` is unused
    (kept for a uniform interface across worlds)."""
    del rng, p_shorten
    return caption(attrs)


# ---------------------------------------------------------------------------------------- renderer


def start_position(direction: str, radius: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random integer start centre ``(x, y)`` whose whole 16-frame path stays on the canvas."""
    travel = SPEED * (N_FRAMES - 1)
    dx, dy = STEPS[direction]

    def axis(step: int) -> int:
        lo, hi = radius, CANVAS - radius  # centre range keeping the object on the canvas
        if step > 0:
            hi -= travel
        elif step < 0:
            lo += travel
        return int(rng.integers(lo, hi + 1))

    return axis(dx), axis(dy)


def render(attrs: MotionAttrs, rng: np.random.Generator, split: str = "all") -> np.ndarray:
    """Draw the clip; left-out attributes are drawn at random. Returns (16, 32, 32, 3) uint8."""
    return render_with_attrs(attrs, rng, split)[0]


def render_with_attrs(
    attrs: MotionAttrs, rng: np.random.Generator, split: str = "all"
) -> tuple[np.ndarray, MotionAttrs]:
    """``render`` that also returns the complete attributes it drew."""
    a = fill_attrs(attrs, rng, VALUES, HELD_OUT, PAIR_FIELDS, split)
    radius = int(rng.integers(RADIUS_RANGE[0], RADIUS_RANGE[1] + 1))
    x, y = start_position(a.direction, radius, rng)
    dx, dy = STEPS[a.direction]
    frames = np.empty(SAMPLE_SHAPE, dtype=np.uint8)  # (T, H, W, 3)
    frames[...] = BACKGROUNDS[a.background]
    color = COLORS[a.color]
    for t in range(N_FRAMES):
        shapes.paint(frames[t], a.shape, radius, x + SPEED * t * dx, y + SPEED * t * dy, color)
    return frames, a


# ---------------------------------------------------------------------------------------- analyzer

MIN_SPEED = 0.5  # px/frame along the motion axis
MAX_DRIFT = 0.25  # px/frame across it


def _majority(votes: list[str | None], quorum: float = 0.5) -> str | None:
    """The most common non-None vote if it holds more than ``quorum`` of all votes."""
    counts = Counter(v for v in votes if v is not None)
    if not counts:
        return None
    value, n = counts.most_common(1)[0]
    return value if n > quorum * len(votes) else None


def read_frames(frames: np.ndarray) -> list[tuple[shapes.ObjectReading, shapes.Geometry | None]]:
    """Each frame read as the shapes world reads an image: its object (colour, background, mask)
    and the mask's geometry (``None`` where no object is found)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) frames, got shape {frames.shape}")
    readings = []
    for frame in frames:
        obj = shapes.read_object(frame)
        readings.append((obj, shapes.measure(obj.alpha) if obj.alpha is not None else None))
    return readings


def track(readings: list[tuple[shapes.ObjectReading, shapes.Geometry | None]]
          ) -> tuple[np.ndarray, np.ndarray]:
    """The object's bounding-box centre ``(x, y)`` in each frame that shows one, and those
    frames' indices: (N, 2) and (N,)."""
    kept = [(t, g.center) for t, (_, g) in enumerate(readings) if g is not None]
    centers = np.array([c for _, c in kept], float).reshape(-1, 2)
    return centers, np.array([t for t, _ in kept])


def velocity(centers: np.ndarray, times: np.ndarray) -> tuple[float, float] | None:
    """The least-squares velocity (px per frame, x right and y down) of a track; ``None`` when
    fewer than 4 frames show the object."""
    if len(times) < 4:
        return None
    vx, vy = (float(np.polyfit(times, centers[:, i], 1)[0]) for i in range(2))
    return vx, vy


def classify_direction(centers: np.ndarray, times: np.ndarray) -> str | None:
    """Direction from the least-squares velocity of the object's centre over time."""
    v = velocity(centers, times)
    if v is None:
        return None
    vx, vy = v
    if abs(vx) >= MIN_SPEED and abs(vy) <= MAX_DRIFT:
        return "right" if vx > 0 else "left"
    if abs(vy) >= MIN_SPEED and abs(vx) <= MAX_DRIFT:
        return "down" if vy > 0 else "up"
    return None


def describe(frames: np.ndarray) -> MotionAttrs:
    """The analyzer: colour, shape and background by majority over frames (read as in the shapes
    world), direction from the track of the object's bounding-box centre. (T, H, W, 3) input,
    0-255 values; ``None`` where it cannot decide. Needs no model."""
    readings = read_frames(frames)
    kinds = [shapes.classify_shape(g) if g is not None else None for _, g in readings]
    return MotionAttrs(
        color=_majority([obj.color for obj, _ in readings]),
        shape=_majority(kinds),
        direction=classify_direction(*track(readings)),
        background=_majority([obj.background for obj, _ in readings]),
    )
