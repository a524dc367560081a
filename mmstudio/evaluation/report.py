"""The end of an ``eval`` command, shared by the evaluations that keep their figures between
markers of the model card: the verdict against the targets, ``--write`` (metrics.json and the
card's block replaced), the table or ``--json`` on stdout, the exit code (1 on any miss)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

CARD_START, CARD_END = "<!-- metrics:start -->", "<!-- metrics:end -->"


def splice_block(text: str, block: str, start: str = CARD_START,
                 end: str = CARD_END) -> str | None:
    """``text`` with everything from marker ``start`` to marker ``end`` replaced by ``block``
    (which carries the markers itself); None when either marker is missing."""
    if start not in text or end not in text:
        return None
    head, rest = text.split(start, 1)
    return head + block + rest.split(end, 1)[1]


def replace_card_block(card: Path, block: str, start: str = CARD_START,
                       end: str = CARD_END) -> bool:
    """Put ``block`` (which starts and ends with the markers) in place of the card's block;
    False when the card or its markers are missing."""
    if not card.is_file():
        return False
    text = splice_block(card.read_text(), block, start, end)
    if text is None:
        return False
    card.write_text(text)
    return True


def finish(metrics: dict[str, Any], targets: dict[str, float], folder: Path,
           table: Callable[[dict[str, Any]], str], write: bool, as_json: bool) -> int:
    """``metrics[name] >= target`` for every target, stored as ``metrics["passed"]``; returns
    the exit code."""
    verdict = {name: metrics[name] is not None and metrics[name] >= target
               for name, target in targets.items()}
    metrics["passed"] = verdict
    if write:
        (Path(folder) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        replace_card_block(Path(folder) / "MODEL_CARD.md", table(metrics))
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        print(table(metrics).replace(CARD_START, "").replace(CARD_END, "").strip())
        for name, ok in verdict.items():
            print(f"{name}: {metrics[name]} (target {targets[name]}) {'met' if ok else 'MISSED'}")
    return 0 if all(verdict.values()) else 1
