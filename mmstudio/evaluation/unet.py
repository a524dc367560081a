"""Measure a text-to-image model of the shapes world (``shapes-unet``, ``shapes-dit``: any model the
denoising loop runs, pixel or latent) with the shapes analyzer (WORLDS.md "Evaluation").

- adherence: share of generated images whose analysed attributes equal every attribute of the
  full caption that prompted them, over ``--n`` prompts cycling through all combinations (held-out
  colour/shape pairs included and reported apart);
- per-attribute accuracy, to see what the model gets wrong;
- diversity: for a caption that leaves position and size free, how many of the 5 positions and 2
  sizes ``--diversity-seeds`` seeds cover.

    python -m mmstudio eval shapes-unet [--n 500] [--steps 25] [--guidance G] [--write]

Exit code 0 when every target is met, 1 when any is missed (as every evaluator).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmstudio.evaluation.report import CARD_END, CARD_START, replace_card_block

TARGETS = {"adherence": 0.90, "adherence_held_out": 0.60, "positions_covered": 4,
           "sizes_covered": 2}
DIVERSITY_CAPTION = "a red circle on a black background"


def parse_args(argv: list[str], model_id: str = "shapes-unet") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m mmstudio eval {model_id}")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=None, help="default: the catalog's")
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--diversity-seeds", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write", action="store_true", help="store metrics.json in the model")
    return parser.parse_args(argv)


#: ``generate(captions, seed)`` -> (len(captions), 32, 32, 3) uint8: image i made with seed
#: ``seed + i`` (every generator the protocol measures, whatever its paradigm)
Generate = Callable[[list[str], int], np.ndarray]


def _share(values: list[bool]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def adherence_hits(generate: Generate, prompts: list[Any], seed: int, batch: int
                   ) -> dict[str, Any]:
    """The full captions of ``prompts`` (complete attributes) generated ``batch`` at a time, chunk
    ``b`` with seed ``seed + b``, and read back by the shapes analyzer."""
    from mmstudio.worlds import shapes
    from mmstudio.worlds.common import adherence, attribute_hits

    hits: dict[str, list[bool]] = {"all": [], "held_out": [], "seen": []}
    per_field: dict[str, list[bool]] = {f: [] for f in shapes.FIELDS}
    for begin in range(0, len(prompts), batch):
        chunk = prompts[begin: begin + batch]
        images = generate([shapes.caption(a) for a in chunk], seed + begin)
        for attrs, image in zip(chunk, images, strict=True):
            described = shapes.describe(image)
            ok = adherence(attrs, described)
            hits["all"].append(ok)
            hits["held_out" if shapes.is_held_out(attrs) else "seen"].append(ok)
            for field, hit in attribute_hits(attrs, described).items():
                per_field[field].append(hit)
    return {
        "samples": len(hits["all"]),
        "held_out_samples": len(hits["held_out"]),
        "adherence": _share(hits["all"]),
        "adherence_seen": _share(hits["seen"]),
        "adherence_held_out": _share(hits["held_out"]),
        "attribute_accuracy": {f: _share(v) for f, v in per_field.items()},
        # per prompt, in order: 1 = every attribute right (the prompt list is a prefix of a longer
        # one, so a shorter re-measure can be checked against the start of this)
        "hits": "".join("1" if ok else "0" for ok in hits["all"]),
    }


def diversity(generate: Generate, seeds: int, seed: int) -> dict[str, Any]:
    """For a caption that leaves position and size free: the positions and sizes ``seeds``
    samples cover."""
    from mmstudio.worlds import shapes

    described = [shapes.describe(image) for image in generate([DIVERSITY_CAPTION] * seeds, seed)]
    positions = Counter(d.position for d in described if d.position)
    sizes = Counter(d.size for d in described if d.size)
    return {"diversity_caption": DIVERSITY_CAPTION, "diversity_seeds": seeds,
            "positions_covered": len(positions), "sizes_covered": len(sizes),
            "position_counts": dict(positions), "size_counts": dict(sizes)}


def measure(generate: Generate, n: int, seed: int, batch: int, diversity_seeds: int
            ) -> dict[str, Any]:
    """The protocol: adherence over ``n`` evaluation prompts (every combination in turn,
    held-out pairs included), then diversity; with the seconds the prompts took."""
    from mmstudio.worlds import shapes
    from mmstudio.worlds.datasets import eval_attrs

    start = time.perf_counter()
    figures = adherence_hits(generate, eval_attrs(shapes, n, seed=seed + 20_240), seed, batch)
    seconds = time.perf_counter() - start
    return {**figures, **diversity(generate, diversity_seeds, seed + 1_000_000),
            "seconds": round(seconds, 1)}


def evaluate(manager: Any, model_id: str, args: argparse.Namespace) -> dict[str, Any]:
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run

    spec = manager.catalog.get(model_id)
    guidance = spec.guidance if args.guidance is None else args.guidance
    with denoiser_for(manager, model_id) as denoiser:
        def generate(captions: list[str], seed: int) -> np.ndarray:
            settings = DenoiseSettings(tuple(captions), steps=args.steps, guidance=guidance,
                                       seed=seed, scheduler=args.scheduler)
            return run(denoiser, settings).images

        figures = measure(generate, args.n, args.seed, args.batch, args.diversity_seeds)
    return {
        "model": model_id,
        "samples": figures["samples"],
        "held_out_samples": figures["held_out_samples"],
        "seed": args.seed,
        "steps": args.steps,
        "guidance": guidance,
        "scheduler": args.scheduler,
        **{k: figures[k] for k in ("adherence", "adherence_seen", "adherence_held_out",
                                   "attribute_accuracy", "hits", "diversity_caption",
                                   "diversity_seeds", "positions_covered", "sizes_covered",
                                   "position_counts", "size_counts", "seconds")},
        "targets": TARGETS,
    }


def card_table(metrics: dict[str, Any], training: dict[str, Any], settings: str | None = None
               ) -> str:
    """The measured figures as Markdown, from metrics.json (never typed by hand); ``settings``:
    the sentence saying how they were measured (default: a diffusion model's steps and
    scheduler)."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    ok = metrics["passed"]
    rows = [
        "| figure | measured | target |",
        "| --- | --- | --- |",
        f"| adherence, {metrics['samples']} full-caption prompts | {pct(metrics['adherence'])} "
        f"| >= 90% {'(met)' if ok['adherence'] else '(**missed**)'} |",
        f"| adherence, seen pairs | {pct(metrics['adherence_seen'])} | |",
        f"| adherence, held-out pairs ({metrics['held_out_samples']} prompts) | "
        f"{pct(metrics['adherence_held_out'])} | >= 60% "
        f"{'(met)' if ok['adherence_held_out'] else '(**missed**)'} |",
    ]
    rows += [f"| {field} correct | {pct(value)} | |"
             for field, value in metrics["attribute_accuracy"].items()]
    rows += [
        f"| positions covered, '{metrics['diversity_caption']}' x {metrics['diversity_seeds']} "
        f"seeds | {metrics['positions_covered']} of 5 | >= 4 "
        f"{'(met)' if ok['positions_covered'] else '(**missed**)'} |",
        f"| sizes covered, same | {metrics['sizes_covered']} of 2 | 2 "
        f"{'(met)' if ok['sizes_covered'] else '(**missed**)'} |",
    ]
    settings = settings or (
        f"Measured after {training.get('step', '?')} training steps with "
        f"{metrics['steps']} {metrics['scheduler']} steps, guidance "
        f"{metrics['guidance']}, seed {metrics['seed']} "
        f"(`python -m mmstudio eval {metrics['model']} --n {metrics['samples']} --write`).")
    overlap = metrics.get("train_overlap")
    if overlap:
        from mmstudio.evaluation.overlap import sentence

        rows += ["", sentence(overlap)]
    return "\n".join([CARD_START, settings, "", *rows, CARD_END])


