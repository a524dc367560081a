"""`python -m mmstudio tokenize --model ID FILE... --out DIR [--json]`: images -> token grids, or
sounds -> codec tokens.

For each image (any number; they run 64 per forward pass): convert it to the model's input (RGB,
square, its resolution; the notes say what was done), tokenize, decode, write
``DIR/<name>.recon.png`` (the reconstruction at the model's resolution) and print the token grid
(a list of lists), the PSNR and the codebook usage. With an audio codec (``--model
sounds-codec``, ``facebook/encodec_24khz``) the files are sounds (WAV, FLAC, MP3, OGG; converted to
16 kHz mono, then to the codec's rate): ``DIR/<name>.recon.wav`` (all levels) and
``DIR/<name>.recon-k<k>.wav`` for each level count k, and the codes (levels x frames) with the
bitrate and the distance to the original of each k.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmstudio.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenize",
        help="turn images into codebook tokens with a VQ model and decode them back",
        description=__doc__.split("\n\n")[1].replace("``", "`"),
    )
    parser.add_argument("images", nargs="+", metavar="FILE",
                        help="image files (any size/mode), or sound files for an audio codec")
    parser.add_argument("--model", default=None,
                        help="catalog id of a tokenize model (default: the settings' default, "
                             "shapes-vqvae); see `python -m mmstudio models --task tokenize`")
    parser.add_argument("--out", type=Path, required=True, help="folder for the reconstructions")
    parser.add_argument("--json", action="store_true", help="print one JSON list of records")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.tokenize import tokenize_images
    from mmstudio.worlds.media import write_png

    manager = ModelManager()
    model_id = args.model or manager.catalog.default_for("tokenize")
    spec = manager.catalog.get(model_id)
    if "tokenize" not in spec.tasks and "audio_codec" not in spec.tasks:
        choices = manager.catalog.for_task("tokenize") + manager.catalog.for_task("audio_codec")
        raise UserError(f"'{model_id}' is not a tokenize model; choose one of: "
                        f"{', '.join(s.id for s in choices)}")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    if "audio_codec" in spec.tasks:
        return run_audio(manager, model_id, args)
    records, failed = [], 0
    paths = [Path(name) for name in args.images]
    with manager.use(model_id) as loaded:  # any number of images, BATCH per forward pass
        results = tokenize_images(loaded["vq"], paths, model_id, spec.resolution)
        for path, result in zip(paths, results, strict=True):
            if isinstance(result, UserError):
                failed += 1
                print(f"error: {path}: {result}", file=sys.stderr)
                continue
            out = write_png(result.reconstruction, args.out / f"{path.stem}.recon.png")
            record = {"image": str(path), "reconstruction": str(out), **result.to_dict(),
                      "usage": result.usage.to_dict()}
            records.append(record)
            if not args.json:
                _print_record(record)
    if args.json:
        print(json.dumps(records))
    return 2 if failed else 0


def run_audio(manager, model_id: str, args: argparse.Namespace) -> int:
    """Sounds through an audio codec: the reconstructions per level count and the codes."""
    from mmstudio.pipelines import codec
    from mmstudio.pipelines.sound import load_sound
    from mmstudio.worlds.media import write_wav

    records, failed = [], 0
    with manager.use(model_id) as loaded:
        model = loaded["model"]
        for name in args.images:
            path = Path(name)
            try:
                sound = load_sound(path)
            except UserError as exc:
                failed += 1
                print(f"error: {path}: {exc}", file=sys.stderr)
                continue
            tokens = codec.tokenize_sound(model, sound.audio, sound.sample_rate)
            rate = tokens.info.sample_rate
            full = write_wav(codec.reconstruct(model, tokens), args.out / f"{path.stem}.recon.wav",
                             rate)
            per_k = []
            for row in codec.ladder(model, tokens, sound.audio):
                y = codec.reconstruct(model, tokens, k=row.levels)
                out = write_wav(y, args.out / f"{path.stem}.recon-k{row.levels}.wav", rate)
                per_k.append({"levels": row.levels, "bitrate": row.bitrate, "file": str(out),
                              "mel_distance_db": round(row.mel_distance_db, 3)})
            record = {"audio": str(path), "model": model_id, "reconstruction": str(full),
                      "notes": sound.notes + tokens.notes, "sample_rate": rate,
                      "frame_rate": tokens.info.frame_rate, "levels": tokens.info.levels,
                      "codebook_size": tokens.info.codebook_size, "frames": tokens.frames,
                      "ladder": per_k, "codes": tokens.codes.tolist()}
            records.append(record)
            if not args.json:
                print(f"{path} -> {full}")
                for note in record["notes"]:
                    print(f"  note: {note}")
                print(f"  {tokens.arithmetic()}")
                for row in per_k:
                    print(f"  k={row['levels']}: {row['bitrate'] / 1000:g} kbit/s, "
                          f"{row['mel_distance_db']:.2f} dB from the original -> {row['file']}")
                print(f"  codes: {json.dumps(record['codes'])}")
    if args.json:
        print(json.dumps(records))
    return 2 if failed else 0


def _print_record(record: dict) -> None:
    usage = record["usage"]
    print(f"{record['image']} -> {record['reconstruction']}")
    for note in record["notes"]:
        print(f"  note: {note}")
    print(f"  model {record['model']}, grid {record['grid'][0]} x {record['grid'][1]}, "
          f"PSNR {record['psnr_db']:.2f} dB, {usage['used']} distinct codes of "
          f"{usage['num_codes']} (perplexity {usage['perplexity']}), "
          f"{record['bits_image']:,} bits of pixels -> {record['bits_tokens']:,} bits of tokens "
          f"({record['compression']}x)")
    print(f"  tokens: {json.dumps(record['tokens'])}")


# ------------------------------------------------------------------------------ example images

EXAMPLE_CAPTIONS = {
    "shapes-red-circle": "a small red circle in the top left on a black background",
    "shapes-blue-square": "a large blue square in the center on a gray background",
    "shapes-green-triangle": "a large green triangle in the bottom right on a navy background",
    "shapes-white-cross": "a large white cross in the center on a darkgreen background",
    "shapes-purple-triangle-held-out": "a large purple triangle in the center on a gray background",
    "shapes-orange-circle": "a small orange circle in the bottom left on a navy background",
}


def example_images() -> dict[str, "Image.Image"]:  # noqa: F821, UP037 - PIL imported lazily
    """The Tokenize tab's examples, all procedural (nothing downloaded): six shapes renders
    (one a held-out pair) and six other pictures chosen to show what the models do off their
    world and what input conversion does: a gradient, a checkerboard, a photo-like landscape of
    1/f noise, grayscale rings (mode L), a transparent sticker (RGBA) and a wide banner (centre
    crop)."""
    import numpy as np
    from PIL import Image

    from mmstudio.worlds import shapes

    images: dict[str, Image.Image] = {}
    for i, (name, caption) in enumerate(EXAMPLE_CAPTIONS.items()):
        sample = shapes.render(shapes.parse(caption), np.random.default_rng([2024, i]))
        images[name] = Image.fromarray(sample)
    side = 256
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / (side - 1)  # (256, 256) each
    gradient = np.stack([xx, yy, 1 - 0.5 * (xx + yy)], axis=-1)
    images["gradient"] = Image.fromarray((gradient * 255).round().astype(np.uint8))
    checker = ((np.arange(side)[:, None] // 32 + np.arange(side)[None, :] // 32) % 2)
    board = np.where(checker[..., None] == 1, (235, 235, 225), (30, 60, 140)).astype(np.uint8)
    images["checkerboard"] = Image.fromarray(board)
    rng = np.random.default_rng(7)
    freq = np.sqrt(np.fft.fftfreq(side)[:, None] ** 2 + np.fft.fftfreq(side)[None, :] ** 2)

    def fractal(power: float) -> np.ndarray:  # 1/f^power noise, scaled to [0, 1]
        spectrum = np.fft.fft2(rng.standard_normal((side, side)))
        field = np.real(np.fft.ifft2(spectrum / np.maximum(freq, 1 / side) ** power))
        return (field - field.min()) / (field.max() - field.min())

    # A landscape-like picture: cloudy sky over textured ground (natural images have ~1/f spectra)
    clouds = np.clip((fractal(1.6) - 0.35) * 2.2, 0, 1)[..., None]
    sky = (1 - clouds) * np.array([70, 125, 205]) + clouds * np.array([242, 242, 246])
    grass = fractal(1.1)[..., None]
    ground = (1 - grass) * np.array([35, 80, 30]) + grass * np.array([120, 160, 60])
    horizon = (yy > 0.62 + 0.04 * np.sin(xx * 9))[..., None]
    noise = np.where(horizon, ground, sky) / 255.0
    images["photo-like-landscape"] = Image.fromarray((noise * 255).round().astype(np.uint8))
    radius = np.hypot(xx - 0.5, yy - 0.5)
    rings = 0.5 + 0.5 * np.cos(radius * 2 * np.pi * 8)
    images["grayscale-rings"] = Image.fromarray((rings * 255).round().astype(np.uint8), "L")
    sticker = np.zeros((128, 128, 4), np.uint8)
    disc = np.hypot(*np.mgrid[-64:64, -64:64]) < 44
    sticker[disc] = (250, 200, 40, 255)
    images["transparent-sticker"] = Image.fromarray(sticker, "RGBA")
    stripes = np.zeros((160, 320, 3), np.uint8)
    for k, color in enumerate([(220, 40, 40), (245, 245, 245), (50, 90, 230), (40, 200, 60)]):
        stripes[:, k * 80:(k + 1) * 80] = color
    images["wide-banner"] = Image.fromarray(stripes)
    return images


def write_examples(folder: Path) -> list[Path]:
    """Write ``example_images()`` as PNGs into ``folder`` (the shipped ``assets/examples``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in example_images().items():
        image.save(folder / f"{name}.png", optimize=True)
        paths.append(folder / f"{name}.png")
    return paths
