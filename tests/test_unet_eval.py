"""`python -m mmstudio eval shapes-unet` on a tiny model: figures computed, written, carded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmstudio.evaluation import unet as unet_eval
from mmstudio.evaluation.unet import CARD_END, CARD_START
from tests import tiny_models


def test_eval_writes_metrics_and_the_card_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assets = tmp_path / "assets"
    tiny_models.make_open_clip(assets / "models" / "shapes-clip")
    folder = tiny_models.make_pixel_unet(assets / "models" / "shapes-unet", "shapes-clip")
    (folder / "training.json").write_text('{"step": 7}')
    (folder / "MODEL_CARD.md").write_text(f"# card\n\n{CARD_START}\nold\n{CARD_END}\n\nend\n")
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))
    argv = ["--n", "6", "--batch", "4", "--steps", "2", "--diversity-seeds", "3", "--write",
            "--json"]
    # a random tiny model misses its targets: the figures are still written, and the exit code
    # says so
    assert unet_eval.main("shapes-unet", argv) == 1
    metrics = json.loads((folder / "metrics.json").read_text())
    assert not all(metrics["passed"].values())
    from mmstudio.catalog import Catalog
    from mmstudio.config import Settings

    default_guidance = Catalog.load(Settings.from_env()).get("shapes-unet").guidance
    assert metrics["samples"] == 6 and metrics["steps"] == 2
    assert metrics["guidance"] == default_guidance  # the catalog's, when --guidance is not given
    assert 0.0 <= metrics["adherence"] <= 1.0
    assert set(metrics["attribute_accuracy"]) == {"color", "shape", "size", "position",
                                                  "background"}
    card = (folder / "MODEL_CARD.md").read_text()
    assert "old" not in card and "after 7 training steps" in card and card.endswith("end\n")
    out = capsys.readouterr().out
    assert "updated the figures" in out and json.loads(out[out.index("{"):])["samples"] == 6


def test_exit_code_follows_the_targets() -> None:
    met = {"adherence": 0.91, "adherence_held_out": 0.7, "positions_covered": 5,
           "sizes_covered": 2}
    assert all(unet_eval.passed(met).values())
    for key, low in (("adherence", 0.899), ("adherence_held_out", 0.59),
                     ("positions_covered", 3), ("sizes_covered", 1)):
        assert unet_eval.passed({**met, key: low}) == {k: k != key for k in met}
    assert not unet_eval.passed({**met, "adherence_held_out": None})["adherence_held_out"]
