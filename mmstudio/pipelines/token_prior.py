"""Text -> image tokens -> image: a DALL-E v1 style prior over a VQ model's tokens.

A causal transformer (``shapes-gpt``: transformers' ``GPT2LMHeadModel``) reads the caption's
tokens and writes the ``grid`` x ``grid`` codes of a VQ model (``shapes-vqvae``) one at a time in
raster order (``token_stream``: the layout; ``token_sampler``: the loop, with KV cache, guidance,
temperature / top-k / top-p and forcing); the VQ model's decoder turns the finished grid into the
image (Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation"; the VQ after Esser et al. 2021).

A partial grid can be looked at too (``partial_images``): the decoder needs every cell, so the
cells not written yet are given the first cell's code (almost always background) and then covered
with a hatch, so what shows is the decoder's reading of the written cells, and where nothing is
written yet.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstudio.errors import UserError
from mmstudio.pipelines.token_sampler import (
    SamplingSettings,
    TokenResult,
    TokenStep,
    sample_tokens,
)
from mmstudio.pipelines.token_stream import ImageTokenStream

MAX_PROMPT_CHARS = 1000
MAX_BATCH = 64
HATCH = (np.array([70, 70, 70], np.uint8), np.array([150, 150, 150], np.uint8))


@dataclass(frozen=True)
class PriorSettings:
    """A generation request; ``n`` images per prompt, image k of prompt p with seed
    ``seed + p * n + k`` (or ``image_seeds``), as ``DenoiseSettings``."""

    prompts: tuple[str, ...] = ("",)
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    guidance: float = 1.0
    seed: int = 0
    n: int = 1
    image_seeds: tuple[int, ...] = ()

    def validated(self) -> PriorSettings:
        if not self.prompts:
            raise UserError("give at least one prompt (an empty prompt means unconditional)")
        for prompt in self.prompts:
            if not isinstance(prompt, str):
                raise UserError("prompts must be text")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise UserError(f"a prompt is {len(prompt):,} characters long; at most "
                                f"{MAX_PROMPT_CHARS:,} are accepted")
        sampling = self.sampling.validated()
        for name, value in (("seed", self.seed), ("n", self.n)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) \
                    or value != int(value):
                raise UserError(f"{name} must be a whole number, not {value!r}")
        if not 0 <= int(self.seed) < 2**63:
            raise UserError(f"seed must be a whole number from 0 to 2^63 - 1, not {self.seed}")
        if not 1 <= int(self.n) * len(self.prompts) <= MAX_BATCH:
            raise UserError(f"at most {MAX_BATCH} images per run (prompts x n), not "
                            f"{len(self.prompts)} x {self.n}")
        if self.image_seeds and (len(self.image_seeds) != len(self.prompts) * int(self.n)
                                 or any(int(s) < 0 for s in self.image_seeds)):
            raise UserError("give one seed (0 or more) per image")
        return replace(self, temperature=sampling.temperature, top_k=sampling.top_k,
                       top_p=sampling.top_p, guidance=sampling.guidance, seed=int(self.seed),
                       n=int(self.n))

    @property
    def sampling(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_k, self.top_p, self.guidance)

    @property
    def seeds(self) -> list[int]:
        if self.image_seeds:
            return [int(s) for s in self.image_seeds]
        return [self.seed + i for i in range(len(self.prompts) * self.n)]

    @property
    def batch_prompts(self) -> list[str]:
        return [p for p in self.prompts for _ in range(self.n)]


@dataclass
class PriorResult:
    images: np.ndarray  # (B, H, W, 3) uint8
    codes: np.ndarray  # (B, grid, grid) int64
    settings: PriorSettings
    seconds: float  # sampling and decoding
    evaluations: int  # forward passes of the transformer per sample (a guided pass counts once)
    prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


class ImagePrior:
    """A token prior over a VQ model's grid, as the studio drives it."""

    def __init__(self, gpt: Any, stream: ImageTokenStream, vq: Any, model_id: str = "",
                 vq_id: str = "") -> None:
        self.gpt, self.stream, self.vq = gpt, stream, vq
        self.model_id, self.vq_id = model_id, vq_id
        codes = int(vq.quantize.embedding.weight.shape[0])
        if codes != stream.num_codes:
            raise UserError(f"{model_id or 'the prior'} writes {stream.num_codes} codes but "
                            f"{vq_id or 'its VQ model'} has {codes}")
        if int(gpt.config.vocab_size) < stream.vocab_size:
            raise UserError(f"{model_id}: the transformer's vocabulary is smaller than its "
                            "token stream")

    @property
    def grid(self) -> int:
        return self.stream.grid

    @property
    def cell(self) -> int:
        """Pixels per token side."""
        return 2 ** (len(self.vq.config.block_out_channels) - 1)

    def prefixes(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P) conditional and unconditional prefixes."""
        return self.stream.prefix(prompts), self.stream.prefix([""] * len(prompts))

    def generate(self, settings: PriorSettings,
                 forced: Sequence[Mapping[int, int]] | Mapping[int, int] | None = None,
                 cache: bool = True, top: int = 5) -> Iterator[TokenStep | PriorResult]:
        """Yield a ``TokenStep`` per image token (raster order), then the ``PriorResult``."""
        settings = settings.validated()
        start = time.perf_counter()
        prompts = settings.batch_prompts
        cond, uncond = self.prefixes(prompts)
        result: TokenResult | None = None
        for item in sample_tokens(self.gpt, cond, self.stream.image_tokens, settings.sampling,
                                  settings.seeds, uncond_prefix=uncond,
                                  allowed=self.stream.num_codes, forced=forced, cache=cache,
                                  top=top):
            if isinstance(item, TokenResult):
                result = item
            else:
                yield item
        assert result is not None
        codes = result.tokens.reshape(-1, self.grid, self.grid).numpy().astype(np.int64)
        images = self.decode(codes)
        yield PriorResult(images, codes, settings, time.perf_counter() - start,
                          result.evaluations, prompts, settings.seeds)

    def run(self, settings: PriorSettings, **kwargs: Any) -> PriorResult:
        *_, result = self.generate(settings, **kwargs)
        assert isinstance(result, PriorResult)
        return result

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(B, grid, grid) codes -> (B, H, W, 3) uint8."""
        from mmstudio.pipelines.tokenize import decode_indices

        return decode_indices(self.vq, codes)

    def partial_images(self, tokens: np.ndarray, filled: int) -> np.ndarray:
        """(B, k >= filled) tokens in raster order, of which the first ``filled`` are written ->
        (B, H, W, 3): the decoded grid with the unwritten cells hatched."""
        tokens = np.asarray(tokens, np.int64).reshape(len(tokens), -1)
        batch, cells = tokens.shape[0], self.stream.image_tokens
        if not 0 <= filled <= min(cells, tokens.shape[1]):
            raise UserError(f"filled must be from 0 to {min(cells, tokens.shape[1])}")
        grid = np.zeros((batch, cells), np.int64)
        if filled:
            grid[:, :filled] = tokens[:, :filled]
            grid[:, filled:] = tokens[:, :1]
        images = self.decode(grid.reshape(batch, self.grid, self.grid))
        return hatch_unfilled(images, filled, self.grid, self.cell)


    def filling_frames(self, codes: np.ndarray) -> np.ndarray:
        """One image's grid (grid, grid) as it fills: frame k shows the first k + 1 tokens
        written and the rest hatched: (grid**2, H, W, 3), decoded in one batch."""
        flat = np.asarray(codes, np.int64).reshape(-1)
        cells = self.stream.image_tokens
        grids = np.repeat(flat[None], cells, axis=0)
        for k in range(cells):
            grids[k, k + 1:] = flat[0]
        images = self.decode(grids.reshape(cells, self.grid, self.grid))
        return np.stack([hatch_unfilled(images[k: k + 1], k + 1, self.grid, self.cell)[0]
                         for k in range(cells)])


