"""Training sampler and evaluation sets: seeding, held-out exclusion, caption rates."""

from __future__ import annotations

import numpy as np
import pytest

from mmstudio.errors import UserError
from mmstudio.worlds import WORLDS, shapes
from mmstudio.worlds.datasets import WorldSampler, combinations, eval_attrs, eval_set


@pytest.mark.parametrize("name", list(WORLDS))
def test_train_split_never_yields_held_out(name: str) -> None:
    world = WORLDS[name]
    rng = np.random.default_rng(0)
    seen = {world.sample_attrs(rng, "train") for _ in range(5000)}
    assert not any(world.is_held_out(a) for a in seen)
    # ...while the other splits do
    assert any(world.is_held_out(world.sample_attrs(rng, "all")) for _ in range(2000))
    assert all(world.is_held_out(world.sample_attrs(rng, "heldout")) for _ in range(50))
    # and the sampler with empty or shortened captions keeps to it too
    sampler = WorldSampler(name, seed=1, p_empty=0.5, p_shorten=0.9)
    assert not any(world.is_held_out(next(sampler).attrs) for _ in range(500))


def test_train_split_fill_never_draws_held_out_pair() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        _, attrs = shapes.render_with_attrs(shapes.ShapeAttrs(color="purple"), rng, split="train")
        assert attrs.shape != "triangle"


@pytest.mark.parametrize("name", list(WORLDS))
def test_sampler_is_seeded(name: str) -> None:
    a = WorldSampler(name, seed=3).batch(6)
    b = WorldSampler(name, seed=3).batch(6)
    c = WorldSampler(name, seed=4).batch(6)
    assert a.samples.shape == (6, *WORLDS[name].SAMPLE_SHAPE)
    assert np.array_equal(a.samples, b.samples) and a.captions == b.captions
    assert not np.array_equal(a.samples, c.samples)


def test_sampler_caption_rates() -> None:
    sampler = WorldSampler("shapes", seed=0, p_shorten=0.5, p_empty=0.2)
    examples = [next(sampler) for _ in range(2000)]
    empty = sum(e.caption == "" for e in examples) / len(examples)
    full = [e for e in examples if e.caption]
    short = sum(e.caption != shapes.caption(e.attrs) for e in full) / len(full)
    assert 0.16 < empty < 0.24 and 0.44 < short < 0.56
    for e in full:  # every caption is in the grammar and true of its sample
        named = shapes.parse(e.caption)
        assert all(getattr(e.attrs, k) == v for k, v in vars(named).items() if v is not None)
    never = WorldSampler("shapes", seed=0, p_shorten=0.0, p_empty=0.0)
    assert all(e.caption == shapes.caption(e.attrs) for e in (next(never) for _ in range(100)))
    with pytest.raises(UserError):
        WorldSampler("shapes", p_empty=1.5)
    with pytest.raises(UserError):
        WorldSampler("shapes", split="test")


@pytest.mark.parametrize("name", list(WORLDS))
def test_eval_set_fixed_and_covering(name: str) -> None:
    world = WORLDS[name]
    small, large = eval_set(name, 5, seed=9), eval_set(name, 12, seed=9)
    for x, y in zip(small, large, strict=False):
        assert x.attrs == y.attrs and np.array_equal(x.sample, y.sample)
    assert [i.attrs for i in eval_set(name, 5, seed=10)] != [i.attrs for i in small]
    combos = combinations(name)
    attrs = eval_attrs(name, len(combos))
    assert set(attrs) == set(combos)  # one full cycle holds every combination once
    items = eval_set(name, 60, render=False)
    assert all(i.held_out == world.is_held_out(i.attrs) for i in items)
    assert any(i.held_out for i in eval_set(name, len(combos), render=False))
