"""Tokens + autoregression against embeddings + diffusion, measured on the same prompts, here.

The usual table of the two paradigms of multimodal generation says: a VQ tokenizer plus a
GPT-style prior (DALL-E v1, Parti) is fast and diffusion (Stable Diffusion, DiT) is better. This
module measures that table instead of asserting it: every model writes ``n`` images for each of
the same prompts with the same seeds, the shapes analyzer (WORLDS.md) reads them back, and each
row gets its output type, network evaluations per sample, FLOPs per sample
(``torch.utils.flop_counter`` over one whole sample: text, every pass, decode), time per sample
(batched, and one alone), adherence (held-out pairs apart) and diversity.

One ``ImageGenerator`` per model hides the paradigm: a token prior (``token_prior``) or any model
the denoising loop runs (``denoise``), each at its catalog defaults.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from mmstudio.errors import UserError

MAX_PROMPTS = 64
MAX_SAMPLES = 16  # per prompt
BATCH = 32  # images per run

DEFAULT_PROMPTS = (
    "a red circle",
    "a large blue square in the top left on a gray background",
    "a small green triangle in the bottom right on a black background",
    "a white cross in the center on a navy background",
    "an orange circle in the bottom left on a darkgreen background",
    "a purple triangle",  # held out: never in any training data
    "a cyan cross on a gray background",  # held out
    "a large yellow square in the top right",  # held out
)


@dataclass
class ImageGenerator:
    """A text-to-image model as the comparison sees it."""

    model_id: str
    paradigm: str  # "tokens + autoregression" / "pixel diffusion" / "latent diffusion"
    output: str  # what the network writes
    evaluations: int  # sequential network passes per sample
    settings: dict[str, Any]
    generate: Callable[[list[str], list[int]], np.ndarray]  # captions, seeds -> images


@contextlib.contextmanager
def image_generator(manager: Any, model_id: str) -> Iterator[ImageGenerator]:
    """The model (and what it needs) borrowed from the manager until the block ends."""
    spec = manager.catalog.get(model_id)
    if spec.loader == "gpt_prior":
        from mmstudio.pipelines.token_prior import PriorSettings, prior_for

        with prior_for(manager, model_id) as prior:
            guidance = spec.guidance or 1.0

            def tokens(captions: list[str], seeds: list[int]) -> np.ndarray:
                settings = PriorSettings(tuple(captions), guidance=guidance,
                                         image_seeds=tuple(seeds))
                return prior.run(settings).images

            cells = prior.stream.image_tokens
            yield ImageGenerator(
                model_id, "tokens + autoregression",
                f"{cells} VQ tokens ({prior.grid} x {prior.grid} of {prior.stream.num_codes} "
                f"codes), one per pass; {prior.vq_id} decodes", cells,
                {"guidance": guidance, "temperature": 1.0, "top_k": 0, "top_p": 1.0}, tokens)
        return
    if "denoise" not in spec.tasks and "dit" not in spec.tasks:
        raise UserError(f"{model_id} is neither a token prior nor a text-to-image diffusion "
                        "model")
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run

    with denoiser_for(manager, model_id) as denoiser:
        steps, guidance = spec.steps or 25, spec.guidance or 1.0

        def denoise(captions: list[str], seeds: list[int]) -> np.ndarray:
            settings = DenoiseSettings(tuple(captions), steps=steps, guidance=guidance,
                                       image_seeds=tuple(seeds), scheduler="ddim")
            return run(denoiser, settings).images

        size, channels = denoiser.size, denoiser.channels
        if denoiser.latent:
            paradigm = "latent diffusion"
            output = f"{size} x {size} x {channels} latent, all of it every pass; a VAE decodes"
        else:
            paradigm = "pixel diffusion"
            output = f"{size} x {size} x {channels} pixels, all of them every pass"
        yield ImageGenerator(model_id, paradigm, output, steps,
                             {"guidance": guidance, "steps": steps, "scheduler": "ddim"}, denoise)


@dataclass
class CompareRow:
    model: str
    paradigm: str
    output: str
    evaluations_per_sample: int  # sequential passes (a guided pass carries two rows, counts once)
    gflops_per_sample: float
    seconds_per_sample: float  # batched, as the comparison ran them
    seconds_alone: float  # one sample by itself (the fastest of three)
    adherence: float | None
    adherence_held_out: float | None
    samples: int
    held_out_samples: int
    pixel_diversity: float  # mean |a - b| / 255 between two samples of one prompt
    free_coverage: float | None  # share of a left-out attribute's values the samples cover
    settings: dict[str, Any] = field(default_factory=dict)
    per_prompt: list[float] = field(default_factory=list)  # adherence of each prompt
    images: np.ndarray | None = field(default=None, repr=False)  # (P, n, H, W, 3)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("images")
        return data


@dataclass
class CompareProgress:
    model: str
    done: int  # samples written so far for this model
    total: int


def parse_prompts(prompts: Sequence[str]) -> list[Any]:
    """Each prompt as the shapes attributes it names; ``UserError`` naming a bad one."""
    from mmstudio.worlds import CaptionError, named, shapes

    prompts = [p.strip() for p in prompts if p and p.strip()]
    if not prompts:
        raise UserError("give at least one shapes caption, e.g. 'a red circle'")
    if len(prompts) > MAX_PROMPTS:
        raise UserError(f"at most {MAX_PROMPTS} prompts, not {len(prompts)}")
    parsed = []
    for i, prompt in enumerate(prompts, 1):
        try:
            attrs = shapes.parse(prompt)
        except CaptionError as exc:
            raise UserError(f"prompt {i} is not a shapes caption: {exc}") from None
        if not named(attrs):
            raise UserError(f"prompt {i} names no attribute")
        parsed.append(attrs)
    return parsed


def flops_per_sample(generator: ImageGenerator, caption: str) -> float:
    """FLOPs of one whole sample (every pass, text and decode), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        generator.generate([caption], [0])
    return counter.get_total_flops() / 1e9