def hatch_unfilled(images: np.ndarray, filled: int, grid: int, cell: int) -> np.ndarray:
    """Cover the cells at raster positions ``filled`` and after with a grey checker of pixels."""
    out = np.array(images, copy=True)
    yy, xx = np.mgrid[0:cell, 0:cell]
    checker = np.where(((yy + xx) % 2 == 0)[..., None], HATCH[0], HATCH[1])  # (cell, cell, 3)
    for position in range(filled, grid * grid):
        row, col = divmod(position, grid)
        out[:, row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] = checker
    return out


@contextlib.contextmanager
def prior_for(manager: Any, model_id: str) -> Iterator[ImagePrior]:
    """The prior of a catalog model with its VQ model, both borrowed until the block ends."""
    with contextlib.ExitStack() as borrowed:
        model = borrowed.enter_context(manager.use(model_id))
        if model.spec.loader != "gpt_prior":
            raise UserError(f"{model_id} is not a token prior (its loader is "
                            f"'{model.spec.loader}')")
        vq_id = model["vq_id"]
        if not vq_id:
            raise UserError(f"{model_id} names no VQ model (vq.json)")
        vq = borrowed.enter_context(manager.use(vq_id))["vq"]
        yield ImagePrior(model["gpt"], model["stream"], vq, model_id, vq_id)


def read_vq_id(folder: Path) -> str | None:
    path = Path(folder) / "vq.json"
    return json.loads(path.read_text())["model_id"] if path.is_file() else None
