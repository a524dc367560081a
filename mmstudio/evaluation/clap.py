"""Measure ``sounds-clap`` (or any CLAP the catalog loads) on the sounds world:
``python -m mmstudio eval sounds-clap [--n 360] [--model-dir DIR] [--json] [--write]``.

Zero-shot classification over the 36 captions ``{pattern} of a {pitch} {timbre} wave`` (``of
{pitch} noise``) on the fixed evaluation set (every combination in a seeded order; the held-out
pairs high sawtooth and low noise included and reported apart): a clip is right when its most
similar caption is its own. Also per attribute (the best caption's pattern, pitch and timbre) and
text -> audio retrieval (recall@1: the most similar clip of the set to each caption has it).

Targets: at least 95% on seen combinations and 80% on held-out ones. Exit code 1 on a miss;
``--write`` stores ``metrics.json`` and the figures in ``MODEL_CARD.md`` between its markers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from mmstudio.errors import UserError
from mmstudio.evaluation.report import CARD_END, CARD_START, finish
from mmstudio.worlds import sounds
from mmstudio.worlds.datasets import EVAL_SEED, eval_set

TARGETS = {"zero_shot_seen": 0.95, "zero_shot_held_out": 0.80}
BATCH = 120


def evaluate_clap(clap: Any, n: int = 360, seed: int = EVAL_SEED) -> dict[str, Any]:
    import torch

    from mmstudio.pipelines.sound_align import sounds_captions

    captions = sounds_captions()
    items = eval_set(sounds, n, seed)
    clips = np.stack([item.sample for item in items])
    held = np.array([item.held_out for item in items])
    text = clap.embed_texts(captions)  # (36, D)
    audio_emb = torch.cat([clap.embed_audio(clips[i:i + BATCH]) for i in range(0, n, BATCH)])
    cosine = (audio_emb @ text.T).numpy()  # (n, 36)
    best = cosine.argmax(1)
    truth = np.array([captions.index(item.caption) for item in items])
    right = best == truth
    parsed = [sounds.parse(c) for c in captions]
    fields = {f: np.array([getattr(parsed[b], f) == getattr(item.attrs, f)
                           for b, item in zip(best, items, strict=True)])
              for f in sounds.FIELDS}
    # text -> audio: for each caption present in the set, is the top clip one of its own?
    recall = [truth[cosine[:, c].argmax()] == c for c in sorted(set(truth.tolist()))]

    def share(flags: np.ndarray) -> float:
        return round(float(flags.mean()), 4) if flags.size else 0.0

    return {
        "zero_shot_seen": share(right[~held]), "zero_shot_held_out": share(right[held]),
        "zero_shot": share(right),
        "per_attribute": {f: share(v) for f, v in fields.items()},
        "per_attribute_held_out": {f: share(v[held]) for f, v in fields.items()},
        "text_to_audio_recall_at_1": share(np.array(recall)),
        "n": n, "n_held_out": int(held.sum()), "seed": seed, "classes": len(captions),
        "targets": TARGETS,
    }


def passed(metrics: dict[str, Any]) -> dict[str, bool]:
    return {name: metrics[name] >= target for name, target in TARGETS.items()}


def card_table(metrics: dict[str, Any]) -> str:
    pa, ph = metrics["per_attribute"], metrics["per_attribute_held_out"]
    lines = [CARD_START, "",
             f"Zero-shot over the {metrics['classes']} captions on {metrics['n']} evaluation "
             f"clips ({metrics['n_held_out']} of held-out pitch/timbre pairs), seed "
             f"{metrics['seed']}.", "",
             "| figure | seen combinations | held-out | target |", "| --- | --- | --- | --- |",
             f"| zero-shot, whole caption | {metrics['zero_shot_seen']:.1%} "
             f"| {metrics['zero_shot_held_out']:.1%} | >= {TARGETS['zero_shot_seen']:.0%} / "
             f">= {TARGETS['zero_shot_held_out']:.0%} |"]
    for f in sounds.FIELDS:
        lines.append(f"| {f} of the best caption (all clips / held-out) | {pa[f]:.1%} "
                     f"| {ph[f]:.1%} | |")
    lines += ["", f"Text -> audio retrieval, recall@1 over the captions: "
              f"{metrics['text_to_audio_recall_at_1']:.1%}."]
    return "\n".join(lines + ["", CARD_END])


def main(model_id: str, argv: list[str]) -> int:
    from mmstudio.catalog import Catalog
    from mmstudio.config import Settings
    from mmstudio.pipelines.sound_align import ClapModel

    parser = argparse.ArgumentParser(prog=f"python -m mmstudio eval {model_id}")
    parser.add_argument("--n", type=int, default=360)
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="a sounds-clap folder (default: the catalog's)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write", action="store_true",
                        help="store metrics.json and the figures in MODEL_CARD.md")
    args = parser.parse_args(argv)
    if args.n < 1:
        raise UserError("--n must be at least 1")
    catalog = Catalog.load(Settings.from_env())
    spec = catalog.get(model_id)
    folder = Path(args.model_dir) if args.model_dir else catalog.resolve(model_id)
    if not (folder / "open_clip_config.json").is_file() and not (
            folder / "config.json").is_file():
        raise UserError(f"{folder} holds no CLAP model")
    import torch

    from mmstudio.loaders import LOADERS

    clap = ClapModel(model_id, LOADERS[spec.loader](folder, spec, torch.float32))
    metrics = evaluate_clap(clap, args.n, args.seed)
    return finish(metrics, TARGETS, Path(folder), card_table, args.write, args.json)