def pixel_diversity(images: np.ndarray) -> float:
    """(P, n, H, W, 3): mean over prompts and pairs of samples of the mean |a - b| / 255."""
    values = []
    for group in images.astype(np.float32):
        for a, b in itertools.combinations(range(len(group)), 2):
            values.append(float(np.abs(group[a] - group[b]).mean()) / 255.0)
    return float(np.mean(values)) if values else 0.0


def free_coverage(prompts: list[Any], described: list[list[Any]]) -> float | None:
    """For each prompt and each attribute it leaves out: distinct values read in its samples over
    the most they could cover (all values, or n); the mean, None when nothing is left out."""
    from mmstudio.worlds import attrs_dict, shapes

    shares = []
    for attrs, reads in zip(prompts, described, strict=True):
        for name, value in attrs_dict(attrs).items():
            if value is not None:
                continue
            seen = {getattr(r, name) for r in reads} - {None}
            shares.append(len(seen) / min(len(shapes.VALUES[name]), len(reads)))
    return float(np.mean(shares)) if shares else None


def measure_model(manager: Any, model_id: str, prompts: Sequence[str], n: int, seed: int = 0
                  ) -> Iterator[CompareProgress | CompareRow]:
    """One row: ``n`` samples of each prompt (sample k with seed ``seed + k``), timed, read."""
    from mmstudio.worlds import adherence, shapes

    attrs = parse_prompts(prompts)
    prompts = [p.strip() for p in prompts if p and p.strip()]
    if not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"samples per prompt must be from 1 to {MAX_SAMPLES}, not {n}")
    jobs = [(p, seed + k) for p in range(len(prompts)) for k in range(n)]
    with image_generator(manager, model_id) as generator:
        generator.generate([prompts[0]], [seed])  # warm-up: first-call allocations
        images: list[np.ndarray] = []
        seconds = 0.0
        for begin in range(0, len(jobs), BATCH):
            chunk = jobs[begin: begin + BATCH]
            start = time.perf_counter()
            images.extend(generator.generate([prompts[p] for p, _ in chunk],
                                             [s for _, s in chunk]))
            seconds += time.perf_counter() - start
            yield CompareProgress(model_id, len(images), len(jobs))
        alone = float("inf")
        for _ in range(3):  # the fastest of three: one image by itself
            start = time.perf_counter()
            generator.generate([prompts[0]], [seed])
            alone = min(alone, time.perf_counter() - start)
        gflops = flops_per_sample(generator, prompts[0])
    grid = np.stack(images).reshape(len(prompts), n, *images[0].shape)
    described = [[shapes.describe(image) for image in group] for group in grid]
    hits = [[adherence(a, d) for d in reads] for a, reads in zip(attrs, described, strict=True)]
    held = [shapes.is_held_out(a) for a in attrs]
    seen_hits = [h for row, h_out in zip(hits, held, strict=True) for h in row if not h_out]
    held_hits = [h for row, h_out in zip(hits, held, strict=True) for h in row if h_out]
    all_hits = seen_hits + held_hits
    yield CompareRow(
        model_id, generator.paradigm, generator.output, generator.evaluations, gflops,
        seconds / len(jobs), alone,
        float(np.mean(all_hits)) if all_hits else None,
        float(np.mean(held_hits)) if held_hits else None,
        len(all_hits), len(held_hits), pixel_diversity(grid), free_coverage(attrs, described),
        generator.settings, [float(np.mean(row)) for row in hits], grid)


@dataclass
class CompareTable:
    prompts: list[str]
    n: int
    seed: int
    threads: int
    rows: list[CompareRow]

    def to_dict(self) -> dict[str, Any]:
        return {"prompts": self.prompts, "n": self.n, "seed": self.seed,
                "threads": self.threads, "rows": [r.to_dict() for r in self.rows],
                "findings": findings(self.rows)}


