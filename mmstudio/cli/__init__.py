"""`python -m mmstudio ...`: one subcommand per capability of the studio.

Each submodule exposes ``register(subparsers)``, which adds its parser and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code). A ``UserError`` raised by a
command becomes a one-line reason on stderr and exit code 2; ``note`` prints a remark that does not
stop the command (e.g. prompt words the model never learned) on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mmstudio.errors import UserError

# Subcommand modules, in the order --help lists them; one not written yet is left out.
COMMAND_MODULES = ("models", "worlds", "train", "tokenize", "similarity", "generate", "compare",
                   "attention", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmstudio",
        description="mmstudio: look inside multimodal generative models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mmstudio.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mmstudio.cli.{name}":
                raise  # a missing dependency inside the module must not be hidden
            continue
        module.register(subparsers)
    return parser


def note(text: str) -> None:
    """A remark for the person at the terminal, on stderr (stdout stays the command's output)."""
    if text:
        print(f"note: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
