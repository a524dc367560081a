"""Training and evaluation data drawn from the worlds, rendered on the fly.

- ``WorldSampler``: an endless, seeded stream of ``(sample, caption, attrs)`` for training, with a
  rate of shortened captions and a rate of empty captions (for classifier-free guidance). The
  ``train`` split never contains a held-out pair.
- ``eval_set``: a fixed list of evaluation items built from a seed, cycling through every
  combination of caption attributes (held-out pairs included and flagged).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from mmstudio.errors import UserError
from mmstudio.worlds import get_world
from mmstudio.worlds.common import SPLITS

#: Default seed of the fixed evaluation sets.
EVAL_SEED = 20_240


class Example(NamedTuple):
    """One training example: the rendered sample, the caption shown to a model, the full truth."""

    sample: np.ndarray
    caption: str
    attrs: Any


class Batch(NamedTuple):
    """``n`` examples stacked: samples (n, *SAMPLE_SHAPE), captions and attrs as lists."""

    samples: np.ndarray
    captions: list[str]
    attrs: list[Any]


def _resolve(world: str | ModuleType) -> ModuleType:
    return get_world(world) if isinstance(world, str) else world


class WorldSampler(Iterator[Example]):
    """Endless, deterministic stream of training examples from one world.

    Each example draws complete attributes from ``split`` (``train`` excludes held-out pairs),
    renders them, and captions them: empty with probability ``p_empty``, otherwise the full
    caption or (``p_shorten``, worlds with optional phrases only) a shortened one. ``attrs`` is
    always the complete truth of the sample, whatever the caption names.
    """

    def __init__(
        self,
        world: str | ModuleType,
        seed: int = 0,
        p_shorten: float = 0.5,
        p_empty: float = 0.1,
        split: str = "train",
    ) -> None:
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        for name, p in (("p_shorten", p_shorten), ("p_empty", p_empty)):
            if not 0.0 <= p <= 1.0:
                raise UserError(f"{name} must be between 0 and 1, got {p}")
        self.world = _resolve(world)
        self.seed, self.p_shorten, self.p_empty, self.split = seed, p_shorten, p_empty, split
        self.rng = np.random.default_rng(seed)

    def __next__(self) -> Example:
        return self._next(self.world.render)

    def next_layout(self) -> Any:
        """The next example's ``world.layout`` (what fixes its pixels) instead of its render:
        the same random draws as ``next``, so the stream stays the same, without painting.
        For measuring which samples a training run saw (``evaluation.overlap``)."""
        return self._next(self.world.layout).sample

    def _next(self, make: Any) -> Example:
        attrs = self.world.sample_attrs(self.rng, self.split)
        sample = make(attrs, self.rng)
        if self.rng.random() < self.p_empty:
            text = ""
        else:
            text = self.world.random_caption_form(attrs, self.rng, self.p_shorten)
        return Example(sample, text, attrs)

    def batch(self, n: int) -> Batch:
        """The next ``n`` examples, samples stacked into one array (n, *SAMPLE_SHAPE)."""
        examples = [next(self) for _ in range(n)]
        samples = np.stack([e.sample for e in examples])
        return Batch(samples, [e.caption for e in examples], [e.attrs for e in examples])


@dataclass(frozen=True)
class EvalItem:
    """One item of a fixed evaluation set."""

    index: int
    attrs: Any  # complete attributes
    caption: str  # full caption of ``attrs``
    sample: np.ndarray
    held_out: bool


def combinations(world: str | ModuleType) -> list[Any]:
    """Every complete attribute combination of a world, in a fixed order."""
    w = _resolve(world)
    values = itertools.product(*(w.VALUES[f] for f in w.FIELDS))
    return [w.ATTRS(**dict(zip(w.FIELDS, v, strict=True))) for v in values]


def eval_attrs(world: str | ModuleType, n: int, seed: int = EVAL_SEED) -> list[Any]:
    """``n`` complete attributes cycling through every combination (held-out ones included), each
    cycle in a seeded random order; a prefix of a longer list with the same seed."""
    combos = combinations(world)
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    while len(out) < n:
        out += [combos[i] for i in rng.permutation(len(combos))]
    return out[:n]


def iter_eval_set(
    world: str | ModuleType, n: int, seed: int = EVAL_SEED, render: bool = True
) -> Iterator[EvalItem]:
    """The items of ``eval_set`` one at a time (rendering lazily, for large ``n``)."""
    w = _resolve(world)
    for i, attrs in enumerate(eval_attrs(w, n, seed)):
        sample = w.render(attrs, np.random.default_rng([seed, i])) if render else np.empty(0)
        yield EvalItem(i, attrs, w.caption(attrs), sample, w.is_held_out(attrs))


def eval_set(
    world: str | ModuleType, n: int, seed: int = EVAL_SEED, render: bool = True
) -> list[EvalItem]:
    """A fixed evaluation set: item ``i`` is rendered with ``default_rng([seed, i])``, so it is the
    same whatever ``n`` is. With ``render=False`` samples are left empty (attributes only)."""
    return list(iter_eval_set(world, n, seed, render))
