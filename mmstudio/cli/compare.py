"""`python -m mmstudio compare`: tokens + autoregression vs diffusion, measured on the same prompts.

    python -m mmstudio compare [--prompts FILE] [--prompt TEXT ...]
        [--models shapes-gpt,shapes-unet,shapes-dit] [--n K] [--seed S] [--out DIR] [--json]

For each model: output type, network passes per sample, GFLOPs per sample, time per sample
(batched and alone), adherence and held-out adherence read by the shapes analyzer on this run,
and diversity (``pipelines.compare``). Without prompts, a default list of eight (three held out).
``--out`` also writes the samples side by side (one row per prompt, one column block per model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmstudio.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="token prior vs diffusion on the same prompts: the table, measured")
    parser.add_argument("--prompts", type=Path, help="a file with one shapes caption per line")
    parser.add_argument("--prompt", action="append", default=[], help="repeatable")
    parser.add_argument("--models", default="shapes-gpt,shapes-unet,shapes-dit",
                        help="comma-separated catalog ids")
    parser.add_argument("--n", type=int, default=4, help="samples per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write samples.png here")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    import sys

    from mmstudio.cli.generate import read_prompts
    from mmstudio.config import Settings
    from mmstudio.devices import use_cpu_threads
    from mmstudio.manager import ModelManager
    from mmstudio.pipelines.compare import (
        DEFAULT_PROMPTS,
        HEADER,
        CompareProgress,
        CompareTable,
        compare,
        parse_prompts,
        table_rows,
    )

    prompts = read_prompts(args) if (args.prompt or args.prompts) else list(DEFAULT_PROMPTS)
    parse_prompts(prompts)  # a bad prompt fails before any model loads
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a folder (it is created if missing)")
    use_cpu_threads(Settings.from_env().cpu_threads)  # as the app serves
    manager = ModelManager()
    table = None
    for item in compare(manager, models, prompts, args.n, args.seed):
        if isinstance(item, CompareProgress):
            print(f"{item.model}: {item.done}/{item.total} samples", file=sys.stderr)
        elif isinstance(item, CompareTable):
            table = item
    assert table is not None
    record = table.to_dict()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        record["samples_file"] = str(write_samples(table, args.out / "samples.png"))
        (args.out / "compare.json").write_text(json.dumps(record, indent=2) + "\n")
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(f"compare: {len(table.prompts)} prompts x {table.n} samples, seed {table.seed}, "
          f"{table.threads} threads")
    rows = table_rows(table.rows)
    widths = [max(len(str(x)) for x in column) for column in zip(HEADER, *rows, strict=True)]
    for row in (HEADER, *rows):
        print("  " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
    for sentence in record["findings"]:
        print(f"- {sentence}")
    return 0


def write_samples(table, path: Path) -> Path:
    from mmstudio.pipelines.compare import samples_sheet
    from mmstudio.worlds.media import write_png

    return write_png(samples_sheet(table.rows), path)
