"""`python -m mmstudio generate`: text -> images with a diffusion model or a token prior, optionally
with its trace.

Writes ``<out>/p<prompt>_s<seed>.png`` at the model's native resolution (with ``--trace``, also
``<out>/trace/p<prompt>_s<seed>/step<k>_{xt,x0}.png``; for a token prior such as ``shapes-gpt``,
``token<k>.png``: the grid decoded after token k, the cells not yet written hatched) and
``<out>/generate.json`` naming the prompt, seed and file of every image and the settings used. A
video model (``motion-dit``) writes per clip ``p<prompt>_s<seed>.mp4`` and ``.npy`` (the frames,
(16, 32, 32, 3) uint8) with the same stem (``--trace``: each step's x_t and x0 as filmstrips). Any
number of prompts (x ``--n``) run in one process, ``--batch`` images per forward pass. A token
prior samples with ``--temperature``, ``--top-k`` and ``--top-p``; ``--steps`` and
``--scheduler`` are for diffusion models (a prior writes one token per step).
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
    parser.add_argument("--scheduler", default=None, help="diffusion models (default ddim)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="token priors (default 1; 0 = greedy)")
    parser.add_argument("--top-k", type=int, default=None, help="token priors (default 0: all)")
    parser.add_argument("--top-p", type=float, default=None, help="token priors (default 1: all)")
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
    if spec.loader == "gpt_prior":
        return run_generate_tokens(args, manager, model_id, prompts)
    for name in ("temperature", "top_k", "top_p"):
        if getattr(args, name) is not None:
            raise UserError(f"--{name.replace('_', '-')} is for token priors (shapes-gpt); "
                            f"{model_id} is a diffusion model")
    args.scheduler = args.scheduler or "ddim"
    steps = args.steps if args.steps is not None else spec.steps or 25
    guidance = args.guidance if args.guidance is not None else spec.guidance or 0.0
    # Any number of prompts x n images, run --batch at a time; everything is validated before
    # anything loads.
    jobs = job_chunks(args, prompts, MAX_BATCH)
    chunks = [DenoiseSettings(tuple(j[1] for j in chunk), steps=steps, guidance=guidance, n=1,
                              seed=args.seed, scheduler=args.scheduler,
                              image_seeds=tuple(j[2] for j in chunk)).validated()
              for chunk in jobs]
    args.out.mkdir(parents=True, exist_ok=True)
    note(manager.catalog.unknown_words_message(model_id, prompts))  # the run goes ahead

    records = []
    with denoiser_for(manager, model_id) as denoiser:
        if len(denoiser.sample_shape) == 4:  # (C, F, h, w): a video model
            return run_generate_clips(args, denoiser, model_id, jobs, chunks, steps, guidance)
        for chunk, settings in zip(jobs, chunks, strict=True):
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
    return finish(args, summary, f"wrote {len(records)} images to {args.out} ({model_id}, "
                  f"{steps} {args.scheduler} steps, guidance {guidance:g})")


def run_generate_clips(args: argparse.Namespace, denoiser, model_id: str, jobs: list,
                       chunks: list, steps: int, guidance: float) -> int:
    """``generate`` for a video model: per clip an MP4 and the raw frames (.npy), same stem."""
    import numpy as np

    from mmstudio.pipelines.denoise import DenoiseResult, denoise
    from mmstudio.pipelines.video import FPS, filmstrip, to_frames
    from mmstudio.worlds.media import write_mp4, write_png

    records = []
    for chunk, settings in zip(jobs, chunks, strict=True):
        traced: dict[int, list] = {i: [] for i in range(len(chunk))}
        result = None
        for item in denoise(denoiser, settings, trace=args.trace):
            if isinstance(item, DenoiseResult):
                result = item
                continue
            x_t, x0 = denoiser.to_rgb(item.x_t), denoiser.to_rgb(item.x0_pred)
            for i in traced:
                traced[i].append((item.index, to_frames(x_t[i]), to_frames(x0[i])))
        assert result is not None
        for i, ((p, prompt, seed), clip) in enumerate(zip(chunk, result.images, strict=True)):
            stem = f"p{p:03d}_s{seed}"
            write_mp4(clip, args.out / f"{stem}.mp4", fps=FPS)
            np.save(args.out / f"{stem}.npy", clip)
            record = {"file": f"{stem}.mp4", "frames": f"{stem}.npy", "prompt": prompt,
                      "prompt_index": p, "seed": seed}
            if args.trace:
                folder = args.out / "trace" / stem
                folder.mkdir(parents=True, exist_ok=True)
                for index, x_t, x0 in traced[i]:
                    write_png(filmstrip(x_t, scale=1), folder / f"step{index:03d}_xt.png")
                    write_png(filmstrip(x0, scale=1), folder / f"step{index:03d}_x0.png")
                record["trace"] = str(folder.relative_to(args.out))
            records.append(record)
    frames, height = int(result.images.shape[1]), int(result.images.shape[2])
    summary = {"model": model_id, "steps": steps, "guidance": guidance,
               "scheduler": args.scheduler, "n": args.n, "seed": args.seed,
               "resolution": height, "frames": frames, "fps": FPS, "clips": records}
    return finish(args, summary, f"wrote {len(records)} clips of {frames} frames to {args.out} "
                  f"({model_id}, {steps} {args.scheduler} steps, guidance {guidance:g})")


def job_chunks(args: argparse.Namespace, prompts: list[str], max_batch: int
               ) -> list[list[tuple[int, str, int]]]:
    """Every (prompt index, prompt, seed) of the run (prompts x ``--n``, seeds counting up from
    ``--seed``), in chunks of ``--batch``: a command-line batch of any size is chunked, not
    refused."""
    if not 1 <= args.batch <= max_batch:
        raise UserError(f"--batch must be from 1 to {max_batch}")
    if args.n < 1:
        raise UserError("--n must be at least 1")
    jobs = [(p, prompt, args.seed + k) for p, prompt in enumerate(prompts) for k in range(args.n)]
    return [jobs[b: b + args.batch] for b in range(0, len(jobs), args.batch)]


def finish(args: argparse.Namespace, summary: dict, message: str) -> int:
    """Write ``generate.json``; print it (``--json``) or ``message``."""
    (args.out / "generate.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2) if args.json else message)
    return 0


def run_generate_tokens(args: argparse.Namespace, manager, model_id: str,
                        prompts: list[str]) -> int:
    """``generate`` for a token prior: the same files and generate.json, one token per step."""
    from mmstudio.pipelines.token_prior import MAX_BATCH, PriorSettings, prior_for
    from mmstudio.worlds.media import write_png

    for name in ("steps", "scheduler"):
        if getattr(args, name) is not None:
            raise UserError(f"--{name} is for diffusion models; {model_id} is a token prior "
                            "that writes its image one token per step (use --temperature, "
                            "--top-k, --top-p)")
    spec = manager.catalog.get(model_id)
    guidance = args.guidance if args.guidance is not None else spec.guidance or 1.0
    jobs = job_chunks(args, prompts, MAX_BATCH)
    chunks = [PriorSettings(tuple(j[1] for j in chunk), guidance=guidance, seed=args.seed,
                            temperature=1.0 if args.temperature is None else args.temperature,
                            top_k=args.top_k or 0,
                            top_p=1.0 if args.top_p is None else args.top_p,
                            image_seeds=tuple(j[2] for j in chunk)).validated()
              for chunk in jobs]
    args.out.mkdir(parents=True, exist_ok=True)
    note(manager.catalog.unknown_words_message(model_id, prompts))  # the run goes ahead

    records = []
    with prior_for(manager, model_id) as prior:
        for chunk, settings in zip(jobs, chunks, strict=True):
            result = prior.run(settings)
            for i, ((p, prompt, seed), image) in enumerate(zip(chunk, result.images,
                                                               strict=True)):
                name = f"p{p:03d}_s{seed}.png"
                write_png(image, args.out / name)
                record = {"file": name, "prompt": prompt, "prompt_index": p, "seed": seed,
                          "tokens": result.codes[i].tolist()}
                if args.trace:
                    folder = args.out / "trace" / name.removesuffix(".png")
                    folder.mkdir(parents=True, exist_ok=True)
                    for k, frame in enumerate(prior.filling_frames(result.codes[i])):
                        write_png(frame, folder / f"token{k:03d}.png")
                    record["trace"] = str(folder.relative_to(args.out))
                records.append(record)
    first = chunks[0]
    summary = {"model": model_id, "steps": result.evaluations, "guidance": guidance,
               "scheduler": None, "temperature": first.temperature, "top_k": first.top_k,
               "top_p": first.top_p, "n": args.n, "seed": args.seed,
               "resolution": int(result.images.shape[1]), "images": records}
    return finish(args, summary, f"wrote {len(records)} images to {args.out} ({model_id}, "
                  f"{result.evaluations} tokens one at a time, temperature "
                  f"{first.temperature:g}, guidance {guidance:g})")
