"""Measure a text-to-video model of the motion world (``motion-dit``) with the motion analyzer
(WORLDS.md "Evaluation"):

- adherence: share of generated clips whose analysed colour, shape, direction and background all
  equal the caption's, over ``--n`` prompts cycling through every combination (held-out colour /
  shape pairs included and reported apart);
- direction alone, and every attribute alone;
- consistency: does the object keep its colour and shape across the frames? Per clip, the share of
  frames whose own reading (colour, shape: the shapes analyzer on that frame) equals the clip's
  majority reading; the mean over clips, and the share of clips whose every frame agrees.

    python -m mmstudio eval motion-dit [--n 256] [--steps 25] [--guidance G] [--write]

Exit code 0 when every target is met, 1 when any is missed (as every evaluator).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmstudio.evaluation.report import CARD_END, CARD_START, finish

TARGETS = {"adherence": 0.80, "direction_accuracy": 0.90, "adherence_held_out": 0.50,
           "frame_consistency": 0.90}

#: ``generate(captions, seed)`` -> (len(captions), 16, 32, 32, 3) uint8: clip i made with seed
#: ``seed + i``
GenerateClips = Callable[[list[str], int], np.ndarray]


def parse_args(argv: list[str], model_id: str = "motion-dit") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m mmstudio eval {model_id}",
                                     description="Measure a motion-world text-to-video model.")
    parser.add_argument("--n", type=int, default=256, help="prompts (every combination in turn)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=None, help="default: the catalog's")
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="measure this exported folder instead of the shipped model")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write", action="store_true", help="store metrics.json in the model")
    args = parser.parse_args(argv)
    if args.n < 1 or args.batch < 1:
        parser.error("--n and --batch must be at least 1")
    return args


def _share(values: list[bool] | list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def frame_agreement(clip: np.ndarray, described: Any) -> float:
    """Share of frames whose own colour and shape reading equals the clip's (majority) reading;
    0 when the clip has no majority reading."""
    from mmstudio.worlds import motion, shapes

    if described.color is None or described.shape is None:
        return 0.0
    agree = 0
    for obj, geometry in motion.read_frames(clip):
        kind = shapes.classify_shape(geometry) if geometry is not None else None
        agree += obj.color == described.color and kind == described.shape
    return agree / len(clip)


def measure_clips(generate: GenerateClips, prompts: list[Any], seed: int, batch: int
                  ) -> dict[str, Any]:
    """The full captions of ``prompts`` generated ``batch`` at a time (chunk ``b`` with seed
    ``seed + b``) and read back by the motion analyzer."""
    from mmstudio.worlds import motion
    from mmstudio.worlds.common import adherence, attribute_hits

    hits: dict[str, list[bool]] = {"all": [], "held_out": [], "seen": []}
    per_field: dict[str, list[bool]] = {f: [] for f in motion.FIELDS}
    agreement: list[float] = []
    start = time.perf_counter()
    for begin in range(0, len(prompts), batch):
        chunk = prompts[begin: begin + batch]
        clips = generate([motion.caption(a) for a in chunk], seed + begin)
        for attrs, clip in zip(chunk, clips, strict=True):
            described = motion.describe(clip)
            ok = adherence(attrs, described)
            hits["all"].append(ok)
            hits["held_out" if motion.is_held_out(attrs) else "seen"].append(ok)
            for name, hit in attribute_hits(attrs, described).items():
                per_field[name].append(hit)
            agreement.append(frame_agreement(clip, described))
    accuracy = {f: _share(v) for f, v in per_field.items()}
    return {
        "samples": len(hits["all"]),
        "held_out_samples": len(hits["held_out"]),
        "adherence": _share(hits["all"]),
        "adherence_seen": _share(hits["seen"]),
        "adherence_held_out": _share(hits["held_out"]),
        "direction_accuracy": accuracy["direction"],
        "attribute_accuracy": accuracy,
        "frame_consistency": _share(agreement),
        "clips_fully_consistent": _share([a == 1.0 for a in agreement]),
        "hits": "".join("1" if ok else "0" for ok in hits["all"]),
        "seconds": round(time.perf_counter() - start, 1),
    }


def track_velocity(clip: np.ndarray) -> tuple[float, float] | None:
    """The least-squares velocity (px per frame, x and y) of the object's centre over the frames,
    read as the motion analyzer reads it; ``None`` when fewer than 4 frames show an object."""
    from mmstudio.worlds import motion

    return motion.velocity(*motion.track(motion.read_frames(clip)))


def direction_vectors() -> dict[str, tuple[float, float]]:
    """The unit velocity each direction word asks for (x right, y down, as the analyzer reads)."""
    from mmstudio.worlds import motion

    return {word: (float(dx), float(dy)) for word, (dx, dy) in motion.STEPS.items()}


def direction_probe(generate: GenerateClips, seeds: int = 4,
                    subject: str = "a red circle", background: str = "gray") -> dict[str, Any]:
    """Does the direction word move the object? The same ``seeds`` noises under each of the four
    direction words: ``direction_effect`` is the mean distance (px per frame) between the
    velocities of two direction words on the same noise (0: the word is ignored and the noise
    decides; about 1.6 when every clip moves at the world's 1 px per frame as asked), and
    ``direction_sign`` the share of clips whose velocity points closer to the asked direction than
    to any other (no speed threshold, unlike the analyzer)."""
    vectors = direction_vectors()
    velocities: dict[str, list[tuple[float, float] | None]] = {}
    for word in vectors:
        caption = f"{subject} moving {word} on a {background} background"
        velocities[word] = [track_velocity(c) for c in generate([caption] * seeds, 0)]
    gaps, right = [], []
    words = list(vectors)
    for i in range(seeds):
        for a in range(len(words)):
            va = velocities[words[a]][i]
            if va is not None:
                scores = {w: float(np.dot(va, u)) for w, u in vectors.items()}
                right.append(max(scores, key=scores.get) == words[a])
            for b in range(a + 1, len(words)):
                vb = velocities[words[b]][i]
                if va is not None and vb is not None:
                    gaps.append(float(np.hypot(va[0] - vb[0], va[1] - vb[1])))
    return {"direction_effect": round(float(np.mean(gaps)), 3) if gaps else None,
            "direction_sign": _share(right)}


def combination_coverage(training: dict[str, Any]) -> dict[str, Any] | None:
    """How likely each evaluation prompt's attribute combination is to occur in training: a
    motion caption names every attribute, so a seen-pair prompt's combination is one of the
    train split's ``combos`` equally likely ones, drawn ``steps x batch x (1 - p_empty)`` times;
    held-out pairs never. (Start position and radius are drawn apart: the clips themselves
    repeat far less.)"""
    from mmstudio.worlds import motion
    from mmstudio.worlds.datasets import combinations

    if not {"step", "batch"} <= training.keys():
        return None
    seen = [c for c in combinations(motion) if not motion.is_held_out(c)]
    draws = int(training["step"]) * int(training["batch"]) * (1 - training.get("p_empty", 0.1))
    expected = 1.0 - (1.0 - 1.0 / len(seen)) ** draws
    return {"seen_combinations": len(seen), "captioned_draws": int(draws),
            "expected_share_seen": round(expected, 4), "share_held_out": 0.0}


def use_folder(manager: Any, model_id: str, folder: Path) -> None:
    """Point the catalog's ``model_id`` at ``folder`` (a run's export) for this process."""
    from dataclasses import replace

    from mmstudio.errors import UserError

    if not (Path(folder) / "transformer" / "config.json").is_file():
        raise UserError(f"--model-dir {folder}: no transformer/config.json there (give a "
                        "motion-dit folder, e.g. runs/motion-dit/export)")
    spec = manager.catalog.get(model_id)
    manager.catalog.add(replace(spec, source="local", path=str(Path(folder).resolve()),
                                metrics={}))


def evaluate(manager: Any, model_id: str, args: argparse.Namespace) -> dict[str, Any]:
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run
    from mmstudio.worlds import motion
    from mmstudio.worlds.datasets import eval_attrs

    spec = manager.catalog.get(model_id)
    guidance = spec.guidance if args.guidance is None else args.guidance
    with denoiser_for(manager, model_id) as denoiser:
        def generate(captions: list[str], seed: int) -> np.ndarray:
            settings = DenoiseSettings(tuple(captions), steps=args.steps, guidance=guidance,
                                       seed=seed, scheduler=args.scheduler)
            return run(denoiser, settings).images

        figures = measure_clips(generate, eval_attrs(motion, args.n, seed=args.seed + 20_240),
                                args.seed, args.batch)
    return {"model": model_id, "seed": args.seed, "steps": args.steps, "guidance": guidance,
            "scheduler": args.scheduler, **figures, "targets": TARGETS}


def card_table(metrics: dict[str, Any]) -> str:
    """The measured figures as Markdown, from the metrics (never typed by hand)."""
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    ok = metrics["passed"]

    def verdict(name: str) -> str:
        return f">= {TARGETS[name]:.0%} {'(met)' if ok[name] else '(**missed**)'}"

    rows = [
        "| figure | measured | target |",
        "| --- | --- | --- |",
        f"| adherence (colour, shape, direction, background all right), {metrics['samples']} "
        f"prompts | {pct(metrics['adherence'])} | {verdict('adherence')} |",
        f"| direction right | {pct(metrics['direction_accuracy'])} | "
        f"{verdict('direction_accuracy')} |",
        f"| adherence, seen pairs | {pct(metrics['adherence_seen'])} | |",
        f"| adherence, held-out pairs ({metrics['held_out_samples']} prompts) | "
        f"{pct(metrics['adherence_held_out'])} | {verdict('adherence_held_out')} |",
        f"| frames agreeing with the clip's colour and shape (mean) | "
        f"{pct(metrics['frame_consistency'])} | {verdict('frame_consistency')} |",
        f"| clips whose every frame agrees | {pct(metrics['clips_fully_consistent'])} | |",
    ]
    rows += [f"| {name} right | {pct(value)} | |"
             for name, value in metrics["attribute_accuracy"].items()]
    coverage = metrics.get("train_coverage")
    if coverage:
        rows += ["", f"Every prompt names all four attributes. Training drew "
                 f"{coverage['captioned_draws']:,} captioned clips over the "
                 f"{coverage['seen_combinations']} seen combinations, so a seen-pair prompt's "
                 f"combination occurs in training with probability "
                 f"{coverage['expected_share_seen']:.1%} (start and radius vary); held-out "
                 "pairs never do: they are the generalisation measure."]
    settings = (f"Measured with {metrics['steps']} {metrics['scheduler']} steps, guidance "
                f"{metrics['guidance']}, seed {metrics['seed']}, the motion analyzer of WORLDS.md "
                f"(`python -m mmstudio eval {metrics['model']} --n {metrics['samples']} "
                "--write`).")
    return "\n".join([CARD_START, settings, "", *rows, CARD_END])


def main(model_id: str, argv: list[str]) -> int:
    import torch

    from mmstudio.manager import ModelManager

    args = parse_args(argv, model_id)
    if args.threads:
        torch.set_num_threads(args.threads)
    manager = ModelManager()
    if args.model_dir is not None:
        use_folder(manager, model_id, args.model_dir)
    folder = Path(manager.catalog.resolve(model_id))
    metrics = evaluate(manager, model_id, args)
    training_path = folder / "training.json"
    training = json.loads(training_path.read_text()) if training_path.is_file() else {}
    metrics["training_step"] = training.get("step")
    metrics["train_coverage"] = combination_coverage(training)
    return finish(metrics, TARGETS, folder, card_table, args.write, args.json)
