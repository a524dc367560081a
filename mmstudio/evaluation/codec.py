"""Measure ``sounds-codec`` (or any 16 kHz ``EncodecModel`` folder) on the sounds world:
``python -m mmstudio eval sounds-codec [--n 360] [--model-dir DIR] [--json] [--write]``.

On the fixed evaluation set (every pattern x pitch x timbre combination in a seeded order; the
held-out pairs high sawtooth and low noise included and reported apart), each clip is encoded
with every level and decoded with the first k = 1 ... N levels, and for each k:

- ``agreement``: share of clips whose timbre, pitch and pattern the WORLDS.md sounds analyzer reads
  from the decoded audio equal the clip's own (what the analyzer reads from the original is
  reported too: its own accuracy on these renders);
- ``mel_distance_db``: mean absolute difference of the analyzer's log-mel spectrograms, decoded vs
  original, in dB (power), over the frames where the original sounds (within 40 dB of its
  loudest frame), so that silence does not dilute it;
- ``bitrate``: frames/s x k x log2(codebook size), in bit/s.

Targets with all levels: agreement at least 95% on seen and 90% on held-out pairs. Exit code 1
when a target is missed. ``--write`` stores ``metrics.json`` and rewrites the figures in
``MODEL_CARD.md`` between its markers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstudio.errors import UserError
from mmstudio.evaluation.report import CARD_END, CARD_START, finish
from mmstudio.worlds import sounds
from mmstudio.worlds.datasets import EVAL_SEED, eval_set

TARGETS = {"agreement_seen": 0.95, "agreement_held_out": 0.90}
BATCH = 60


def _share(flags: np.ndarray) -> float:
    return round(float(flags.mean()), 4) if flags.size else 0.0


@torch.inference_mode()
def evaluate_codec(model: Any, n: int = 360, seed: int = EVAL_SEED) -> dict[str, Any]:
    from mmstudio.pipelines import codec

    info = codec.codec_info(model)
    if info.sample_rate != sounds.SAMPLE_RATE:
        raise UserError(f"the sounds world is {sounds.SAMPLE_RATE} Hz; this codec runs at "
                        f"{info.sample_rate} Hz")
    items = eval_set(sounds, n, seed)
    clips = np.stack([item.sample for item in items])  # (n, 16000)
    truth = [item.attrs for item in items]
    held = np.array([item.held_out for item in items])
    read_original = np.array([sounds.describe(c) == t for c, t in zip(clips, truth, strict=True)])
    codes = torch.cat([codec.encode(model, clips[i:i + BATCH]) for i in range(0, n, BATCH)])
    ladder = []
    for k in range(1, info.levels + 1):
        decoded = np.concatenate([codec.decode(model, codes[i:i + BATCH], k=k,
                                               length=clips.shape[1])
                                  for i in range(0, n, BATCH)])
        agree = np.array([sounds.describe(d) == t for d, t in zip(decoded, truth, strict=True)])
        distance = np.array([codec.mel_distance_db(c, d)
                             for c, d in zip(clips, decoded, strict=True)])
        ladder.append({"levels": k, "bitrate": info.bitrate(k),
                       "agreement": _share(agree), "agreement_seen": _share(agree[~held]),
                       "agreement_held_out": _share(agree[held]),
                       "mel_distance_db": round(float(distance.mean()), 3),
                       "mel_distance_db_held_out": round(float(distance[held].mean()), 3)
                       if held.any() else None})
    top = ladder[-1]
    usage = [int(torch.unique(codes[:, level]).numel()) for level in range(info.levels)]
    return {
        "agreement_seen": top["agreement_seen"], "agreement_held_out": top["agreement_held_out"],
        "agreement": top["agreement"], "ladder": ladder,
        "analyzer_on_originals": _share(read_original),
        "codes_used_per_level": usage, "codebook_size": info.codebook_size,
        "frame_rate": info.frame_rate, "levels": info.levels,
        "n": n, "n_held_out": int(held.sum()), "seed": seed, "targets": TARGETS,
    }


def passed(metrics: dict[str, Any]) -> dict[str, bool]:
    return {name: metrics[name] >= target for name, target in TARGETS.items()}


def card_table(metrics: dict[str, Any]) -> str:
    lines = [CARD_START, "",
             f"Measured on {metrics['n']} evaluation clips ({metrics['n_held_out']} of held-out "
             f"pitch/timbre pairs), seed {metrics['seed']}; {metrics['frame_rate']:g} frames/s, "
             f"{metrics['levels']} levels x {metrics['codebook_size']} codes. The analyzer reads "
             f"{metrics['analyzer_on_originals']:.1%} of the original clips right.", "",
             "| levels | bitrate | attributes kept, seen pairs | held-out pairs | all "
             "| mel distance (dB) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in metrics["ladder"]:
        lines.append(f"| {row['levels']} | {row['bitrate'] / 1000:g} kbit/s "
                     f"| {row['agreement_seen']:.1%} | {row['agreement_held_out']:.1%} "
                     f"| {row['agreement']:.1%} | {row['mel_distance_db']:.2f} |")
    lines += ["", f"Targets with all levels: seen >= {TARGETS['agreement_seen']:.0%}, held out "
              f">= {TARGETS['agreement_held_out']:.0%}. Distinct codes used per level on this "
              f"set: {', '.join(map(str, metrics['codes_used_per_level']))}."]
    return "\n".join(lines + ["", CARD_END])


def main(model_id: str, argv: list[str]) -> int:
    from transformers import EncodecModel

    parser = argparse.ArgumentParser(prog=f"python -m mmstudio eval {model_id}")
    parser.add_argument("--n", type=int, default=360)
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="an EncodecModel folder (default: the catalog's)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write", action="store_true",
                        help="store metrics.json and the figures in MODEL_CARD.md")
    args = parser.parse_args(argv)
    if args.n < 1:
        raise UserError("--n must be at least 1")
    if args.model_dir is None:
        from mmstudio.catalog import Catalog
        from mmstudio.config import Settings

        folder = Catalog.load(Settings.from_env()).resolve(model_id)
    else:
        folder = args.model_dir
    if not (Path(folder) / "config.json").is_file():
        raise UserError(f"{folder} holds no EncodecModel (config.json)")
    model = EncodecModel.from_pretrained(folder, use_safetensors=True).eval()
    metrics = evaluate_codec(model, args.n, args.seed)
    return finish(metrics, TARGETS, Path(folder), card_table, args.write, args.json)
