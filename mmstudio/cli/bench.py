"""`python -m mmstudio bench`: performance figures, measured (not asserted by timed tests).

``bench denoise`` reports, for one image at the model's resolution with guidance:
- the bare loop (no per-step trace) over ``--runs`` runs (median);
- the streamed loop as the Diffusion tab runs it: the loop in a background thread through the
  batcher of shared passes, every step converted to panels (x_t, predicted x0, predicted noise),
  and for every page update (at most ``stream.UPDATE_INTERVAL`` apart) the three panels
  PNG-encoded at the model's size as the tab sends them (the browser enlarges them); and the
  overhead over the bare loop, both at the studio's thread count (``config.auto_threads``);
- our loop against diffusers' own ``StableDiffusionPipeline`` on the same (small, random) Stable
  Diffusion model and scheduler, where such a pipeline exists.

``bench similarity`` answers the Similarity tab's ``/similarity`` event for ``--images`` images x
``--texts`` texts (embeddings, matrix, zero-shot, retrieval, map, and the three figures encoded as
PNG the way gradio sends them): the first call of a fresh process, calls with new images and texts
(embeddings computed), and repeated calls (embeddings from the session cache).

    python -m mmstudio bench denoise [--model ID] [--steps 25] [--runs 5] [--threads N] [--json]
    python -m mmstudio bench similarity [--model shapes-clip] [--images 50] [--texts 20]
    python -m mmstudio bench load [--clients 16[,32]] [--seconds 180] [--steps 25]
    python -m mmstudio bench codec [--model sounds-codec] [--runs 5]
    python -m mmstudio bench clap [--model sounds-clap] [--clips 50] [--runs 5]
    python -m mmstudio bench gpt [--model shapes-gpt] [--runs 5]

``bench codec`` times encode + decode of 1 s of audio with the default audio codec (catalog task
``audio_codec``), all levels, against a target of 50 ms per second of audio on a CPU.
``bench clap`` times the similarity of ``--clips`` sounds-world clips x the 36 sounds captions with
embeddings computed (a fresh cache each run; target 2 s), then the Similarity tab's sounds answer
for them (zero-shot, retrieval over the 36 renders too, map, every picture PNG-encoded) and the
cached matrix.

``bench gpt`` times a token prior: one image (64 tokens with the KV cache and guidance, then the
VQ decode) against a target of 0.2 s on a CPU, a batch of 16 prompts against at most 4x that, and
the same image without the KV cache (every pass re-reads the whole stream), for what the cache buys.

``bench load`` serves the app and drives it from many clients at once: see ``bench_load``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure performance (denoise, similarity, dit, load, codec, clap, gpt, video)")
    parser.add_argument("what", choices=["denoise", "similarity", "dit", "load", "codec", "clap",
                                         "gpt", "video"])
    parser.add_argument("--model", default=None, help="default: the task's default model")
    parser.add_argument("--steps", type=int, default=25, help="denoise: sampling steps")
    parser.add_argument("--scheduler", default="ddim", help="denoise: scheduler")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--images", type=int, default=50, help="similarity: images")
    parser.add_argument("--texts", type=int, default=20, help="similarity: texts")
    parser.add_argument("--clips", type=int, default=50,
                        help="clap: clips (x the 36 sounds captions)")
    parser.add_argument("--threads", type=int, default=0,
                        help="0: the studio's default (MMSTUDIO_THREADS, else cores - 1)")
    parser.add_argument("--clients", default="16",
                        help="load: clients at once; several phases with e.g. 16,32")
    parser.add_argument("--seconds", type=float, default=180, help="load: seconds per phase")
    parser.add_argument("--baseline-seconds", type=float, default=60,
                        help="load: seconds of the one-client phase")
    parser.add_argument("--warmup", type=float, default=30,
                        help="load: seconds into a phase at which memory is first read")
    parser.add_argument("--pool", type=int, default=8,
                        help="load: distinct requests per endpoint")
    parser.add_argument("--tolerance", type=int, default=1,
                        help="load: uint8 levels a batched image may differ from its run alone")
    parser.add_argument("--lone-runs", type=int, default=5,
                        help="load: runs of one /denoise alone vs the bare loop (0: skip)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run_bench)


def _median_seconds(fn: Any, runs: int) -> float:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def streamed(denoiser: Any, settings: Any) -> None:
    """What the Diffusion tab does per run, minus the network."""
    import numpy as np
    from PIL import Image

    from mmstudio.pipelines.batching import batched
    from mmstudio.pipelines.denoise import DenoiseResult, denoise
    from mmstudio.pipelines.stream import UPDATE_INTERVAL, in_background
    from mmstudio.pipelines.trace import step_frames

    def encode(image: np.ndarray) -> None:  # the tab sends panels at native size, as PNG
        Image.fromarray(image).save(io.BytesIO(), format="PNG")

    for batch in in_background(denoise(batched(denoiser), settings), UPDATE_INTERVAL):
        frames = [step_frames(item, denoiser) for item in batch
                  if not isinstance(item, DenoiseResult)]
        if frames:
            for panel in frames[-1].panels:
                encode(panel)


def bench_denoise(args: argparse.Namespace) -> dict[str, Any]:
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run

    manager = ModelManager()
    model_id = args.model or manager.catalog.default_for("denoise")
    spec = manager.catalog.get(model_id)
    settings = DenoiseSettings(("a large red circle in the top left on a navy background",),
                               steps=args.steps, guidance=spec.guidance or 3.0, seed=0,
                               scheduler=args.scheduler)
    with denoiser_for(manager, model_id) as denoiser:
        bare = _median_seconds(lambda: run(denoiser, settings), args.runs)
        stream = _median_seconds(lambda: streamed(denoiser, settings), args.runs)
    figures: dict[str, Any] = {
        "model": model_id, "steps": args.steps, "scheduler": args.scheduler,
        "guidance": settings.guidance, "runs": args.runs,
        "bare_loop_s": round(bare, 4), "streamed_s": round(stream, 4),
        "streaming_overhead": round(stream / bare - 1.0, 4),
    }
    figures["vs_diffusers"] = bench_vs_diffusers(args)
    return figures


def bench_vs_diffusers(args: argparse.Namespace) -> dict[str, Any]:
    """Our loop vs ``StableDiffusionPipeline`` on one small random SD model, same scheduler."""
    import numpy as np
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from mmstudio.catalog import Catalog, ModelSpec
    from mmstudio.config import Settings
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run
    from mmstudio.tiny_models import make_stable_diffusion

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = make_stable_diffusion(Path(tmp) / "sd")
        settings = Settings(offline=True, assets=Path(tmp))
        spec = ModelSpec(id="bench-sd", tasks=("denoise",), source="local",
                         loader="stable_diffusion", path=str(folder), resolution=16)
        manager = ModelManager(settings, Catalog([spec], settings))
        denoiser = stack.enter_context(denoiser_for(manager, "bench-sd"))
        components = manager.get("bench-sd").components
        scheduler = DDIMScheduler.from_config(components["scheduler_config"],
                                              set_alpha_to_one=True, clip_sample=False)
        pipe = StableDiffusionPipeline(
            vae=components["vae"], text_encoder=components["text_encoder"],
            tokenizer=components["tokenizer"], unet=components["unet"], scheduler=scheduler,
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        prompt, guidance = "a red circle", 7.5
        ours_settings = DenoiseSettings((prompt,), steps=args.steps, guidance=guidance, seed=0,
                                        scheduler="ddim")
        size = 8 * denoiser.size // 8 * 2  # the tiny VAE downsamples by 2

        def theirs() -> np.ndarray:
            return pipe(prompt, num_inference_steps=args.steps, guidance_scale=guidance,
                        height=size, width=size, output_type="np",
                        generator=torch.Generator().manual_seed(0)).images

        ours = _median_seconds(lambda: run(denoiser, ours_settings), args.runs)
        library = _median_seconds(theirs, args.runs)
    return {"model": "random Stable Diffusion (tiny UNet/VAE/CLIP)", "ours_s": round(ours, 4),
            "diffusers_pipeline_s": round(library, 4), "ratio": round(ours / library, 3)}


def bench_similarity(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from mmstudio.manager import ModelManager
    from mmstudio.ui import tab_similarity as ui
    from mmstudio.worlds import shapes

    def inputs(seed: int) -> tuple[str, str]:
        rng = np.random.default_rng(seed)
        attrs = [shapes.sample_attrs(rng, "all") for _ in range(args.images)]
        captions = "\n".join(shapes.caption(a) for a in attrs)
        return captions, "\n".join(shapes.caption(a) for a in attrs[: args.texts])

    tab = ui.SimilarityTab(ModelManager())
    model_id = args.model or tab.manager.catalog.default_for("similarity")
    start = time.perf_counter()
    tab.manager.get(model_id)
    load = time.perf_counter() - start

    def answer(seed: int = 0) -> tuple[float, float]:
        captions, texts = inputs(seed)
        start = time.perf_counter()
        out = tab.compare(model_id, captions, seed, None, texts, "color x shape",
                          "yours+shapes")
        compute = time.perf_counter() - start
        for picture in (out[2], out[3], out[5]):  # what gradio does with an image output
            Image.fromarray(picture).save(io.BytesIO(), format="png")
        return compute, time.perf_counter() - start

    first = answer()
    fresh = [answer(seed) for seed in range(1, args.runs + 1)]  # new images and texts
    cached = [answer() for _ in range(args.runs)]
    return {
        "model": model_id, "images": args.images, "texts": args.texts, "runs": args.runs,
        "load_s": round(load, 3),
        "first_total_s": round(first[1], 3),
        "new_inputs_total_median_s": round(statistics.median(r[1] for r in fresh), 3),
        "cached_compute_median_s": round(statistics.median(r[0] for r in cached), 3),
        "cached_total_median_s": round(statistics.median(r[1] for r in cached), 3),
        "cached_total_max_s": round(max(r[1] for r in cached), 3),
    }


def print_similarity(figures: dict[str, Any]) -> None:
    import torch

    print(f"similarity bench: {figures['model']}, {figures['images']} images x "
          f"{figures['texts']} texts, {torch.get_num_threads()} threads")
    print(f"  model load            {figures['load_s']:.3f} s")
    print(f"  first answer          {figures['first_total_s']:.3f} s (cold process)")
    print(f"  new images and texts  {figures['new_inputs_total_median_s']:.3f} s (median of "
          f"{figures['runs']}, embeddings computed, PNGs encoded)")
    print(f"  cached, handler only  {figures['cached_compute_median_s']:.3f} s (median; "
          "compute and drawing)")
    print(f"  cached, PNGs encoded  {figures['cached_total_median_s']:.3f} s (median), "
          f"max {figures['cached_total_max_s']:.3f} s")


def run_bench(args: argparse.Namespace) -> int:
    from mmstudio.config import Settings
    from mmstudio.devices import use_cpu_threads

    use_cpu_threads(args.threads or Settings.from_env().cpu_threads)  # as the app serves
    if args.what == "dit":  # prints its own table
        return bench_dit(args)
    if args.what == "load":
        from mmstudio.cli.bench_load import bench_load, print_load

        measure, show = bench_load, print_load
    else:
        measure, show = BENCHES[args.what]
    figures = measure(args)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        show(figures)
    return 0


def print_denoise(figures: dict[str, Any]) -> None:
    import torch

    print(f"denoise bench: {figures['model']}, {figures['steps']} {figures['scheduler']} steps, "
          f"guidance {figures['guidance']}, one image, median of {figures['runs']} runs, "
          f"{torch.get_num_threads()} threads")
    print(f"  bare loop           {figures['bare_loop_s'] * 1000:8.1f} ms")
    print(f"  streamed (tab)      {figures['streamed_s'] * 1000:8.1f} ms  "
          f"overhead {figures['streaming_overhead']:+.1%}")
    vs = figures["vs_diffusers"]
    print(f"  vs diffusers ({vs['model']}): ours {vs['ours_s'] * 1000:.1f} ms, "
          f"StableDiffusionPipeline {vs['diffusers_pipeline_s'] * 1000:.1f} ms, "
          f"ratio {vs['ratio']:.2f}")


def bench_dit(args: argparse.Namespace) -> int:
    """``bench dit``: the pixel-vs-latent table (shapes-unet vs shapes-dit, same prompt, each at
    its default guidance, DDIM, one image, decode included) and the cost of capturing attention
    (cross-attention at every step, self-attention at the last) against plain sampling."""
    import torch

    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run
    from mmstudio.pipelines.dit import capture_attention, compare_pixel_latent, cost_table

    manager = ModelManager()
    dit_id = args.model or "shapes-dit"
    prompt = "a large red circle in the top left on a navy background"
    costs = compare_pixel_latent(manager, prompt, latent_id=dit_id, steps=args.steps,
                                 repeats=args.runs)
    spec = manager.catalog.get(dit_id)
    settings = DenoiseSettings((prompt,), steps=args.steps, guidance=spec.guidance or 3.0)
    with denoiser_for(manager, dit_id) as denoiser:
        plain = _median_seconds(lambda: run(denoiser, settings), args.runs)
        captured = _median_seconds(
            lambda: capture_attention(denoiser, settings, {args.steps - 1}), args.runs)
    header, rows = cost_table(costs)
    figures = {"prompt": prompt, "steps": args.steps, "threads": torch.get_num_threads(),
               "table": [dict(zip(header, row, strict=True)) for row in rows],
               "dit_seconds": costs[1].total_seconds, "unet_seconds": costs[0].total_seconds,
               "dit_share_of_unet": costs[1].total_seconds / costs[0].total_seconds,
               "plain_sampling_s": plain, "attention_capture_s": captured,
               "capture_overhead": captured / plain}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"dit bench: {args.steps} DDIM steps with guidance, one image, decode included, "
          f"{figures['threads']} threads; best of {args.runs} runs")
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  " + "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    print(f"  {dit_id}: {figures['dit_seconds']:.3f} s per run = "
          f"{figures['dit_share_of_unet']:.2f} of {costs[0].model_id}'s")
    print(f"  attention capture: {captured * 1000:.0f} ms vs plain {plain * 1000:.0f} ms "
          f"({figures['capture_overhead']:.2f}x)")
    return 0


# ------------------------------------------------------------------------------------ tokens
GPT_ONE_TARGET_S = 0.2  # one image: 64 tokens with the KV cache, decode included, on a CPU
GPT_BATCH_RATIO = 4.0  # a batch of 16 prompts at most this many times one image


def bench_gpt(args: argparse.Namespace) -> dict[str, Any]:
    """One image, a batch of 16 prompts, and one image without the KV cache; medians."""
    import torch

    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.compare import DEFAULT_PROMPTS
    from mmstudio.pipelines.token_prior import PriorSettings, prior_for

    manager = ModelManager()
    model_id = _model_for(manager, "token_prior", args.model, "a token prior")
    spec = manager.catalog.get(model_id)
    guidance = spec.guidance or 1.0
    one = PriorSettings((DEFAULT_PROMPTS[1],), guidance=guidance)
    sixteen = PriorSettings(tuple(itertools.islice(itertools.cycle(DEFAULT_PROMPTS), 16)),
                            guidance=guidance)
    with prior_for(manager, model_id) as prior:
        one_s = _median_seconds(lambda: prior.run(one), args.runs)
        batch_s = _median_seconds(lambda: prior.run(sixteen), args.runs)
        uncached_s = _median_seconds(lambda: prior.run(one, cache=False), max(1, args.runs // 2))
        tokens = prior.stream.image_tokens
        decode_s = _median_seconds(lambda: prior.decode(prior.run(one).codes), 1) - one_s
    return {"model": model_id, "guidance": guidance, "tokens": tokens,
            "threads": torch.get_num_threads(), "runs": args.runs,
            "one_image_s": one_s, "one_image_target_s": GPT_ONE_TARGET_S,
            "one_image": _verdict(one_s, GPT_ONE_TARGET_S),
            "batch16_s": batch_s, "batch16_per_image_s": batch_s / 16,
            "batch16_over_one": batch_s / one_s, "batch16_target_ratio": GPT_BATCH_RATIO,
            "batch16": _verdict(batch_s / one_s, GPT_BATCH_RATIO),
            "uncached_one_image_s": uncached_s, "kv_cache_speedup": uncached_s / one_s,
            "decode_s": max(decode_s, 0.0)}


def print_gpt(f: dict[str, Any]) -> None:
    print(f"gpt bench: {f['model']}, {f['tokens']} tokens, guidance {f['guidance']:g}, median of "
          f"{f['runs']} runs, {f['threads']} threads")
    print(f"  one image (KV cache, decode) {f['one_image_s'] * 1000:8.1f} ms  target "
          f"{f['one_image_target_s'] * 1000:.0f} ms ({f['one_image']})")
    print(f"  batch of 16 prompts          {f['batch16_s'] * 1000:8.1f} ms  = "
          f"{f['batch16_over_one']:.2f}x one image, target at most {f['batch16_target_ratio']:g}x "
          f"({f['batch16']}); {f['batch16_per_image_s'] * 1000:.1f} ms per image")
    print(f"  one image without KV cache   {f['uncached_one_image_s'] * 1000:8.1f} ms  "
          f"(the cache is {f['kv_cache_speedup']:.1f}x faster)")


# ------------------------------------------------------------------------------------ audio
CODEC_TARGET_MS = 50.0  # per second of audio, encode + decode, on a CPU
CLAP_TARGET_S = 2.0  # 50 clips x 36 captions, embeddings computed


def _model_for(manager: Any, task: str, model_id: str | None, what: str) -> str:
    """The model to bench: ``model_id`` or the task's default, loaded (a missing model says so
    with the manager's reason, as every bench does)."""
    from mmstudio.errors import UserError

    model_id = model_id or manager.catalog.default_for(task)
    if model_id is None:
        raise UserError(f"the catalog has no {what}")
    if task not in manager.catalog.get(model_id).tasks:
        raise UserError(f"'{model_id}' is not {what}; try "
                        f"{', '.join(s.id for s in manager.catalog.for_task(task))}")
    manager.get(model_id)
    return model_id


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else "missed"


