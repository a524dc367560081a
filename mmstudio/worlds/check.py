"""Measuring the worlds themselves: analyzer accuracy per attribute, and rendering speed.

The acceptance bar of WORLDS.md: each analyzer recovers every attribute of its own renders at least
99% of the time; for sounds also at least 95% on audio rebuilt from the mel spectrogram with
Griffin-Lim (how generated audio reaches the ear).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from types import ModuleType

import numpy as np

from mmstudio.worlds import get_world
from mmstudio.worlds.datasets import EVAL_SEED, iter_eval_set

#: Minimum per-attribute accuracy, by condition.
THRESHOLDS = {"renders": 0.99, "griffin-lim": 0.95}


@dataclass
class AccuracyTable:
    """Per-attribute accuracy of one world's analyzer on ``n`` items of its fixed eval set."""

    world: str
    condition: str  # "renders" | "griffin-lim"
    n: int
    seed: int
    fields: list[str]
    correct: dict[str, int] = field(default_factory=dict)
    undecided: dict[str, int] = field(default_factory=dict)
    all_correct: int = 0
    held_out_n: int = 0
    held_out_all_correct: int = 0
    seconds: float = 0.0

    def accuracy(self, name: str) -> float:
        return self.correct[name] / self.n if self.n else 0.0

    @property
    def threshold(self) -> float:
        return THRESHOLDS[self.condition]

    @property
    def passed(self) -> bool:
        return all(self.accuracy(f) >= self.threshold for f in self.fields)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["accuracy"] = {f: self.accuracy(f) for f in self.fields}
        out["threshold"] = self.threshold
        out["passed"] = self.passed
        return out

    def format(self) -> str:
        """A plain-text table."""
        lines = [
            f"{self.world} ({self.condition}): n={self.n} seed={self.seed} "
            f"time={self.seconds:.1f}s threshold={self.threshold:.0%}",
            f"  {'attribute':<12}{'accuracy':>10}{'undecided':>11}",
        ]
        for f in self.fields:
            lines.append(
                f"  {f:<12}{self.accuracy(f):>10.2%}{self.undecided[f] / max(self.n, 1):>11.2%}"
            )
        lines.append(f"  {'all':<12}{self.all_correct / max(self.n, 1):>10.2%}")
        if self.held_out_n:
            lines.append(
                f"  {'held-out':<12}{self.held_out_all_correct / self.held_out_n:>10.2%}"
                f"   (all attributes, n={self.held_out_n})"
            )
        lines.append(f"  {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def griffin_lim_roundtrip(clip: np.ndarray) -> np.ndarray:
    """Audio rebuilt from its log-mel spectrogram with Griffin-Lim."""
    from mmstudio.worlds import audio

    return audio.mel_to_audio(audio.mel_spectrogram(clip))


def analyzer_accuracy(
    world: str | ModuleType,
    n: int,
    seed: int = EVAL_SEED,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    condition: str = "renders",
) -> AccuracyTable:
    """Run ``describe`` on the first ``n`` items of the world's eval set (optionally transformed,
    e.g. by ``griffin_lim_roundtrip``) and count per-attribute hits."""
    w = get_world(world) if isinstance(world, str) else world
    table = AccuracyTable(
        w.NAME,
        condition,
        n,
        seed,
        list(w.FIELDS),
        correct=dict.fromkeys(w.FIELDS, 0),
        undecided=dict.fromkeys(w.FIELDS, 0),
    )
    start = time.perf_counter()
    for item in iter_eval_set(w, n, seed):
        sample = transform(item.sample) if transform is not None else item.sample
        got = w.describe(sample)
        hits = 0
        for f in w.FIELDS:
            value = getattr(got, f)
            table.undecided[f] += value is None
            hit = value == getattr(item.attrs, f)
            table.correct[f] += hit
            hits += hit
        table.all_correct += hits == len(w.FIELDS)
        if item.held_out:
            table.held_out_n += 1
            table.held_out_all_correct += hits == len(w.FIELDS)
    table.seconds = time.perf_counter() - start
    return table


def render_speed(world: str | ModuleType, seconds: float = 1.0, seed: int = 0) -> float:
    """Samples rendered per second (every attribute drawn at random, in this thread)."""
    w = get_world(world) if isinstance(world, str) else world
    rng = np.random.default_rng(seed)
    attrs = w.ATTRS()
    for _ in range(10):  # warm caches
        w.render(attrs, rng)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            w.render(attrs, rng)
        count += 50
    return count / elapsed
