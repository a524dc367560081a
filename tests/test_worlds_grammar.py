"""Caption grammars of the worlds: round trips of every form, tolerance, unknown words."""

from __future__ import annotations

import itertools

import pytest

from mmstudio.errors import UserError
from mmstudio.worlds import WORLDS, CaptionError, adherence, motion, parse_any, shapes, sounds
from mmstudio.worlds.datasets import combinations


def _subsets(fields: tuple[str, ...]):
    for k in range(len(fields) + 1):
        yield from itertools.combinations(fields, k)


def test_shapes_every_form_round_trips() -> None:
    """All 1280 full attribute sets x all 8 subsets of the optional phrases."""
    for full in combinations("shapes"):
        for dropped in _subsets(shapes.OPTIONAL_FIELDS):
            attrs = shapes.ShapeAttrs(
                **{f: (None if f in dropped else getattr(full, f)) for f in shapes.FIELDS}
            )
            text = shapes.caption(attrs)
            assert shapes.parse(text) == attrs, text


@pytest.mark.parametrize("name", ["sounds", "motion"])
def test_full_form_round_trips(name: str) -> None:
    world = WORLDS[name]
    for attrs in combinations(name):
        assert world.parse(world.caption(attrs)) == attrs


def test_examples_from_worlds_md() -> None:
    assert shapes.parse("a small red circle in the top left on a black background") == (
        shapes.ShapeAttrs("red", "circle", "small", "top left", "black")
    )
    assert shapes.parse("a red circle") == shapes.ShapeAttrs("red", "circle")
    assert shapes.parse("a large blue square on a gray background") == shapes.ShapeAttrs(
        "blue", "square", "large", None, "gray"
    )
    assert sounds.parse("three short beeps of a high square wave") == sounds.SoundAttrs(
        "square", "high", "three short beeps"
    )
    assert sounds.parse("one long note of a low sine wave").timbre == "sine"
    assert sounds.caption(sounds.SoundAttrs("noise", "mid", "two short beeps")) == (
        "two short beeps of mid noise"
    )
    assert motion.caption(motion.MotionAttrs("red", "cross", "up", "navy")) == (
        "a red cross moving up on a navy background"
    )


def test_tolerant_of_case_whitespace_period_and_an() -> None:
    expected = shapes.ShapeAttrs("orange", "circle", "small", "center", None)
    assert shapes.parse("  A Small  ORANGE circle\tin the center. ") == expected
    assert shapes.parse("an orange circle") == shapes.ShapeAttrs("orange", "circle")
    assert sounds.parse("Two Short Beeps of low noise.") == sounds.SoundAttrs(
        "noise", "low", "two short beeps"
    )


@pytest.mark.parametrize("name", list(WORLDS))
def test_empty_caption_is_unconditional(name: str) -> None:
    world = WORLDS[name]
    assert world.parse("") == world.ATTRS()
    assert world.parse("  . ") == world.ATTRS()
    assert world.caption(world.ATTRS()) == ""


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("shapes", "a pink hexagon", ["'pink'", "'hexagon'"]),
        ("shapes", "a small red circle in the middle", ["'middle'"]),
        ("sounds", "three short beeps of a high triangle wave", ["'triangle'"]),
        ("motion", "a red circle moving sideways on a black background", ["'sideways'"]),
    ],
)
def test_unknown_words_are_named(name: str, text: str, words: list[str]) -> None:
    with pytest.raises(CaptionError) as info:
        WORLDS[name].parse(text)
    message = str(info.value)
    assert all(w in message for w in words), message
    assert "unknown word" in message
    assert isinstance(info.value, UserError)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("shapes", "a circle red"),
        ("shapes", "a red circle on a black background in the center"),
        ("shapes", "red circle"),
        ("shapes", "a small red"),
        ("sounds", "high sine wave"),
        ("sounds", "two short beeps of a low noise wave"),
        ("motion", "a red circle moving left"),
    ],
)
def test_known_words_out_of_order_are_rejected(name: str, text: str) -> None:
    with pytest.raises(CaptionError, match="does not follow the grammar"):
        WORLDS[name].parse(text)


def test_caption_rejects_inexpressible_attrs() -> None:
    with pytest.raises(CaptionError):
        shapes.caption(shapes.ShapeAttrs(color="red"))
    with pytest.raises(CaptionError):
        sounds.caption(sounds.SoundAttrs(timbre="sine"))
    with pytest.raises(CaptionError):
        motion.caption(motion.MotionAttrs(color="red", shape="circle"))


def test_parse_any_finds_the_world() -> None:
    assert parse_any("a red circle")[0] == "shapes"
    assert parse_any("one long note of a mid sine wave")[0] == "sounds"
    assert parse_any("a red circle moving left on a gray background")[0] == "motion"
    with pytest.raises(CaptionError, match="'sideways'"):
        parse_any("a red circle moving sideways on a gray background")


def test_adherence() -> None:
    described = shapes.ShapeAttrs("red", "circle", "small", "center", "black")
    assert adherence(shapes.parse("a red circle"), described)
    assert adherence(shapes.ShapeAttrs(), described)
    assert not adherence(shapes.parse("a large red circle"), described)
    assert not adherence(shapes.parse("a red circle"), shapes.ShapeAttrs(color="red"))
