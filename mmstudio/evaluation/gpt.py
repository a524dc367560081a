"""Measure ``shapes-gpt`` (the token prior) with the shapes protocol every generator shares
(``evaluation.unet.measure``: adherence over ``--n`` prompts cycling through every combination,
held-out pairs apart, per-attribute accuracy, diversity; WORLDS.md "Evaluation"), at the sampling
settings given (guidance, temperature, top-k, top-p).

    python -m mmstudio eval shapes-gpt [--n 500] [--guidance G] [--temperature T] [--top-k K]
        [--top-p P] [--model-dir DIR] [--json] [--write]

``--model-dir`` measures a folder (a run's ``runs/shapes-gpt/export``) instead of the shipped
model. Exit code 0 when every target is met, 1 when any is missed (as every evaluator).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mmstudio.errors import UserError
from mmstudio.evaluation.unet import TARGETS, measure, passed, update_card


def parse_args(argv: list[str], model_id: str = "shapes-gpt") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m mmstudio eval {model_id}")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--guidance", type=float, default=None, help="default: the catalog's")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--diversity-seeds", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="0: torch's default")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="a shapes-gpt folder to measure instead of the shipped one")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write", action="store_true", help="store metrics.json in the model")
    args = parser.parse_args(argv)
    if args.n < 1 or not 1 <= args.batch <= 64 or not 1 <= args.diversity_seeds <= 64:
        raise UserError("--n must be at least 1, --batch and --diversity-seeds from 1 to 64")
    return args


def use_folder(manager: Any, model_id: str, folder: Path) -> None:
    """Point the catalog's ``model_id`` at ``folder`` (a run's export) for this process."""
    if not (Path(folder) / "config.json").is_file():
        raise UserError(f"--model-dir {folder}: no config.json there (give a shapes-gpt folder, "
                        "e.g. runs/shapes-gpt/export)")
    spec = manager.catalog.get(model_id)
    manager.catalog.add(replace(spec, source="local", path=str(Path(folder).resolve()),
                                metrics={}))


def evaluate(manager: Any, model_id: str, args: argparse.Namespace) -> dict[str, Any]:
    from mmstudio.pipelines.token_prior import PriorSettings, prior_for

    spec = manager.catalog.get(model_id)
    guidance = spec.guidance if args.guidance is None else args.guidance
    base = PriorSettings(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         guidance=guidance).validated()
    evaluations: list[int] = []
    with prior_for(manager, model_id) as prior:
        def generate(captions: list[str], seed: int) -> np.ndarray:
            result = prior.run(replace(base, prompts=tuple(captions), seed=seed))
            evaluations.append(result.evaluations)
            return result.images

        figures = measure(generate, args.n, args.seed, args.batch, args.diversity_seeds)
    return {
        "model": model_id,
        "samples": figures["samples"],
        "held_out_samples": figures["held_out_samples"],
        "seed": args.seed,
        "guidance": guidance,
        "temperature": base.temperature,
        "top_k": base.top_k,
        "top_p": base.top_p,
        "network_evaluations": max(evaluations),  # forward passes per sample (one batch each)
        **{k: figures[k] for k in ("adherence", "adherence_seen", "adherence_held_out",
                                   "attribute_accuracy", "hits", "diversity_caption",
                                   "diversity_seeds", "positions_covered", "sizes_covered",
                                   "position_counts", "size_counts", "seconds")},
        "targets": TARGETS,
    }


def train_overlap(folder: Path, n: int, seed: int) -> dict[str, Any] | None:
    """Share of the evaluation prompts whose attribute combination the training stream drew."""
    from mmstudio.evaluation.overlap import caption_share
    from mmstudio.worlds import shapes
    from mmstudio.worlds.datasets import eval_attrs

    path = Path(folder) / "training.json"
    training = json.loads(path.read_text()) if path.is_file() else {}
    if "step" not in training or "batch" not in training:
        return None
    draws = int(training["step"]) * int(training["batch"])
    return caption_share(eval_attrs(shapes, n, seed), draws)


def settings_sentence(metrics: dict[str, Any]) -> Any:
    def words(training: dict[str, Any]) -> str:
        top_k = f"top-k {metrics['top_k']}" if metrics["top_k"] else "no top-k"
        top_p = f"top-p {metrics['top_p']:g}" if metrics["top_p"] < 1 else "no top-p"
        return (f"Measured after {training.get('step', '?')} training steps, sampling the 64 "
                f"tokens at temperature {metrics['temperature']:g}, {top_k}, {top_p}, guidance "
                f"{metrics['guidance']:g} ({metrics['network_evaluations']} transformer passes "
                f"per image, KV cache), seed {metrics['seed']} (`python -m mmstudio eval "
                f"{metrics['model']} --n {metrics['samples']} --write`).")
    return words


def main(model_id: str, argv: list[str]) -> int:
    import torch

    from mmstudio.manager import ModelManager

    args = parse_args(argv, model_id)
    if args.threads:
        torch.set_num_threads(args.threads)
    manager = ModelManager()
    if args.model_dir is not None:
        use_folder(manager, model_id, args.model_dir)
    metrics = evaluate(manager, model_id, args)
    metrics["passed"] = passed(metrics)
    if args.write:
        folder = Path(manager.catalog.resolve(model_id))
        metrics["train_overlap"] = train_overlap(folder, args.n, args.seed + 20_240)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        if update_card(folder, metrics, settings_sentence(metrics)):
            print(f"updated the figures in {folder / 'MODEL_CARD.md'}")
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        top_k = metrics["top_k"] or "off"
        print(f"{model_id}: {metrics['samples']} prompts, seed {metrics['seed']}, temperature "
              f"{metrics['temperature']:g}, top-k {top_k}, top-p {metrics['top_p']:g}, guidance "
              f"{metrics['guidance']:g}, {metrics['network_evaluations']} passes per image")
        print(f"  adherence            {metrics['adherence']:.1%} (target 90%)")
        print(f"  adherence, seen      {metrics['adherence_seen']:.1%}")
        held = metrics["adherence_held_out"]
        print(f"  adherence, held out  {held:.1%} over {metrics['held_out_samples']} "
              "(target 60%)" if held is not None else "  adherence, held out  -")
        for field, value in metrics["attribute_accuracy"].items():
            print(f"  {field:<20} {value:.1%}")
        print(f"  diversity: '{metrics['diversity_caption']}' x {metrics['diversity_seeds']} "
              f"seeds covers {metrics['positions_covered']}/5 positions, "
              f"{metrics['sizes_covered']}/2 sizes")
        print(f"  {'all targets met' if all(metrics['passed'].values()) else 'targets missed: '}"
              + ", ".join(k for k, ok in metrics["passed"].items() if not ok))
    return 0 if all(metrics["passed"].values()) else 1  # a missed target fails the command
