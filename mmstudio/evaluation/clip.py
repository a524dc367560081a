"""Measure ``shapes-clip`` (or any open_clip model) on the shapes world:
``python -m mmstudio eval shapes-clip [--n 1000] [--json] [--write]``.

On a fixed evaluation set of shapes renders (``worlds.datasets.eval_set``: every attribute
combination, held-out color/shape pairs included and reported apart):

- zero-shot color x shape over the 32 prompts ``a {color} {shape}`` (top-1);
- zero-shot background (4 classes), size (2) and position (5) with the prompt ensembles of
  ``pipelines.align.shapes_class_sets`` (each class: the mean embedding of the 32 grammar captions
  naming it with every color and shape);
- image -> caption retrieval among all 1,280 full captions (R@1, R@5).

The ground truth is the attributes the renderer drew; the embeddings come from the same
``pipelines.align`` code the Similarity tab runs, on the model loaded by the catalog's loader.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmstudio.evaluation.report import replace_card_block
from mmstudio.pipelines import align
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import EVAL_SEED, combinations, eval_set

TARGETS: dict[str, float] = {
    "zero_shot_color_shape": 0.97,
    "zero_shot_color_shape_held_out": 0.85,
    "zero_shot_background": 0.95,
    "zero_shot_size": 0.95,
    "zero_shot_position": 0.90,
}
TASK_FIELD = {"color x shape": None, "background": "background", "size": "size",
              "position": "position"}


@dataclass
class Report:
    metrics: dict[str, Any]
    passed: bool

    def lines(self) -> list[str]:
        out = []
        for key, value in self.metrics.items():
            if key in ("targets", "passed"):
                continue
            target = TARGETS.get(key)
            mark = "" if target is None else (
                f"  (target >= {target:.2f}: {'ok' if value >= target else 'MISSED'})")
            out.append(f"{key:34s} {value:.4f}{mark}" if isinstance(value, float)
                       else f"{key:34s} {value}")
        out.append("all targets met" if self.passed else "some targets MISSED")
        return out


def _truth(attrs: shapes.ShapeAttrs, task: str) -> str:
    field = TASK_FIELD[task]
    return f"{attrs.color} {attrs.shape}" if field is None else getattr(attrs, field)


@torch.no_grad()
def evaluate(clip: align.ClipModel, n: int = 1000, seed: int = EVAL_SEED,
             cache: align.EmbeddingCache | None = None) -> Report:
    start = time.perf_counter()
    items = eval_set(shapes, n, seed)
    held = np.array([item.held_out for item in items])
    prepared = []
    for chunk in range(0, n, align.MAX_IMAGES):  # the pipeline's own limit per call
        prepared += align.prepare_images([i.sample for i in items[chunk:chunk + align.MAX_IMAGES]],
                                         clip.resolution)
    image_emb = align.embed_images(clip, prepared, cache)  # (n, D)
    metrics: dict[str, Any] = {"n": n, "seed": seed, "n_held_out": int(held.sum())}
    for task, classes in align.shapes_class_sets().items():
        labels = list(classes)
        class_emb = align.class_embeddings(clip, classes, cache)  # (C, D)
        pred = (image_emb @ class_emb.T).argmax(1).numpy()
        hits = np.array([labels[p] == _truth(item.attrs, task)
                         for p, item in zip(pred, items, strict=True)])
        key = "zero_shot_" + task.replace(" x ", "_")
        metrics[key] = float(hits.mean())
        metrics[key + "_held_out"] = float(hits[held].mean()) if held.any() else float("nan")
        if task == "color x shape":
            metrics[key + "_seen"] = float(hits[~held].mean())
    captions = [shapes.caption(a) for a in combinations(shapes)]  # 1,280 full captions
    caption_emb = align.embed_texts(clip, captions, cache)  # (1280, D)
    index = {c: i for i, c in enumerate(captions)}
    truth = torch.tensor([index[item.caption] for item in items])
    scores = image_emb @ caption_emb.T  # (n, 1280)
    rank = (scores > scores.gather(1, truth[:, None])).sum(1).numpy()  # 0 = best
    metrics["retrieval_captions"] = len(captions)
    for k in (1, 5):
        metrics[f"retrieval_r{k}"] = float((rank < k).mean())
        metrics[f"retrieval_r{k}_held_out"] = float((rank[held] < k).mean())
    metrics["logit_scale"] = round(clip.logit_scale, 3)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    passed = all(metrics[k] >= t for k, t in TARGETS.items())
    metrics["targets"] = dict(TARGETS)
    metrics["passed"] = passed
    return Report(metrics, passed)


def load(model_id: str, folder: Path | None) -> align.ClipModel:
    """The model through the catalog and manager, or an open_clip folder through the same
    loader (``--folder``, e.g. a run's intermediate export)."""
    from mmstudio.manager import ModelManager

    manager = ModelManager()
    if folder is None:
        return align.ClipModel.from_loaded(manager.get(model_id))
    from mmstudio.loaders import load_open_clip

    spec = manager.catalog.get(model_id)
    parts = load_open_clip(Path(folder), spec, torch.float32)
    parts["model"].eval()
    return align.ClipModel(f"{model_id}@{folder}", parts["model"], parts["preprocess"],
                           parts["tokenizer"], int(spec.resolution or 224))


CARD_START = "<!-- metrics: written by `python -m mmstudio eval shapes-clip --write` -->"
CARD_END = "<!-- /metrics -->"


def card_table(metrics: dict[str, Any]) -> str:
    """The metrics as a Markdown table (targets marked), for MODEL_CARD.md."""
    rows = ["| metric | value | target |", "| --- | --- | --- |"]
    for key, value in metrics.items():
        if key in ("targets", "passed", "seconds") or not isinstance(value, (int, float)):
            continue
        target = TARGETS.get(key)
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        mark = f">= {target:.2f} ({'met' if value >= target else 'MISSED'})" if target else ""
        rows.append(f"| {key} | {shown} | {mark} |")
    if metrics.get("train_overlap"):
        from mmstudio.evaluation.overlap import sentence

        rows += ["", sentence(metrics["train_overlap"])]
    return "\n".join(rows)


def update_card(card: Path, metrics: dict[str, Any]) -> bool:
    """Replace the block between the metrics markers of ``card``; False if it has none."""
    return replace_card_block(card, f"{CARD_START}\n{card_table(metrics)}\n{CARD_END}",
                              CARD_START, CARD_END)


def main(model_id: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=f"python -m mmstudio eval {model_id}",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="evaluation renders")
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.add_argument("--folder", type=Path, default=None,
                   help="evaluate this open_clip folder instead of the catalog's")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--write", action="store_true",
                   help="store the figures in the model folder's metrics.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clip = load(model_id, args.folder)
    report = evaluate(clip, args.n, args.seed)
    if args.json:
        print(json.dumps(report.metrics, indent=2))
    else:
        print(f"{model_id}: {args.n} evaluation renders, seed {args.seed}")
        print("\n".join(report.lines()))
    if args.write:
        from mmstudio.config import Settings
        from mmstudio.manager import ModelManager

        if args.folder is None:  # the shipped model: its training stream is recorded
            from mmstudio.evaluation.overlap import for_model

            report.metrics["train_overlap"] = for_model(model_id, args.n, args.seed)
        settings = Settings.from_env()
        spec = ModelManager(settings).catalog.get(model_id)
        target = Path(args.folder) if args.folder else settings.assets / spec.path
        (target / "metrics.json").write_text(json.dumps(report.metrics, indent=2) + "\n")
        print(f"wrote {target / 'metrics.json'}")
        if update_card(target / "MODEL_CARD.md", report.metrics):
            print(f"updated the metrics table of {target / 'MODEL_CARD.md'}")
    return 0 if report.passed else 1