def update_card(folder: Path, metrics: dict[str, Any], settings: Any = None) -> bool:
    """Replace the figures between the card's markers; ``settings(training) -> str`` words how
    they were measured (``card_table``)."""
    card = folder / "MODEL_CARD.md"
    training_path = folder / "training.json"
    if not card.is_file():
        return False
    training = json.loads(training_path.read_text()) if training_path.is_file() else {}
    table = card_table(metrics, training, settings(training) if settings else None)
    return replace_card_block(card, table, CARD_START, CARD_END)


def passed(metrics: dict[str, Any]) -> dict[str, bool]:
    return {key: metrics[key] is not None and metrics[key] >= target
            for key, target in TARGETS.items()}


def main(model_id: str, argv: list[str]) -> int:
    import torch

    from mmstudio.manager import ModelManager

    args = parse_args(argv, model_id)
    if args.threads:
        torch.set_num_threads(args.threads)
    manager = ModelManager()
    metrics = evaluate(manager, model_id, args)
    metrics["passed"] = passed(metrics)
    if args.write:
        from mmstudio.evaluation.overlap import for_model

        metrics["train_overlap"] = for_model(model_id, args.n, args.seed + 20_240)
        folder = manager.catalog.resolve(model_id)
        Path(folder, "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        if update_card(Path(folder), metrics):
            print(f"updated the figures in {Path(folder, 'MODEL_CARD.md')}")
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{model_id}: {metrics['samples']} prompts, seed {metrics['seed']}, "
              f"{metrics['steps']} {metrics['scheduler']} steps, guidance {metrics['guidance']}")
        print(f"  adherence            {metrics['adherence']:.1%} (target 90%)")
        print(f"  adherence, seen      {metrics['adherence_seen']:.1%}")
        held = metrics["adherence_held_out"]
        print(f"  adherence, held out  {held:.1%} over {metrics['held_out_samples']} "
              "(target 60%)" if held is not None else "  adherence, held out  -")
        for field, value in metrics["attribute_accuracy"].items():
            print(f"  {field:<20} {value:.1%}")
        print(f"  diversity: '{DIVERSITY_CAPTION}' x {metrics['diversity_seeds']} seeds covers "
              f"{metrics['positions_covered']}/5 positions, {metrics['sizes_covered']}/2 sizes")
        print(f"  {'all targets met' if all(metrics['passed'].values()) else 'targets missed: '}"
              + ", ".join(k for k, ok in metrics["passed"].items() if not ok))
    return 0 if all(metrics["passed"].values()) else 1  # a missed target fails the command
