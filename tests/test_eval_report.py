"""The shared end of the eval commands (evaluation.report): verdict, --write, exit code."""

from __future__ import annotations

import json
from pathlib import Path

from mmstudio.evaluation.report import CARD_END, CARD_START, finish, splice_block


def _table(metrics: dict) -> str:
    return f"{CARD_START}\n| score | {metrics['score']:.2f} |\n{CARD_END}"


def test_write_replaces_only_the_card_block_and_stores_the_verdict(tmp_path: Path,
                                                                   capsys) -> None:
    card = tmp_path / "MODEL_CARD.md"
    card.write_text(f"# m\n\nbefore\n\n{CARD_START}\nold figures\n{CARD_END}\n\nafter\n")
    code = finish({"score": 0.93}, {"score": 0.9}, tmp_path, _table, write=True, as_json=False)
    assert code == 0
    text = card.read_text()
    assert "old figures" not in text and "| score | 0.93 |" in text
    assert text.startswith("# m\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["passed"] == {"score": True}
    assert "score: 0.93 (target 0.9) met" in capsys.readouterr().out


def test_a_miss_or_a_missing_figure_exits_1_and_nothing_is_written_without_write(
        tmp_path: Path, capsys) -> None:
    assert finish({"score": 0.5}, {"score": 0.9}, tmp_path, _table, False, False) == 1
    assert "MISSED" in capsys.readouterr().out
    assert finish({"score": None, "other": 1.0}, {"score": 0.9, "other": 0.5}, tmp_path,
                  lambda m: CARD_START + CARD_END, False, True) == 1
    assert json.loads(capsys.readouterr().out)["passed"] == {"score": False, "other": True}
    assert not (tmp_path / "metrics.json").exists()


def test_splice_block_takes_any_markers_and_says_when_they_are_missing() -> None:
    text = "head\n<!-- a -->\nold\n<!-- /a -->\ntail\n"
    assert splice_block(text, "<!-- a -->\nnew\n<!-- /a -->", "<!-- a -->", "<!-- /a -->") \
        == "head\n<!-- a -->\nnew\n<!-- /a -->\ntail\n"
    assert splice_block(text, "x") is None  # the default markers are not in it
    assert splice_block(f"{CARD_START}1{CARD_END}", f"{CARD_START}2{CARD_END}") \
        == f"{CARD_START}2{CARD_END}"
