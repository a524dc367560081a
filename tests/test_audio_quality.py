"""Quality gates of the shipped audio models, sounds-codec and sounds-clap: their folders and cards
(quick) and, marked slow, every target re-measured by the code of `python -m mmstudio eval` on the
evaluation clips (not only re-read from metrics.json), with the shipped figures reproduced.
Each is skipped, saying why and how to ship it, while its model is not in assets/models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmstudio.config import Settings

MODELS_DIR = Settings.from_env().models_dir
WEIGHTS = {"sounds-codec": "model.safetensors", "sounds-clap": "open_clip_model.safetensors"}


def _shipped(model_id: str) -> Path:
    folder = MODELS_DIR / model_id
    if not (folder / WEIGHTS[model_id]).is_file() or not (folder / "metrics.json").is_file():
        pytest.skip(f"{model_id} is not shipped in {MODELS_DIR} yet: train it with `python -m "
                    f"mmstudio train {model_id}`, copy runs/{model_id}/export/* into "
                    f"assets/models/{model_id}/ and run `python -m mmstudio eval {model_id} "
                    "--write`")
    return folder


@pytest.mark.parametrize("model_id", sorted(WEIGHTS))
def test_folder_and_card(model_id: str) -> None:
    folder = _shipped(model_id)
    names = {p.name for p in folder.iterdir()}
    assert {WEIGHTS[model_id], "MODEL_CARD.md", "metrics.json", "training.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt", ".pkl"))]
    for path in folder.iterdir():
        assert path.stat().st_size <= 10 * 10**6, path
    metrics = json.loads((folder / "metrics.json").read_text())
    assert all(metrics["passed"].values()) and metrics["n"] >= 360
    card = (folder / "MODEL_CARD.md").read_text()
    assert "<!-- metrics:start -->" in card and "python -m mmstudio" in card


@pytest.mark.slow
def test_sounds_codec_meets_its_targets_when_re_measured() -> None:
    from transformers import EncodecModel

    from mmstudio.evaluation.codec import TARGETS, evaluate_codec, passed

    folder = _shipped("sounds-codec")
    model = EncodecModel.from_pretrained(folder, use_safetensors=True).eval()
    shipped = json.loads((folder / "metrics.json").read_text())
    measured = evaluate_codec(model, n=shipped["n"], seed=shipped["seed"])
    assert all(passed(measured).values()), {k: measured[k] for k in TARGETS}
    for name in TARGETS:  # the same model and clips: the same figures
        assert abs(measured[name] - shipped[name]) < 1e-3, name
    assert len(measured["ladder"]) == model.config.num_quantizers
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"| {shipped['agreement_seen']:.1%} |" in card, "the card quotes the measured figures"


@pytest.mark.slow
def test_sounds_clap_meets_its_targets_when_re_measured() -> None:
    import torch

    from mmstudio.catalog import Catalog
    from mmstudio.evaluation.clap import TARGETS, evaluate_clap, passed
    from mmstudio.loaders import LOADERS
    from mmstudio.pipelines.sound_align import ClapModel

    folder = _shipped("sounds-clap")
    spec = Catalog.load(Settings.from_env()).get("sounds-clap")
    clap = ClapModel("sounds-clap", LOADERS[spec.loader](folder, spec, torch.float32))
    shipped = json.loads((folder / "metrics.json").read_text())
    measured = evaluate_clap(clap, n=shipped["n"], seed=shipped["seed"])
    assert all(passed(measured).values()), {k: measured[k] for k in TARGETS}
    for name in TARGETS:
        assert abs(measured[name] - shipped[name]) < 1e-3, name
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"{shipped['zero_shot_held_out']:.1%}" in card, "the card quotes the measured figures"
