"""`python -m mmstudio similarity --model ID --images PATH... --texts TEXT... [--json]`: the images
x texts cosine similarity matrix and, per image, the softmax over the texts (CLIP).

With an audio-text model (catalog task ``audio_similarity``: sounds-clap, LAION's CLAP) the same
for sounds: `similarity --model sounds-clap --audio a.wav b.wav --texts T1 T2 [--json]` (any sound
file, converted to 16 kHz mono; ``--render`` then renders sounds-world captions)."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from mmstudio.cli import note
from mmstudio.errors import UserError

if TYPE_CHECKING:
    from mmstudio.pipelines import align


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "similarity",
        help="compare images with texts in a CLIP embedding space",
        description="Cosine similarity of every image with every text, and for each image the "
        "softmax over the texts (logits = cosine x the model's logit scale).",
    )
    parser.add_argument("--model", default=None,
                        help="catalog id of an open_clip model (default: the similarity default, "
                        "shapes-clip), or of an audio-text model for --audio (sounds-clap)")
    parser.add_argument("--images", nargs="+", default=[], metavar="PATH", help="image files")
    parser.add_argument("--audio", nargs="+", default=[], metavar="PATH",
                        help="sound files (WAV, FLAC, MP3, OGG, M4A...), compared with an "
                        "audio-text model (default: the audio_similarity default, sounds-clap)")
    parser.add_argument("--render", nargs="+", default=[], metavar="CAPTION",
                        help="also compare world renders of these captions: shapes images, or "
                        "sounds clips with an audio-text model")
    parser.add_argument("--seed", type=int, default=0, help="seed for --render (default 0)")
    parser.add_argument("--texts", nargs="+", default=[], metavar="TEXT", help="texts")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--bench", action="store_true",
                        help="time a 50 images x 20 texts matrix (uncached, then cached)")
    parser.set_defaults(func=run)


def _clip(model_id: str | None, texts: list[str] | None = None):  # noqa: ANN202 - lazy imports
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.align import ClipModel

    manager = ModelManager()
    model_id = model_id or manager.settings.default_models.get("similarity", "shapes-clip")
    spec = manager.catalog.get(model_id)
    if "similarity" not in spec.tasks:
        raise UserError(f"'{model_id}' is not a similarity model; try "
                        f"{', '.join(s.id for s in manager.catalog if 'similarity' in s.tasks)}")
    note(manager.catalog.unknown_words_message(model_id, texts or []))
    return ClipModel.from_loaded(manager.get(model_id))


def render_captions(captions: list[str], seed: int) -> list:
    """One shapes render per caption (validated against the grammar), seeded by position."""
    import numpy as np

    from mmstudio.worlds import shapes

    images = []
    for i, text in enumerate(captions):
        attrs = shapes.parse(text)
        if attrs.color is None:
            raise UserError(f"caption {i + 1} is empty; a shapes caption names a color and a "
                            "shape, e.g. 'a red circle'")
        images.append(shapes.render(attrs, np.random.default_rng([seed, i])))
    return images


def _is_audio(args: argparse.Namespace) -> bool:
    """Whether this is a sounds comparison: files given with --audio, or an audio-text model."""
    if args.audio:
        return True
    if args.model is None:
        return False
    from mmstudio.catalog import Catalog
    from mmstudio.config import Settings

    catalog = Catalog.load(Settings.from_env())
    return args.model in catalog and AUDIO_TASK in catalog.get(args.model).tasks


def run(args: argparse.Namespace) -> int:

    from mmstudio.pipelines import align

    if args.bench:
        return bench(args.model, args.json)
    if _is_audio(args):
        return run_audio(args)
    sources = list(args.images) + render_captions(args.render, args.seed)
    names = list(args.images) + [f"render: {c}" for c in args.render]
    texts = align.check_texts(args.texts, limit=None)  # any number: embedded in batches
    align.prepare_images(sources, 32, limit=None)  # input errors before the model loads
    clip = _clip(args.model, texts)
    result = align.compare_many(clip, sources, texts)
    if args.json:
        print(json.dumps({"model": clip.model_id, "images": names, **result.sim.to_dict(),
                          "notes": result.notes}, indent=2))
        return 0
    print_matrices(clip.model_id, result.sim, names, result.notes, "I", "image")
    return 0


def print_matrices(model_id: str, sim: align.Similarity, names: list[str], notes: list[str],
                   tag: str, item: str) -> None:
    """The table output: the items (``tag`` + number) and texts, both matrices, each item's
    best text."""
    texts = sim.texts
    print(f"model {model_id}; logit scale {sim.logit_scale:.2f} "
          "(softmax over texts of cosine x scale)")
    for i, name in enumerate(names):
        print(f"  {tag}{i + 1}: {name}")
    for j, text in enumerate(texts):
        print(f"  T{j + 1}: {text}")
    header = " ".join(f"{'T' + str(j + 1):>6}" for j in range(len(texts)))
    for title, matrix in (("cosine similarity", sim.cosine),
                          (f"softmax over texts (per {item})", sim.probs)):
        print(f"\n{title}\n{'':6} {header}")
        for i, row in enumerate(matrix):
            print(f"{tag + str(i + 1):<6} " + " ".join(f"{v:6.3f}" for v in row))
    print()
    for i, (best, row) in enumerate(zip(sim.best_text, sim.probs, strict=True)):
        print(f"{tag}{i + 1} -> T{best + 1} '{texts[best]}' (p = {row[best]:.3f})")
    for remark in notes:
        print(f"note: {remark}")


AUDIO_TASK = "audio_similarity"


def run_audio(args: argparse.Namespace) -> int:
    """Sound files (and sounds-world renders) x texts with an audio-text model."""
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines import align
    from mmstudio.pipelines import sound_align as sa

    if args.images:
        raise UserError("--images and --audio can't be mixed: a model compares either images "
                        "or sounds with texts")
    manager = ModelManager()
    model_id = args.model or manager.catalog.default_for(AUDIO_TASK)
    if AUDIO_TASK not in manager.catalog.get(model_id).tasks:
        raise UserError(f"'{model_id}' is not an audio-text model; try "
                        f"{', '.join(s.id for s in manager.catalog.for_task(AUDIO_TASK))}")
    texts = align.check_texts(args.texts, limit=None)  # any number: embedded in batches
    clips = sa.load_clips(args.audio)  # input errors before the model loads
    clips += sa.render_clips(args.render, args.seed, what="caption")
    if not clips:
        raise UserError("no clips given: name sound files with --audio or sounds captions with "
                        "--render")
    names = list(args.audio) + [f"render: {c}" for c in args.render if c.strip()]
    note(manager.catalog.unknown_words_message(model_id, texts))
    clap = sa.ClapModel.from_loaded(manager.get(model_id))
    result = sa.compare_audio(clap, clips, texts, max_texts=None)
    if args.json:
        print(json.dumps({"model": clap.model_id, "clips": names, **result.sim.to_dict(),
                          "true_text": result.truth, "notes": result.notes}, indent=2))
        return 0
    print_matrices(clap.model_id, result.sim, names, result.notes, "C", "clip")
    return 0


def bench(model_id: str | None, as_json: bool) -> int:
    """Time the pipeline on 50 rendered images x 20 captions: first call, then a cached call."""
    import numpy as np

    from mmstudio.pipelines import align
    from mmstudio.worlds import shapes

    rng = np.random.default_rng(0)
    attrs = [shapes.sample_attrs(rng, "all") for _ in range(50)]
    images = [shapes.render(a, rng) for a in attrs]
    texts = [shapes.caption(a) for a in attrs[:20]]
    start = time.perf_counter()
    clip = _clip(model_id)
    load = time.perf_counter() - start
    cache = align.EmbeddingCache()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        align.compare(clip, images, texts, cache)
        times.append(time.perf_counter() - start)
    import torch

    figures = {"model": clip.model_id, "images": 50, "texts": 20,
               "threads": torch.get_num_threads(), "load_s": round(load, 3),
               "first_s": round(times[0], 4), "cached_s": round(min(times[1:]), 4)}
    if as_json:
        print(json.dumps(figures))
    else:
        print(f"{clip.model_id}: 50 images x 20 texts on {figures['threads']} thread(s): "
              f"load {load:.2f} s, first matrix {times[0]:.3f} s, cached {min(times[1:]):.3f} s")
    return 0
