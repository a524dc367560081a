"""The shapes analyzer reads position exactly as WORLDS.md says: center = the object's centre
within 3 px of (16, 16); a corner = in that quadrant, at least 4 px from both centre lines;
anywhere else undecided (None), never a guess."""

from __future__ import annotations

import numpy as np
import pytest

from mmstudio.worlds import shapes
from mmstudio.worlds.shapes import Geometry, classify_position


def box(cx: float, cy: float, r: float = 5.0) -> Geometry:
    return Geometry(cx - r, cy - r, cx + r, cy + r, fill=0.78, asymmetry=0.0)


@pytest.mark.parametrize(
    ("dx", "dy", "expected"),
    [
        (0, 0, "center"), (3, 0, "center"), (0, -3, "center"), (2.0, 2.0, "center"),
        (-2.5, 1.5, "center"),  # 2.92 px
        (3.5, 0, None), (2.5, 2.0, None),  # 3.2 px: past the centre band (was "center")
        (3.5, 3.5, None), (3.5, -6, None), (-6, 3.5, None),  # under 4 px from a line
        (4, 0, None), (0, 10, None), (10, 2, None),  # on or near one centre line
        (4, -4, "top right"), (-4, -4, "top left"), (4, 4, "bottom right"),
        (-4, 4, "bottom left"), (-10, -6, "top left"), (9.5, 11, "bottom right"),
    ],
)
def test_bands_on_measured_centres(dx: float, dy: float, expected: str | None) -> None:
    assert classify_position(box(16 + dx, 16 + dy)) == expected


@pytest.mark.parametrize(
    ("cx", "cy", "expected"),
    [(16, 16, "center"), (19, 16, "center"), (14, 18, "center"),  # 2.8 px
     (20, 16, None), (19, 19, None), (12, 15, None), (13, 20, None),  # 4.2 px; 3 px off a line
     (12, 12, "top left"), (20, 12, "top right"), (12, 20, "bottom left"),
     (22, 25, "bottom right")],
)
def test_bands_on_painted_discs(cx: int, cy: int, expected: str | None) -> None:
    """The same bands read off real pixels: a disc painted with its centre exactly there."""
    image = np.empty(shapes.SAMPLE_SHAPE, np.uint8)
    image[...] = shapes.BACKGROUNDS["black"]
    shapes.paint(image, "circle", 5, cx, cy, shapes.COLORS["red"])
    described = shapes.describe(image)
    assert (described.shape, described.color) == ("circle", "red")
    assert described.position == expected


def test_renders_of_every_position_read_back() -> None:
    """Renders place the centre inside the bands, so the analyzer reads all of them back."""
    rng = np.random.default_rng(0)
    for position in shapes.POSITIONS:
        for _ in range(200):
            image = shapes.render(shapes.ShapeAttrs(position=position), rng)
            assert shapes.describe(image).position == position


def test_a_triangle_with_a_faint_apex_keeps_its_position() -> None:
    """A triangle's centre is read from its firm base and width: its apex is one anti-aliased
    pixel, and a soft image (a reconstruction) can drop that row under the bounding box's mass
    threshold, which moved the box centre by half a pixel, out of the corner band at its edge."""
    attrs = shapes.ShapeAttrs(color="red", shape="triangle", size="large", position="top left",
                              background="black")
    rng = np.random.default_rng(3)
    for _ in range(20):
        image, _ = shapes.render_with_attrs(attrs, rng)
        obj = shapes.read_object(image)
        g = shapes.measure(obj.alpha)
        top = int(g.y0)
        faint = image.astype(np.float64)
        background = np.array(shapes.BACKGROUNDS["black"], dtype=np.float64)
        faint[top] = background + 0.3 * (faint[top] - background)  # the apex row fades
        faint = faint.round().astype(np.uint8)
        assert shapes.describe(faint).position == "top left"
        assert shapes.describe(image).position == "top left"
