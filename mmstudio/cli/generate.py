"""`python -m mmstudio generate`: text -> images with a diffusion model, optionally with its trace.

Writes ``<out>/p<prompt>_s<seed>.png`` at the model's native resolution (with ``--trace``, also
``<out>/trace/p<prompt>_s<seed>/step<k>_{xt,x0}.png``) and ``<out>/generate.json`` naming the
prompt, seed and file of every image and the settings used. Any number of prompts (x ``--n``)
run in one process, ``--batch`` images per forward pass.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmstudio.cli import note
from mmstudio.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="generate images from text, step by step")
    parser.add_argument("--model", default=None, help="catalog id (default: the denoise default)")
    parser.add_argument("--prompt", action="append", default=[], help="repeatable")
    parser.add_argument("--prompts", type=Path, help="a file with one prompt per line")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=1, help="images per prompt")
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--batch", type=int, default=32, help="images per forward pass")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trace", action="store_true", help="also write every step's x_t, x0")
    parser.add_argument("--json", action="store_true", help="print the JSON record")
    parser.set_defaults(func=run_generate)


def read_prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts:
        try:
            text = args.prompts.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read prompts from {args.prompts}: {exc}") from None
        prompts += [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise UserError("give --prompt TEXT (repeatable) or --prompts FILE; "
                        "--prompt '' generates unconditionally")
    return prompts


def run_generate(args: argparse.Namespace) -> int:
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.denoise import (
        MAX_BATCH,
        DenoiseResult,
        DenoiseSettings,
        denoise,
        denoiser_for,
    )
    from mmstudio.pipelines.trace import step_frames
    from mmstudio.worlds.media import write_png

    prompts = read_prompts(args)
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder (it is created if missing)")
    manager = ModelManager()
    model_id = args.model or manager.catalog.default_for("denoise")
    spec = manager.catalog.get(model_id)
    steps = args.steps if args.steps is not None else spec.steps or 25
    guidance = args.guidance if args.guidance is not None else spec.guidance or 0.0
    if not 1 <= args.batch <= MAX_BATCH:
        raise UserError(f"--batch must be from 1 to {MAX_BATCH}")
    if args.n < 1:
        raise UserError("--n must be at least 1")
    # Any number of prompts x n images, run --batch at a time; everything is validated before
    # anything loads.
    jobs = [(p, prompt, args.seed + k) for p, prompt in enumerate(prompts) for k in range(args.n)]
    chunks = [DenoiseSettings(tuple(j[1] for j in chunk), steps=steps, guidance=guidance, n=1,
                              seed=args.seed, scheduler=args.scheduler,
                              image_seeds=tuple(j[2] for j in chunk)).validated()
              for chunk in (jobs[b: b + args.batch] for b in range(0, len(jobs), args.batch))]
    args.out.mkdir(parents=True, exist_ok=True)
    note(manager.catalog.unknown_words_message(model_id, prompts))  # the run goes ahead

    records = []
    with denoiser_for(manager, model_id) as denoiser:
        for begin, settings in zip(range(0, len(jobs), args.batch), chunks, strict=True):
            chunk = jobs[begin: begin + args.batch]
            traced: dict[int, list] = {i: [] for i in range(len(chunk))}
            result = None
            for item in denoise(denoiser, settings, trace=args.trace):
                if isinstance(item, DenoiseResult):
                    result = item
                else:
                    for i in traced:
                        traced[i].append(step_frames(item, denoiser, image=i))
            assert result is not None
            for i, ((p, prompt, seed), image) in enumerate(zip(chunk, result.images,
                                                               strict=True)):
                name = f"p{p:03d}_s{seed}.png"
                write_png(image, args.out / name)
                record = {"file": name, "prompt": prompt, "prompt_index": p, "seed": seed}
                if args.trace:
                    folder = args.out / "trace" / name.removesuffix(".png")
                    folder.mkdir(parents=True, exist_ok=True)
                    for frame in traced[i]:
                        write_png(frame.x_t, folder / f"step{frame.index:03d}_xt.png")
                        write_png(frame.x0, folder / f"step{frame.index:03d}_x0.png")
                    record["trace"] = str(folder.relative_to(args.out))
                records.append(record)
    summary = {"model": model_id, "steps": steps, "guidance": guidance,
               "scheduler": args.scheduler, "n": args.n, "seed": args.seed,
               "resolution": int(result.images.shape[1]), "images": records}
    (args.out / "generate.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {len(records)} images to {args.out} ({model_id}, {steps} "
              f"{args.scheduler} steps, guidance {guidance:g})")
    return 0