def bench_codec(args: argparse.Namespace) -> dict[str, Any]:
    """Encode + decode of one second of a sounds-world clip, every level, median of ``--runs``."""
    import torch

    from mmstudio.manager import ModelManager
    from mmstudio.pipelines import codec
    from mmstudio.pipelines.sound import render_sound

    manager = ModelManager()
    start = time.perf_counter()
    model_id = _model_for(manager, "audio_codec", args.model, "an audio codec")
    load = time.perf_counter() - start
    sound = render_sound("three short beeps of a mid square wave", 0)  # 1.0 s at 16 kHz
    with manager.use(model_id) as loaded:
        model = loaded["model"]
        tokens = codec.tokenize_sound(model, sound.audio, sound.sample_rate)
        encode = _median_seconds(
            lambda: codec.tokenize_sound(model, sound.audio, sound.sample_rate), args.runs)
        decode = _median_seconds(lambda: codec.reconstruct(model, tokens), args.runs)
        both = _median_seconds(lambda: codec.reconstruct(
            model, codec.tokenize_sound(model, sound.audio, sound.sample_rate)), args.runs)
        device = str(loaded.device)
    per_second = both * 1000.0 / sound.seconds
    return {
        "model": model_id, "device": device, "threads": torch.get_num_threads(),
        "runs": args.runs, "audio_s": sound.seconds, "sample_rate": tokens.info.sample_rate,
        "levels": tokens.info.levels, "frames": tokens.frames, "load_s": round(load, 3),
        "encode_ms": round(encode * 1000, 2), "decode_ms": round(decode * 1000, 2),
        "encode_decode_ms": round(both * 1000, 2),
        "ms_per_audio_s": round(per_second, 2), "target_ms_per_audio_s": CODEC_TARGET_MS,
        "target": _verdict(per_second, CODEC_TARGET_MS) if device == "cpu" else "CPU target",
    }