def compare(manager: Any, models: Sequence[str], prompts: Sequence[str] = DEFAULT_PROMPTS,
            n: int = 4, seed: int = 0) -> Iterator[CompareProgress | CompareRow | CompareTable]:
    """Every model on the same prompts and seeds: progress, each row as it is done, the table."""
    models = [m.strip() for m in models if m and m.strip()]
    if not models:
        raise UserError("give at least one model to compare")
    if len(set(models)) != len(models):
        raise UserError("each model once, please")
    for model_id in models:
        manager.catalog.get(model_id)  # unknown ids fail before anything runs
    parse_prompts(prompts)
    rows = []
    for model_id in models:
        for item in measure_model(manager, model_id, prompts, n, seed):
            if isinstance(item, CompareRow):
                rows.append(item)
            yield item
    yield CompareTable([p.strip() for p in prompts if p and p.strip()], n, seed,
                       torch.get_num_threads(), rows)


HEADER = ["model", "paradigm", "output", "network passes / sample", "GFLOPs / sample",
          "ms / sample (batched)", "ms alone", "adherence", "held-out adherence",
          "pixel diversity", "free-attribute coverage"]


def table_rows(rows: Sequence[CompareRow]) -> list[list[str]]:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    return [[r.model, r.paradigm, r.output, str(r.evaluations_per_sample),
             f"{r.gflops_per_sample:.2f}", f"{r.seconds_per_sample * 1000:.0f}",
             f"{r.seconds_alone * 1000:.0f}",
             f"{pct(r.adherence)} of {r.samples}",
             f"{pct(r.adherence_held_out)} of {r.held_out_samples}" if r.held_out_samples
             else "-", f"{r.pixel_diversity:.3f}", pct(r.free_coverage)] for r in rows]


def findings(rows: Sequence[CompareRow]) -> list[str]:
    """A few sentences on which rows of the usual table hold here, from the measured figures."""
    tokens = [r for r in rows if r.paradigm.startswith("tokens")]
    diffusion = [r for r in rows if "diffusion" in r.paradigm]
    if not tokens or not diffusion:
        return ["Compare a token prior with a diffusion model to test the usual table."]
    out = []
    t = tokens[0]
    for d in diffusion:
        faster = t.seconds_alone < d.seconds_alone
        out.append(
            f"Speed: {t.model} took {t.seconds_alone * 1000:.0f} ms for one image against "
            f"{d.model}'s {d.seconds_alone * 1000:.0f} ms ("
            + (f"{d.seconds_alone / max(t.seconds_alone, 1e-9):.1f}x faster: 'tokens are faster' "
               "holds here" if faster else
               f"{t.seconds_alone / max(d.seconds_alone, 1e-9):.1f}x slower: 'tokens are "
               "faster' does not hold here")
            + f"), with {t.evaluations_per_sample} sequential passes against "
            f"{d.evaluations_per_sample}, and {t.gflops_per_sample:.2f} against "
            f"{d.gflops_per_sample:.2f} GFLOPs per image.")
        if t.adherence is not None and d.adherence is not None:
            better = d.adherence > t.adherence
            out.append(
                f"Quality: adherence {d.adherence:.0%} ({d.model}) against {t.adherence:.0%} "
                f"({t.model}) on the same {t.samples} samples: 'diffusion is better' "
                + ("holds here" if better else "does not hold here") + ".")
        if t.adherence_held_out is not None and d.adherence_held_out is not None:
            out.append(
                f"Held-out colour/shape pairs (never trained): {d.adherence_held_out:.0%} for "
                f"{d.model}, {t.adherence_held_out:.0%} for {t.model}.")
    out.append(
        "Why: a token prior spends one full network pass per token, so its cost grows with the "
        "number of tokens (here 64, read with a KV cache so each pass sees one new token), and "
        "a wrong early token cannot be revised; diffusion revises the whole image at every "
        "step, and its cost grows with the number of steps times the size of what it refines.")
    return out


def samples_sheet(rows: Sequence[CompareRow], scale: int = 3, gap: int = 6) -> np.ndarray:
    """The samples side by side: one row per prompt, a block of ``n`` columns per model, each
    block headed by its model id and enlarged ``scale`` times (nearest neighbour)."""
    from PIL import Image, ImageDraw

    from mmstudio.pipelines.sound_pictures import _font

    grids = [r.images for r in rows if r.images is not None]
    if not grids:
        raise UserError("no samples to show")
    prompts, n, h, w, _ = grids[0].shape
    cell_h, cell_w = h * scale, w * scale
    block = n * cell_w + (n - 1) * 2
    font = _font(18)  # the sheet is shown scaled to fit: a label readable after halving
    top = 26
    sheet = Image.new("RGB", (len(grids) * (block + gap) - gap,
                              top + prompts * (cell_h + 2) - 2), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for m, (row, grid) in enumerate(zip(rows, grids, strict=True)):
        x0 = m * (block + gap)
        draw.text((x0 + 2, 3), row.model, fill=(40, 40, 40), font=font)
        for p in range(prompts):
            for k in range(n):
                tile = np.repeat(np.repeat(grid[p, k], scale, 0), scale, 1)
                sheet.paste(Image.fromarray(tile), (x0 + k * (cell_w + 2), top + p * (cell_h + 2)))
    return np.asarray(sheet)
