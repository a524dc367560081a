"""The token sampler: one autoregressive loop for every token prior, one token per step.

A causal transformer (any transformers ``*ForCausalLM``: GPT-2 here) continues a prefix one token
at a time. What it sees and what its tokens mean is the prior's business (``token_prior``: a
caption, then image codes); the loop does the same for all:

- **KV cache** (as every transformer decoder does it: the keys and values of the tokens already
  read are kept, so a step runs the network on one new token); ``cache=False`` runs the whole
  sequence again at every step, which must give the same tokens (a test checks it);
- **classifier-free guidance** (Ho & Salimans 2022; for token priors as in Parti, Yu et al. 2022,
  and Make-A-Scene, Gafni et al. 2022): the conditional and the unconditional prefix run as one
  batch, and the logits mix as ``u + g (c - u)``; a guidance of 1 or less turns it off;
- **temperature, top-k** (Fan et al. 2018) **and top-p / nucleus** (Holtzman et al. 2020)
  filtering, in that order, of the guided logits;
- **forcing**: a token given for a position is taken instead of a sampled one, and the rest goes
  on from it.

Each sample has its own generator and draws one uniform number per position, forced or not, and
picks its token by inverse CDF over the filtered distribution. So a sample does not depend on its
batch, a run is a pure function of its seed, and forcing position i to the token it would have
drawn anyway changes nothing, while forcing another token changes only what comes after i.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from mmstudio.checks import finite_number
from mmstudio.errors import UserError

MAX_TEMPERATURE = 5.0
MAX_TOP_K = 100_000
MAX_GUIDANCE = 30.0


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0  # 0 = greedy (the most probable token)
    top_k: int = 0  # keep the k most probable tokens; 0 = all
    top_p: float = 1.0  # keep the smallest set whose probability reaches p; 1 = all
    guidance: float = 1.0  # classifier-free guidance scale; 1 or less = off

    def validated(self) -> SamplingSettings:
        """The settings, or a ``UserError`` naming the one out of range and what is allowed."""
        temperature = finite_number(self.temperature, "temperature")
        if not 0.0 <= temperature <= MAX_TEMPERATURE:
            raise UserError(f"temperature must be between 0 (greedy) and {MAX_TEMPERATURE:g}, "
                            f"not {self.temperature:g}")
        top_k = finite_number(self.top_k, "top-k")
        if top_k != int(top_k) or not 0 <= top_k <= MAX_TOP_K:
            raise UserError(f"top-k must be a whole number from 0 (all tokens) to {MAX_TOP_K:,}, "
                            f"not {self.top_k}")
        top_p = finite_number(self.top_p, "top-p")
        if not 0.0 < top_p <= 1.0:
            raise UserError(f"top-p must be above 0 and at most 1 (1 keeps every token), "
                            f"not {self.top_p:g}")
        guidance = finite_number(self.guidance, "guidance")
        if not 0.0 <= guidance <= MAX_GUIDANCE:
            raise UserError(f"guidance must be between 0 and {MAX_GUIDANCE:g} (1 or less turns "
                            f"it off), not {self.guidance:g}")
        return replace(self, temperature=float(temperature), top_k=int(top_k),
                       top_p=float(top_p), guidance=float(guidance))

    @property
    def guided(self) -> bool:
        return self.guidance > 1.0


@dataclass
class TokenStep:
    """One position of a run: what was taken and what the model offered. CPU tensors."""

    index: int  # position among the sampled tokens, 0-based
    total: int
    tokens: torch.Tensor  # (B,) the token taken
    forced: torch.Tensor  # (B,) bool: given by the caller rather than drawn
    candidates: torch.Tensor  # (B, K) the most probable tokens of the sampling distribution
    probabilities: torch.Tensor  # (B, K) their probabilities (after guidance and filtering)
    chosen_probability: torch.Tensor  # (B,) the taken token's probability there


@dataclass
class TokenResult:
    tokens: torch.Tensor  # (B, n) int64 on the CPU
    evaluations: int  # forward passes of the network (a guided pass counts once: one batch)
    seconds: float


def sampling_distribution(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """(B, V) logits -> (B, V) probabilities after temperature, top-k and top-p."""
    logits = logits.float()
    if settings.temperature == 0.0:  # greedy: all mass on the first most probable token
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    logits = logits / settings.temperature
    if 0 < settings.top_k < logits.shape[-1]:
        kth = torch.topk(logits, settings.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    probs = torch.softmax(logits, dim=-1)
    if settings.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the more probable tokens
        drop = before >= settings.top_p  # the most probable token always stays
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def draw(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: (B, V) probabilities, (B,) numbers in (0, 1] -> (B,) tokens.
    A token of probability zero is never drawn."""
    cdf = probs.cumsum(-1)  # (B, V)
    target = uniform.to(cdf) * cdf[:, -1]
    index = (cdf < target[:, None]).sum(-1)
    return index.clamp(max=probs.shape[-1] - 1)