def print_codec(f: dict[str, Any]) -> None:
    print(f"codec bench: {f['model']} on {f['device']}, {f['threads']} threads, "
          f"{f['audio_s']:.1f} s of audio -> {f['frames']} frames x {f['levels']} levels, "
          f"median of {f['runs']} runs")
    print(f"  model load        {f['load_s']:8.3f} s")
    print(f"  encode            {f['encode_ms']:8.1f} ms")
    print(f"  decode            {f['decode_ms']:8.1f} ms")
    print(f"  encode + decode   {f['encode_decode_ms']:8.1f} ms = {f['ms_per_audio_s']:.1f} ms "
          f"per second of audio (target <= {f['target_ms_per_audio_s']:g} ms on a CPU: "
          f"{f['target']})")


def bench_clap(args: argparse.Namespace) -> dict[str, Any]:
    """``--clips`` world renders x the 36 sounds captions: the matrix with embeddings computed
    (a fresh cache each run), cached, and the Similarity tab's whole sounds answer."""
    import numpy as np
    import torch
    from PIL import Image

    from mmstudio.errors import UserError
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines import align
    from mmstudio.pipelines import sound_align as sa
    from mmstudio.ui import similarity_audio as ui
    from mmstudio.worlds import sounds

    if not 1 <= args.clips <= sa.MAX_CLIPS:
        raise UserError(f"--clips must be from 1 to {sa.MAX_CLIPS} (one comparison of the tab)")
    manager = ModelManager()
    start = time.perf_counter()
    model_id = _model_for(manager, "audio_similarity", args.model, "an audio-text model")
    load = time.perf_counter() - start
    texts = sa.sounds_captions()

    def captions(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [sounds.caption(sounds.sample_attrs(rng, "all")) for _ in range(args.clips)]

    def matrix(seed: int, cache: align.EmbeddingCache) -> float:
        clips = sa.render_clips(captions(seed), seed)
        with manager.use(model_id) as loaded:
            clap = sa.ClapModel.from_loaded(loaded)
            start = time.perf_counter()
            sa.compare_audio(clap, clips, texts, cache)
            return time.perf_counter() - start

    first = matrix(0, align.EmbeddingCache())
    computed = [matrix(seed, align.EmbeddingCache()) for seed in range(1, args.runs + 1)]
    shared = align.EmbeddingCache()
    matrix(0, shared)
    cached = [matrix(0, shared) for _ in range(args.runs)]

    def answer(seed: int) -> float:
        section = ui.AudioSimilarity(manager)  # its own cache: every embedding computed
        start = time.perf_counter()
        out = section.compare(model_id, "\n".join(captions(seed)), seed, None,
                              "\n".join(texts), sa.CAPTIONS_SET, ui.DEFAULT_QUERY,
                              "yours+sounds")
        pictures = [out[2], out[4], out[-3]] + [p for p, _ in out[0]]
        for picture in pictures:  # what gradio does with a numpy image
            Image.fromarray(picture).save(io.BytesIO(), format="PNG")
        return time.perf_counter() - start

    answers = [answer(seed) for seed in range(1, args.runs + 1)]
    computed_s = statistics.median(computed)
    return {
        "model": model_id, "threads": torch.get_num_threads(), "clips": args.clips,
        "texts": len(texts), "runs": args.runs, "load_s": round(load, 3),
        "first_s": round(first, 3), "computed_median_s": round(computed_s, 3),
        "computed_max_s": round(max(computed), 3), "cached_median_s": round(
            statistics.median(cached), 4),
        "tab_answer_median_s": round(statistics.median(answers), 3),
        "target_s": CLAP_TARGET_S, "target": _verdict(computed_s, CLAP_TARGET_S),
    }


def print_clap(f: dict[str, Any]) -> None:
    print(f"clap bench: {f['model']}, {f['clips']} clips x {f['texts']} captions, "
          f"{f['threads']} threads, median of {f['runs']} runs")
    rows = [
        ("model load", f"{f['load_s']:.3f} s"),
        ("first matrix", f"{f['first_s']:.3f} s (cold process)"),
        ("matrix, embeddings computed", f"{f['computed_median_s']:.3f} s (max "
         f"{f['computed_max_s']:.3f} s; target <= {f['target_s']:g} s: {f['target']})"),
        ("matrix, embeddings cached", f"{f['cached_median_s']:.4f} s"),
        ("the tab's whole answer", f"{f['tab_answer_median_s']:.3f} s (embeddings computed, "
         "zero-shot, retrieval, map, pictures as PNG)"),
    ]
    for name, value in rows:
        print(f"  {name:<29}{value}")


#: ``bench WHAT`` -> (measure: args -> figures, print the figures); ``dit`` and ``load`` apart.
VIDEO_TARGET_S = 5.0  # one 16-frame clip, 25 guided steps, decode included, on a CPU


def bench_video(args: argparse.Namespace) -> dict[str, Any]:
    """One clip at the catalog's settings (25 DDIM steps with guidance, decode included), median
    of ``--runs``; and one guided model call at 4, 8 and 16 frames (same weights)."""
    import torch

    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run
    from mmstudio.pipelines.video import frame_scaling

    manager = ModelManager()
    model_id = _model_for(manager, "video", args.model, "a video model")
    spec = manager.catalog.get(model_id)
    settings = DenoiseSettings(("a red circle moving right on a navy background",),
                               steps=args.steps, guidance=spec.guidance or 3.0,
                               scheduler=args.scheduler)
    with denoiser_for(manager, model_id) as denoiser:
        clip_s = _median_seconds(lambda: run(denoiser, settings), args.runs)
        frames = denoiser.frames
        scaling = [{"frames": int(r.what.split()[1]), "gflops_per_step": r.gflops_per_step,
                    "ms_per_step": r.ms_per_step}
                   for r in frame_scaling(denoiser, repeats=max(1, args.runs))]
    return {"model": model_id, "steps": settings.steps, "guidance": settings.guidance,
            "scheduler": settings.scheduler, "frames": frames,
            "threads": torch.get_num_threads(), "runs": args.runs, "clip_s": clip_s,
            "clip_target_s": VIDEO_TARGET_S, "clip": _verdict(clip_s, VIDEO_TARGET_S),
            "per_frame_count": scaling}


def print_video(f: dict[str, Any]) -> None:
    print(f"video bench: {f['model']}, {f['frames']} frames, {f['steps']} {f['scheduler']} "
          f"steps, guidance {f['guidance']:g}, median of {f['runs']} runs, {f['threads']} threads")
    print(f"  one clip (decode included)  {f['clip_s']:.2f} s  target {f['clip_target_s']:g} s "
          f"({f['clip']})")
    for row in f["per_frame_count"]:
        print(f"  one guided step, {row['frames']:2d} frames  {row['ms_per_step']:7.1f} ms  "
              f"{row['gflops_per_step']:.3f} GFLOPs")


BENCHES = {
    "video": (bench_video, print_video),
    "denoise": (bench_denoise, print_denoise),
    "similarity": (bench_similarity, print_similarity),
    "gpt": (bench_gpt, print_gpt),
    "codec": (bench_codec, print_codec),
    "clap": (bench_clap, print_clap),
}
