"""The procedural worlds of WORLDS.md: captions, renderers, analyzers and datasets.

Every world module (``shapes``, ``sounds``, ``motion``) has the same interface, so code can loop
over ``WORLDS``:

- ``NAME``, ``KIND`` ("image" | "audio" | "video"), ``SAMPLE_SHAPE``, ``FIELDS``, ``VALUES``,
  ``OPTIONAL_FIELDS``, ``HELD_OUT``, ``PAIR_FIELDS``, ``GRAMMAR``, ``ATTRS`` (the dataclass),
  ``VOCABULARY`` (every word of the grammar: all that a text encoder trained on the world read);
- ``caption(attrs) -> str`` and ``parse(text) -> attrs`` (raises ``CaptionError``);
- ``render(attrs, rng, split="all") -> np.ndarray`` filling left-out attributes at random, and
  ``render_with_attrs`` returning ``(sample, complete attrs)``;
- ``describe(sample) -> attrs``, the analyzer (``None`` = undecided);
- ``sample_attrs(rng, split)``, ``random_caption_form(attrs, rng, p_shorten)``,
  ``is_held_out(attrs)``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from mmstudio.errors import UserError
from mmstudio.worlds import motion, shapes, sounds
from mmstudio.worlds.common import (
    SPLITS,
    CaptionError,
    adherence,
    attribute_hits,
    attrs_dict,
    is_complete,
    named,
    unknown_words,
)

WORLDS: dict[str, ModuleType] = {"shapes": shapes, "sounds": sounds, "motion": motion}


def get_world(name: str) -> ModuleType:
    """The world module called ``name``; ``UserError`` listing the worlds otherwise."""
    try:
        return WORLDS[name]
    except KeyError:
        raise UserError(f"unknown world '{name}'; choose one of {', '.join(WORLDS)}") from None


def vocabulary(name: str) -> frozenset[str]:
    """The words of world ``name``'s caption grammar (``UserError`` for an unknown world)."""
    return get_world(name).VOCABULARY


def parse_any(text: str) -> tuple[str, Any]:
    """Find the world whose grammar a non-empty caption belongs to: ``(world name, attrs)``.

    Raises ``CaptionError`` with the reason from the closest world (fewest unknown words).
    """
    errors: list[tuple[int, int, CaptionError]] = []
    for rank, (name, world) in enumerate(WORLDS.items()):
        try:
            attrs = world.parse(text)
        except CaptionError as exc:
            errors.append((len(exc.unknown), rank, exc))
            continue
        if named(attrs):
            return name, attrs
    if not errors:
        raise CaptionError("the caption is empty")
    best = min(errors, key=lambda e: e[:2])[2]
    raise CaptionError(f"not a caption of any world: {best}", best.unknown)


__all__ = [
    "SPLITS",
    "WORLDS",
    "CaptionError",
    "adherence",
    "attribute_hits",
    "attrs_dict",
    "get_world",
    "is_complete",
    "motion",
    "named",
    "parse_any",
    "shapes",
    "sounds",
    "unknown_words",
    "vocabulary",
]