def _forced_table(forced: Sequence[Mapping[int, int]] | Mapping[int, int] | None, batch: int,
                  n: int, allowed: int) -> list[dict[int, int]]:
    if forced is None:
        return [{} for _ in range(batch)]
    table = [dict(forced)] * batch if isinstance(forced, Mapping) else [dict(f) for f in forced]
    if len(table) != batch:
        raise UserError(f"give forced tokens for each of the {batch} samples, not {len(table)}")
    for row in table:
        for position, token in row.items():
            if not isinstance(position, int) or not 0 <= position < n:
                raise UserError(f"a forced position must be from 0 to {n - 1}, not {position!r}")
            if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < allowed:
                raise UserError(f"a forced token must be from 0 to {allowed - 1}, not {token!r}")
    return table


@torch.inference_mode()
def sample_tokens(
    model: Any,
    prefix: torch.Tensor,
    n: int,
    settings: SamplingSettings,
    seeds: Sequence[int],
    *,
    uncond_prefix: torch.Tensor | None = None,
    allowed: int | None = None,
    forced: Sequence[Mapping[int, int]] | Mapping[int, int] | None = None,
    cache: bool = True,
    top: int = 5,
) -> Iterator[TokenStep | TokenResult]:
    """Continue each row of ``prefix`` (B, P) by ``n`` tokens; yield a ``TokenStep`` per
    position, then the ``TokenResult``.

    ``uncond_prefix`` (B, P) is what guidance mixes against (the same length as ``prefix``);
    ``allowed``: only ids below it may be drawn (e.g. the image codes of a stream); ``forced``:
    {position: token} for all samples, or one such mapping per sample."""
    settings = settings.validated()
    start = time.perf_counter()
    batch = prefix.shape[0]
    if len(seeds) != batch:
        raise UserError(f"give one seed per sample ({batch}), not {len(seeds)}")
    vocab = int(model.config.vocab_size)
    allowed = vocab if allowed is None else int(allowed)
    table = _forced_table(forced, batch, n, allowed)
    guided = settings.guided and uncond_prefix is not None
    device = next(model.parameters()).device
    inputs = torch.cat([prefix, uncond_prefix]) if guided else prefix
    sequence = inputs.to(device)
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    output = model(input_ids=sequence, use_cache=cache)
    evaluations = 1
    taken: list[torch.Tensor] = []
    for index in range(n):
        logits = output.logits[:, -1].float()  # (B or 2B, V)
        if guided:
            cond, uncond = logits.chunk(2)
            logits = uncond + settings.guidance * (cond - uncond)
        if allowed < vocab:
            logits[:, allowed:] = -math.inf
        probs = sampling_distribution(logits, settings).cpu()  # (B, V)
        uniform = 1.0 - torch.stack([torch.rand((), generator=g) for g in generators])  # (0, 1]
        tokens = draw(probs, uniform)
        is_forced = torch.zeros(batch, dtype=torch.bool)
        for row, given in enumerate(table):
            if index in given:
                tokens[row], is_forced[row] = given[index], True
        k = min(top, allowed)
        best = torch.topk(probs, k, dim=-1)
        yield TokenStep(index, n, tokens.clone(), is_forced, best.indices, best.values,
                        probs.gather(1, tokens[:, None])[:, 0])
        taken.append(tokens)
        if index == n - 1:
            break
        step = tokens[:, None].to(device)  # (B, 1)
        if guided:
            step = torch.cat([step, step])
        if cache:
            output = model(input_ids=step, cache=output.cache, use_cache=True)
        else:
            sequence = torch.cat([sequence, step], dim=1)
            output = model(input_ids=sequence, use_cache=False)
        evaluations += 1
    tokens = torch.stack(taken, dim=1) if taken else torch.zeros(batch, 0, dtype=torch.long)
    yield TokenResult(tokens, evaluations, time.perf_counter() - start)
