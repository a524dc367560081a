"""Quality gate of the shipped shapes-unet: its metrics.json meets the issue's targets, and a
re-measure of the first 100 of its 500 prompts (same prompts, same seeds) reproduces it."""

from __future__ import annotations

import argparse
import json

import pytest

from mmstudio.catalog import Catalog
from mmstudio.config import Settings
from mmstudio.evaluation import unet as unet_eval
from mmstudio.manager import ModelManager

FOLDER = Settings.from_env().models_dir / "shapes-unet"


def shipped_metrics() -> dict:
    return json.loads((FOLDER / "metrics.json").read_text())


def test_shipped_figures_meet_the_targets() -> None:
    metrics = shipped_metrics()
    assert metrics["samples"] == 500 and metrics["steps"] == 25 and metrics["scheduler"] == "ddim"
    assert metrics["guidance"] == Catalog.load(Settings.from_env()).get("shapes-unet").guidance
    assert all(metrics["passed"].values()), metrics["passed"]
    assert metrics["hits"].count("1") / 500 == pytest.approx(metrics["adherence"], abs=1e-4)
    assert max(f.stat().st_size for f in FOLDER.rglob("*.safetensors")) <= 10 * 10**6
    card = (FOLDER / "MODEL_CARD.md").read_text()
    step = json.loads((FOLDER / "training.json").read_text())["step"]
    assert f"Measured after {step} training steps" in card
    assert f"| {metrics['adherence']:.1%} | >= 90% (met) |" in card


def test_first_100_prompts_are_reproduced() -> None:
    metrics = shipped_metrics()
    args = argparse.Namespace(n=100, steps=25, guidance=None, scheduler="ddim", seed=0, batch=50,
                              diversity_seeds=50)
    again = unet_eval.evaluate(ModelManager(), "shapes-unet", args)
    same = sum(a == b for a, b in zip(again["hits"], metrics["hits"][:100], strict=True))
    assert same >= 95, f"{same} of the first 100 prompts agree with metrics.json"
    assert again["adherence"] >= 0.85
    assert again["positions_covered"] >= 4 and again["sizes_covered"] == 2
