"""`python -m mmstudio attention --model shapes-dit --prompt TEXT --step K --out DIR [--json]`:
a Diffusion Transformer's attention at one step of a run, as PNG heatmaps plus their numbers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mmstudio.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attention", help="a DiT's self- and cross-attention maps at one step (PNGs + JSON)")
    parser.add_argument("--model", default="shapes-dit", help="a catalog model with task 'dit'")
    parser.add_argument("--prompt", required=True,
                        help="the prompt (a class id or name for class-conditional DiTs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="default: the catalog's")
    parser.add_argument("--guidance", type=float, default=None, help="default: the catalog's")
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--step", type=int, default=None,
                        help="which step to show, 1 to STEPS (default: the last)")
    parser.add_argument("--layer", type=int, default=None,
                        help="transformer block, from 0 (default: the mean over blocks)")
    parser.add_argument("--head", type=int, default=None, help="default: the mean over heads")
    parser.add_argument("--patch", type=int, default=None,
                        help="query patch for self-attention (default: the centre patch)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--json", action="store_true", help="print the maps' numbers as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, to_uint8
    from mmstudio.pipelines.dit import capture_attention, heatmap_over

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder")
    manager = ModelManager()
    spec = manager.catalog.get(args.model)
    if "dit" not in spec.tasks:
        raise UserError(f"{args.model} is not a Diffusion Transformer (tasks: "
                        f"{', '.join(spec.tasks)}); try shapes-dit")
    steps = args.steps or spec.steps or 25
    step = steps if args.step is None else args.step
    if not 1 <= step <= steps:
        raise UserError(f"--step {step} is out of range: give 1 to {steps}")
    settings = DenoiseSettings((args.prompt,), steps=steps, seed=args.seed,
                               guidance=spec.guidance if args.guidance is None else args.guidance,
                               scheduler=args.scheduler).validated()
    from mmstudio.cli import note

    note(manager.catalog.unknown_words_message(args.model, args.prompt))
    with denoiser_for(manager, args.model) as denoiser:
        trace = capture_attention(denoiser, settings, {step - 1})
        image = to_uint8(denoiser.to_rgb(trace.steps[step - 1].x0_pred[:1]))[0]
    rows, cols = trace.grid
    patch = (rows // 2) * cols + cols // 2 if args.patch is None else args.patch
    layers = range(trace.layers) if args.layer is None else [args.layer]
    import numpy as np

    self_map = np.mean([trace.self_map(step - 1, i, patch, args.head) for i in layers], axis=0)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {"image": args.out / "x0.png", "self": args.out / f"self-patch{patch}.png"}
    Image.fromarray(image).save(files["image"])
    Image.fromarray(heatmap_over(image, self_map, marker=patch)).save(files["self"])
    report: dict[str, Any] = {
        "model": args.model, "prompt": args.prompt, "seed": args.seed, "steps": steps,
        "step": step, "layer": args.layer, "head": args.head, "patch": patch,
        "grid": [rows, cols], "self_attention": np.round(self_map, 5).tolist(),
        "cross_attention": {},
    }
    for index, word in enumerate(trace.words):
        cross = trace.cross_map(step - 1, args.layer, index, args.head)
        name = f"cross-{index:02d}-{_safe(word.text)}.png"
        Image.fromarray(heatmap_over(image, cross)).save(args.out / name)
        files[f"cross:{index}:{word.text}"] = args.out / name
        report["cross_attention"][f"{index}:{word.text}"] = {
            "token_positions": word.positions, "map": np.round(cross, 5).tolist()}
    report["files"] = {k: str(v) for k, v in files.items()}
    (args.out / "attention.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        print(json.dumps(report))
    else:
        print(f"wrote {len(files)} PNGs and attention.json to {args.out} (step {step} of "
              f"{steps}, {len(trace.words)} words, {rows} x {cols} patches)")
    return 0


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text)[:24] or "word"
