"""`python -m mmstudio worlds ...`: render samples of the procedural worlds, check their analyzers,
measure rendering speed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmstudio.errors import UserError

# Kept literal (not imported from mmstudio.worlds) so that `--help` does not import numpy.
WORLD_NAMES = ("shapes", "sounds", "motion")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``worlds`` command and its ``render``, ``check`` and ``bench`` subcommands."""
    parser = subparsers.add_parser(
        "worlds",
        help="render, check and time the procedural worlds the embedded models learn",
        description="The procedural worlds of WORLDS.md: shapes (images), sounds (audio), "
        "motion (video).",
    )
    parser.set_defaults(func=lambda args: _help(parser))
    sub = parser.add_subparsers(dest="worlds_command", metavar="SUBCOMMAND")

    render = sub.add_parser(
        "render",
        help="write samples and captions.jsonl to a folder",
        description="Write N samples (shapes: PNG; sounds: WAV; motion: MP4 + frames .npy of "
        "shape (T, H, W, 3) uint8) and captions.jsonl (file, caption, attributes).",
    )
    render.add_argument("world", choices=WORLD_NAMES)
    render.add_argument("--n", type=int, default=8, help="number of samples (default 8)")
    render.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    render.add_argument("--out", type=Path, required=True, help="output folder")
    render.add_argument(
        "--caption",
        default=None,
        help="render this caption (left-out attributes are drawn at random), "
        "e.g. 'a small red circle in the top left'",
    )
    render.set_defaults(func=cmd_render)

    check = sub.add_parser(
        "check",
        help="print each analyzer's accuracy per attribute",
        description="Run each world's analyzer on its fixed evaluation set and print the "
        "accuracy per attribute (sounds also on audio rebuilt with Griffin-Lim). "
        "Exit code 1 when a figure is below its threshold (99%%; Griffin-Lim 95%%).",
    )
    check.add_argument("--n", type=int, default=2000, help="renders per world (default 2000)")
    check.add_argument("--world", choices=WORLD_NAMES, action="append", help="repeatable")
    check.add_argument(
        "--griffin-lim-n",
        type=int,
        default=200,
        help="sounds rebuilt with Griffin-Lim (default 200; 0 skips; ~0.15 s each)",
    )
    check.add_argument("--seed", type=int, default=None, help="eval-set seed (default fixed)")
    check.add_argument("--json", action="store_true", help="print JSON instead of tables")
    check.set_defaults(func=cmd_check)

    bench = sub.add_parser(
        "bench",
        help="print rendering speed (samples per second, one thread) per world",
    )
    bench.add_argument("--world", choices=WORLD_NAMES, action="append", help="repeatable")
    bench.add_argument("--seconds", type=float, default=2.0, help="time per world (default 2)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.set_defaults(func=cmd_bench)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import numpy as np

    from mmstudio.worlds import attrs_dict, get_world
    from mmstudio.worlds.media import save_sample

    world = get_world(args.world)
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    prompt = world.parse(args.caption) if args.caption is not None else world.ATTRS()
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(args.n):
        sample, attrs = world.render_with_attrs(prompt, np.random.default_rng([args.seed, i]))
        files = save_sample(world, sample, out / f"{i:05d}")
        record = {
            "file": files[0].name,
            "caption": world.caption(attrs),
            "attributes": attrs_dict(attrs),
            "held_out": bool(world.is_held_out(attrs)),
        }
        if len(files) > 1:
            record["frames"] = files[1].name
        if args.caption is not None:
            record["prompt"] = world.caption(prompt)
        lines.append(json.dumps(record))
    (out / "captions.jsonl").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.n} {args.world} samples and captions.jsonl to {out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from mmstudio.worlds.check import analyzer_accuracy, griffin_lim_roundtrip
    from mmstudio.worlds.datasets import EVAL_SEED

    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    seed = EVAL_SEED if args.seed is None else args.seed
    names = args.world or list(WORLD_NAMES)
    tables = []
    for name in names:
        tables.append(analyzer_accuracy(name, args.n, seed))
        if not args.json:
            print(tables[-1].format(), flush=True)
        if name == "sounds" and args.griffin_lim_n > 0:
            tables.append(
                analyzer_accuracy(
                    name, args.griffin_lim_n, seed, griffin_lim_roundtrip, "griffin-lim"
                )
            )
            if not args.json:
                print(tables[-1].format(), flush=True)
    if args.json:
        print(json.dumps([t.to_dict() for t in tables], indent=2))
    return 0 if all(t.passed for t in tables) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from mmstudio.worlds.check import render_speed

    if args.seconds <= 0:
        raise UserError(f"--seconds must be positive, got {args.seconds}")
    speeds = {name: render_speed(name, args.seconds) for name in args.world or WORLD_NAMES}
    if args.json:
        print(json.dumps({"samples_per_second": speeds}, indent=2))
    else:
        print(f"{'world':<8}{'samples/s':>12}   (one thread)")
        for name, speed in speeds.items():
            print(f"{name:<8}{speed:>12,.0f}")
    return 0
