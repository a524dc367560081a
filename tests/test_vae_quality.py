"""Quality gate of the shipped shapes-vae: re-measured here (not only re-read), against the real
targets (PSNR >= 32 dB, attributes kept >= 99%)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parent.parent / "assets" / "models" / "shapes-vae"


@pytest.mark.slow
def test_shapes_vae_meets_its_targets_when_re_measured() -> None:
    from diffusers import AutoencoderKL

    from mmstudio.evaluation.vae import TARGETS, evaluate_vae, passed

    vae = AutoencoderKL.from_pretrained(FOLDER, use_safetensors=True).eval()
    measured = evaluate_vae(vae, n=300)  # a prefix of the 500-render set of the card
    assert all(passed(measured).values()), {k: measured[k] for k in TARGETS}
    assert 0.9 < measured["latent"]["scaled_std"] < 1.1, "the scaling factor fits the data"
    shipped = json.loads((FOLDER / "metrics.json").read_text())
    assert all(shipped["passed"].values()) and shipped["n"] >= 500
    assert abs(measured["psnr"] - shipped["psnr"]) < 1.0  # the same model, a smaller sample
    card = (FOLDER / "MODEL_CARD.md").read_text()
    assert f"| {shipped['psnr']:.2f} |" in card, "the card quotes the measured figures"


def test_eval_exits_non_zero_on_a_miss(tmp_path: Path) -> None:
    """An untrained autoencoder of the same architecture misses both targets: exit code 1."""
    from mmstudio.evaluation.vae import main
    from mmstudio.training.vae import build_vae

    build_vae().save_pretrained(tmp_path / "vae", safe_serialization=True)
    assert main("shapes-vae", ["--model-dir", str(tmp_path / "vae"), "--n", "20"]) == 1
