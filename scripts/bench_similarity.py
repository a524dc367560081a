"""Benchmark the Similarity tab: 50 images x 20 texts with shapes-clip, as the /similarity event
answers it (embeddings, matrix, zero-shot, retrieval, map, and the three figures encoded as PNG the
way gradio sends them): the first call of a fresh process, calls with new images and texts
(embeddings computed), and repeated calls (embeddings from the session cache).

    python scripts/bench_similarity.py [--model shapes-clip] [--threads 2] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="shapes-clip")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--texts", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch

    from mmstudio.manager import ModelManager
    from mmstudio.ui import tab_similarity as ui
    from mmstudio.worlds import shapes

    torch.set_num_threads(args.threads)
    def inputs(seed: int) -> tuple[str, str]:
        rng = np.random.default_rng(seed)
        attrs = [shapes.sample_attrs(rng, "all") for _ in range(args.images)]
        captions = "\n".join(shapes.caption(a) for a in attrs)
        return captions, "\n".join(shapes.caption(a) for a in attrs[: args.texts])

    tab = ui.SimilarityTab(ModelManager())
    start = time.perf_counter()
    tab.manager.get(args.model)
    load = time.perf_counter() - start

    def answer(seed: int = 0) -> tuple[float, float]:
        captions, texts = inputs(seed)
        start = time.perf_counter()
        out = tab.compare(args.model, captions, seed, None, texts, "color x shape",
                          "yours+shapes")
        compute = time.perf_counter() - start
        for figure in (out[2], out[3], out[5]):  # what gradio does with a matplotlib figure
            figure.savefig(io.BytesIO(), format="png")
        return compute, time.perf_counter() - start

    first = answer()
    fresh = [answer(seed) for seed in range(1, args.repeat + 1)]  # new images and texts
    runs = [answer() for _ in range(args.repeat)]
    result = {
        "model": args.model, "images": args.images, "texts": args.texts,
        "threads": args.threads, "load_s": round(load, 3),
        "first_total_s": round(first[1], 3),
        "new_inputs_total_median_s": round(statistics.median(r[1] for r in fresh), 3),
        "cached_compute_median_s": round(statistics.median(r[0] for r in runs), 3),
        "cached_total_median_s": round(statistics.median(r[1] for r in runs), 3),
        "cached_total_max_s": round(max(r[1] for r in runs), 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.model}: {args.images} images x {args.texts} texts, {args.threads} threads")
        print(f"  model load            {result['load_s']:.3f} s")
        print(f"  first answer          {result['first_total_s']:.3f} s (cold process)")
        print(f"  new images and texts  {result['new_inputs_total_median_s']:.3f} s (median, "
              "embeddings computed, with figures)")
        print(f"  cached, compute only  {result['cached_compute_median_s']:.3f} s (median)")
        print(f"  cached, with figures  {result['cached_total_median_s']:.3f} s (median), "
              f"max {result['cached_total_max_s']:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
