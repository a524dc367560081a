"""`python -m mmstudio train MODEL_ID [options]` and `... eval MODEL_ID [options]`."""

from __future__ import annotations

import argparse
import importlib

from mmstudio.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, registry, text in (
        ("train", "mmstudio.training", "train an embedded model (options: train ID --help)"),
        ("eval", "mmstudio.evaluation", "measure an embedded model against its targets"),
    ):
        parser = subparsers.add_parser(name, help=text, add_help=False)
        # its own -h: `train --help` lists the models; `train ID --help` goes to ID's parser
        parser.add_argument("-h", "--help", action="store_true", dest="show_help")
        parser.add_argument("model_id", nargs="?")
        parser.add_argument("options", nargs=argparse.REMAINDER)
        parser.set_defaults(func=_dispatch, registry=registry, verb=name)


def _dispatch(args: argparse.Namespace) -> int:
    package = importlib.import_module(args.registry)
    table: dict[str, str] = getattr(package, "TRAINERS" if args.verb == "train" else "EVALUATORS")
    if args.show_help or not args.model_id:
        print(f"usage: python -m mmstudio {args.verb} MODEL_ID [options]\n"
              f"models: {', '.join(table)}; `{args.verb} MODEL_ID --help` lists the options")
        return 0
    if args.model_id not in table:
        raise UserError(f"no {args.verb} for '{args.model_id}'; choose one of: {', '.join(table)}")
    try:
        module = importlib.import_module(table[args.model_id])
    except ModuleNotFoundError as exc:
        if exc.name != table[args.model_id]:
            raise
        raise UserError(f"{args.verb} for '{args.model_id}' is not built yet") from None
    return int(module.main(args.model_id, list(args.options)) or 0)
