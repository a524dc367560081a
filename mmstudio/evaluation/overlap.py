"""How much of an evaluation set also occurs in training. The shapes world's image space is finite.

A shapes render is fixed by its ``shapes.Layout``: colour, shape, background, radius and integer
centre (two renders have the same pixels exactly when their layouts are equal). Per colour, shape
and background there are ``layouts_per_combination()`` = 1,195 of them (small radii 4-6: 863;
large 8-11: 332), so 152,960 distinct images in all, 138,620 outside the held-out pairs. A run that
draws hundreds of thousands of training renders sees most of them: a seen-pair evaluation render
is then mostly a training image, and only the held-out pairs measure generalisation.

Two measures, both stated on the model cards:

- ``exact_share``: the training stream replayed (the trainers draw each step's batch from its own
  seeded ``WorldSampler``, so the stream is a function of seed, steps and batch size; replaying
  uses ``WorldSampler.next_layout``: the same draws, no painting) and the share of evaluation
  renders whose layout, hence exact pixels, occurs in it;
- ``expected_share``: for a stream that cannot be replayed (a run resumed at points not recorded)
  the expectation over i.i.d. training draws, ``1 - (1 - p)^draws`` per evaluation render, with
  ``p`` its probability under the training distribution (held-out pairs: 0).

For a generator the evaluation items are prompts, not renders: ``caption_share`` gives the share
of evaluation prompts whose complete attribute combination occurs in training.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import EVAL_SEED, WorldSampler, eval_attrs

TRAIN_SEED_STRIDE = 1_000_003  # the trainers' per-step sampler seed: seed * stride + step


def eval_layouts(n: int, seed: int = EVAL_SEED) -> list[shapes.Layout]:
    """The layouts of ``eval_set(shapes, n, seed)``, item ``i`` drawn as it is rendered."""
    import numpy as np

    return [shapes.layout(attrs, np.random.default_rng([seed, i]))
            for i, attrs in enumerate(eval_attrs(shapes, n, seed))]


def per_step_stream(seed: int, steps: Iterable[int], batch: int,
                    p_shorten: float = 0.0, p_empty: float = 0.0) -> set[shapes.Layout]:
    """Every layout of a run whose step ``s`` draws its batch from
    ``WorldSampler(shapes, seed * 1_000_003 + s, p_shorten, p_empty, split="train")``
    (``training.vq.batch_for_step``, ``training.clip.batch_for_step``)."""
    seen: set[shapes.Layout] = set()
    for step in steps:
        sampler = WorldSampler(shapes, seed=seed * TRAIN_SEED_STRIDE + step, p_shorten=p_shorten,
                               p_empty=p_empty, split="train")
        seen.update(sampler.next_layout() for _ in range(batch))
    return seen


def exact_share(layouts: list[shapes.Layout], seen: set[shapes.Layout]) -> dict[str, Any]:
    """Share of the evaluation renders whose exact pixels occur in the training stream, overall
    and for seen and held-out pairs."""
    held = [shapes.is_held_out(shapes.ShapeAttrs(lay.color, lay.shape)) for lay in layouts]
    hits = [lay in seen for lay in layouts]

    def share(mask: list[bool]) -> float | None:
        chosen = [h for h, m in zip(hits, mask, strict=True) if m]
        return round(sum(chosen) / len(chosen), 4) if chosen else None

    return {"method": "exact: training stream replayed", "renders": len(layouts),
            "distinct_training_renders": len(seen),
            "share": share([True] * len(layouts)), "share_seen_pairs": share([not h for h in held]),
            "share_held_out": share(held)}


def layouts_per_combination() -> dict[int, int]:
    """Distinct centres per radius, over the five positions (as ``shapes.place`` draws them)."""
    center = len(shapes._CENTER_OFFSETS)
    counts = {}
    for lo, hi in shapes.SIZE_RADII.values():
        for radius in range(lo, hi + 1):
            corner = (shapes.CANVAS // 2 - shapes.CORNER_MARGIN - radius + 1) ** 2
            counts[radius] = center + 4 * corner
    return counts


def layout_probability(lay: shapes.Layout) -> float:
    """Probability of ``lay`` in one training draw (uniform attributes outside the held-out
    pairs, uniform radius within the size, uniform centre within the position)."""
    if shapes.is_held_out(shapes.ShapeAttrs(lay.color, lay.shape)):
        return 0.0
    pairs = len(shapes.COLORS) * len(shapes.SHAPES) - len(shapes.HELD_OUT)
    size = next(s for s, (lo, hi) in shapes.SIZE_RADII.items() if lo <= lay.radius <= hi)
    lo, hi = shapes.SIZE_RADII[size]
    mid = shapes.CANVAS // 2
    dx, dy = lay.cx - mid, lay.cy - mid
    in_center = dx * dx + dy * dy <= shapes.CENTER_TOLERANCE**2
    centres = (len(shapes._CENTER_OFFSETS) if in_center
               else (mid - shapes.CORNER_MARGIN - lay.radius + 1) ** 2)
    return (1 / pairs / len(shapes.BACKGROUNDS) / len(shapes.SIZES) / (hi - lo + 1)
            / len(shapes.POSITIONS) / centres)


def expected_share(layouts: list[shapes.Layout], draws: int) -> dict[str, Any]:
    """Expected share of the evaluation renders that ``draws`` i.i.d. training renders include."""
    held = [shapes.is_held_out(shapes.ShapeAttrs(lay.color, lay.shape)) for lay in layouts]
    chance = [1.0 - (1.0 - layout_probability(lay)) ** draws for lay in layouts]
    seen = [c for c, h in zip(chance, held, strict=True) if not h]
    return {"method": f"expected over {draws:,} i.i.d. training draws", "renders": len(layouts),
            "share": round(sum(chance) / len(chance), 4),
            "share_seen_pairs": round(sum(seen) / len(seen), 4) if seen else None,
            "share_held_out": 0.0 if any(held) else None}


def caption_share(prompts: list[shapes.ShapeAttrs], draws: int) -> dict[str, Any]:
    """Expected share of evaluation prompts (complete attribute combinations) that ``draws``
    i.i.d. training draws include; held-out pairs never occur."""
    pairs = len(shapes.COLORS) * len(shapes.SHAPES) - len(shapes.HELD_OUT)
    p = 1 / (pairs * len(shapes.BACKGROUNDS) * len(shapes.SIZES) * len(shapes.POSITIONS))
    seen = [not shapes.is_held_out(a) for a in prompts]
    chance = 1.0 - (1.0 - p) ** draws
    return {"method": f"expected over {draws:,} i.i.d. training draws", "prompts": len(prompts),
            "share": round(chance * sum(seen) / len(prompts), 4),
            "share_seen_pairs": round(chance, 4), "share_held_out": 0.0}


# The shapes-clip run recorded no training.json; its MODEL_CARD.md records the run: the trainer's
# defaults (seed 0, batch 128, captions shortened with probability 0.5) for 3,000 steps.
CLIP_RUN = {"seed": 0, "steps": 3000, "batch": 128, "p_shorten": 0.5}


def for_model(model_id: str, n: int, seed: int = EVAL_SEED) -> dict[str, Any] | None:
    """The overlap of a shipped model's evaluation set with its training data (see above);
    None when the model folder does not record its training stream."""
    import json

    from mmstudio.config import Settings

    folder = Settings.from_env().models_dir
    vq_gans = {"shapes-vqgan": "shapes-vqvae", "shapes-vqgan-f8": "shapes-vqvae-f8"}
    if model_id in ("shapes-vqvae", "shapes-vqvae-f8", "shapes-vae", *vq_gans):
        seen: set[shapes.Layout] = set()
        runs = [vq_gans[model_id], model_id] if model_id in vq_gans else [model_id]
        for run in runs:  # a VQGAN starts from its VQ-VAE: it saw that stream too
            path = folder / run / "training.json"
            if not path.is_file():
                return None
            training = json.loads(path.read_text())
            seen |= per_step_stream(int(training["seed"]), range(int(training["steps"])),
                                    int(training["batch"]))
        result = exact_share(eval_layouts(n, seed), seen)
        result["training_runs"] = runs
        return result
    if model_id == "shapes-clip":
        seen = per_step_stream(CLIP_RUN["seed"], range(CLIP_RUN["steps"]), CLIP_RUN["batch"],
                               p_shorten=CLIP_RUN["p_shorten"])
        return exact_share(eval_layouts(n, seed), seen)
    if model_id in ("shapes-unet", "shapes-dit"):
        path = folder / model_id / "training.json"
        training = json.loads(path.read_text()) if path.is_file() else {}
        if "step" not in training or "batch" not in training:
            return None
        draws = int(training["step"]) * int(training["batch"])
        return caption_share(eval_attrs(shapes, n, seed), draws)
    return None


def sentence(overlap: dict[str, Any]) -> str:
    """The overlap in words, for a model card."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    if "prompts" in overlap:
        return (f"Overlap with training: {pct(overlap['share_seen_pairs'])} of the seen-pair "
                f"evaluation prompts (complete attribute combinations) also occur in the training "
                f"stream, {pct(overlap['share'])} of all {overlap['prompts']} "
                f"(method: {overlap['method']}; held-out pairs never occur). So the seen-pair "
                "figures measure fitting the training distribution, and the held-out figures are "
                "the measure of generalisation.")
    return (f"Overlap with training: {pct(overlap['share'])} of the {overlap['renders']} "
            f"evaluation renders occur pixel for pixel in the training stream "
            f"({pct(overlap['share_seen_pairs'])} of the seen-pair renders, "
            f"{pct(overlap['share_held_out'])} of the held-out ones; method: {overlap['method']}, "
            f"{overlap.get('distinct_training_renders', 0):,} distinct training renders of the "
            "138,620 possible outside the held-out pairs). So the seen-pair figures are largely "
            "measured on training images, and the held-out figures are the measure of "
            "generalisation.")
