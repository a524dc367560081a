"""Quality gate of the shipped shapes-clip: its targets on 1,000 evaluation renders, measured now
(about 15 s), and the shipped metrics.json reproduced."""

from __future__ import annotations

import json

import pytest

from mmstudio.config import Settings
from mmstudio.evaluation import clip as evaluation

FOLDER = Settings.from_env().assets / "models" / "shapes-clip"


@pytest.fixture(scope="module")
def report() -> evaluation.Report:
    return evaluation.evaluate(evaluation.load("shapes-clip", None), n=1000)


def test_checkpoint_files_are_small_safetensors() -> None:
    names = sorted(p.name for p in FOLDER.iterdir())
    assert "open_clip_model.safetensors" in names and "open_clip_config.json" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    for path in FOLDER.iterdir():
        assert path.stat().st_size <= 10 * 10**6, path


@pytest.mark.parametrize("key", sorted(evaluation.TARGETS))
def test_target(report: evaluation.Report, key: str) -> None:
    assert report.metrics[key] >= evaluation.TARGETS[key], (key, report.metrics[key])


def test_retrieval_is_reported(report: evaluation.Report) -> None:
    assert report.metrics["retrieval_captions"] == 1280
    assert 0 < report.metrics["retrieval_r1"] <= report.metrics["retrieval_r5"] <= 1
    assert report.metrics["n_held_out"] > 50


def test_shipped_metrics_are_reproduced(report: evaluation.Report) -> None:
    shipped = json.loads((FOLDER / "metrics.json").read_text())
    for key, value in report.metrics.items():
        if isinstance(value, float) and key != "seconds":
            assert shipped[key] == pytest.approx(value, abs=0.003), key
    card = (FOLDER / "MODEL_CARD.md").read_text()
    assert f"| zero_shot_color_shape | {shipped['zero_shot_color_shape']:.4f} |" in card
