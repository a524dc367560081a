"""The training-overlap measure of the model cards: the replayed stream is the trainers' stream,
layouts fix pixels, and the exact count agrees with the expectation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mmstudio.evaluation import overlap
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import WorldSampler, eval_set


def test_next_layout_replays_the_same_stream() -> None:
    rendered = WorldSampler(shapes, seed=17, p_shorten=0.5, p_empty=0.1)
    replayed = WorldSampler(shapes, seed=17, p_shorten=0.5, p_empty=0.1)
    for _ in range(300):
        example = next(rendered)
        assert np.array_equal(shapes.paint_layout(replayed.next_layout()), example.sample)
    after_a, after_b = next(rendered), next(replayed)  # still in step, captions included
    assert after_a.caption == after_b.caption and np.array_equal(after_a.sample, after_b.sample)


def test_eval_layouts_are_the_eval_renders() -> None:
    for item, lay in zip(eval_set(shapes, 200), overlap.eval_layouts(200), strict=True):
        assert np.array_equal(shapes.paint_layout(lay), item.sample)


def test_the_image_space_and_its_probabilities() -> None:
    per_radius = overlap.layouts_per_combination()
    assert sum(per_radius.values()) == 1195
    total = 0.0
    for color, shape, background in itertools.product(shapes.COLORS, shapes.SHAPES,
                                                      shapes.BACKGROUNDS):
        for radius in per_radius:
            centres = [(16 + dx, 16 + dy) for dx, dy in shapes._CENTER_OFFSETS]
            for xs, ys in itertools.product(((radius, 12), (20, 32 - radius)), repeat=2):
                centres += itertools.product(range(xs[0], xs[1] + 1), range(ys[0], ys[1] + 1))
            assert len(centres) == per_radius[radius]
            total += sum(overlap.layout_probability(
                shapes.Layout(color, shape, background, radius, cx, cy)) for cx, cy in centres)
    assert total == pytest.approx(1.0)


def test_exact_and_expected_agree_on_a_short_run() -> None:
    layouts = overlap.eval_layouts(500)
    seen = overlap.per_step_stream(3, range(400), 32)
    exact = overlap.exact_share(layouts, seen)
    expected = overlap.expected_share(layouts, 400 * 32)
    assert exact["share_held_out"] == expected["share_held_out"] == 0.0
    assert exact["share_seen_pairs"] == pytest.approx(expected["share_seen_pairs"], abs=0.04)
    assert 0.03 < exact["share"] < 0.2  # 12,800 draws of 138,620 images
