"""The f8 VQ pair (shapes-vqvae-f8 / shapes-vqgan-f8: 4 x 4 tokens): its training options, a few
training steps with a narrow model (export, reload, resume, the VQGAN fine-tune keeping the
tokens), the real architecture's size, and `eval` on untrained stand-ins of exactly the real
architecture: the comparison figures, misses exit 1, `--write` fills the card template between its
markers and writes metrics.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmstudio.config import REPO_ROOT
from mmstudio.errors import UserError
from mmstudio.evaluation import vq as evaluation
from mmstudio.pipelines import tokenize as tk
from mmstudio.training import vq as training
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import eval_set
from tests.stand_ins import stand_in_vq_f8

PLAIN, GAN = tk.PAIRS["f8"]
NARROW = ["--channels", "8,8,16,16", "--batch", "4", "--no-progress", "--no-compile",
          "--eval-every", "0", "--log-every", "1"]
TEMPLATES = REPO_ROOT / "assets" / "models"


def run(model_id: str, tmp: Path, *extra: str):
    args = training.parse_args(model_id, [*NARROW, "--run", str(tmp / "run"), "--out",
                                          str(tmp / "out"), *extra])
    return training.train(args)


@pytest.fixture(scope="module")
def renders() -> np.ndarray:
    return np.stack([item.sample for item in eval_set(shapes, 4)])


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Untrained f8 stand-ins in ``ASSETS/models/`` of an assets folder of their own."""
    models = tmp_path_factory.mktemp("f8-assets") / "models"
    models.mkdir()
    return stand_in_vq_f8(models)


def test_options_of_the_f8_pair(tmp_path: Path) -> None:
    plain = training.parse_args(PLAIN, ["--run", str(tmp_path / "a")])
    gan = training.parse_args(GAN, ["--run", str(tmp_path / "b")])
    assert plain.block_out_channels == training.ARCHITECTURE_F8["block_out_channels"]
    assert len(plain.block_out_channels) == 4 and plain.disc_weight == 0 and not plain.init
    assert plain.loss == "l1+mse" and not plain.decoder_only
    assert Path(gan.init) == REPO_ROOT / "assets" / "models" / PLAIN  # its own VQ-VAE, not f4's
    assert gan.decoder_only and gan.loss == "l1" and gan.disc_weight > 0 and gan.edge_weight > 0
    for args, run_folder in ((plain, tmp_path / "a"), (gan, tmp_path / "b")):
        assert Path(args.out) == run_folder / "export"  # never the shipped assets mid-run
    assert training.compression_of(GAN) == "f8" and training.base_of(GAN) == PLAIN
    assert training.is_gan(GAN) and not training.is_gan(PLAIN)
    with pytest.raises(UserError, match="--channels needs 4 numbers"):
        training.parse_args(PLAIN, ["--channels", "16,32,64"])
    with pytest.raises(UserError, match="makes shapes-vqvae, shapes-vqgan, shapes-vqvae-f8"):
        training.main("shapes-vqgan-f16", [])


def test_the_real_architecture_fits_in_10_mb(tmp_path: Path) -> None:
    vq = training.build_vq(training.ARCHITECTURE_F8)
    vq.save_pretrained(tmp_path, safe_serialization=True)
    size = (tmp_path / "diffusion_pytorch_model.safetensors").stat().st_size
    assert size <= 10 * 10**6, size
    assert tk.vq_info(vq).grid == 4 and tk.vq_info(vq).downsample == 8


def test_train_export_resume_and_the_vqgan_keeps_the_tokens(tmp_path: Path,
                                                            renders: np.ndarray) -> None:
    from diffusers import VQModel

    base, summary = run(PLAIN, tmp_path / "base", "--steps", "3", "--restart-every", "2")
    assert summary["compression"] == "f8" and summary["adversarial"] is None
    folder = training.export(base, summary, tmp_path / "base" / "out")
    config = json.loads((folder / "config.json").read_text())
    assert config["block_out_channels"] == [8, 8, 16, 16] and len(config["up_block_types"]) == 4
    reloaded = VQModel.from_pretrained(folder, use_safetensors=True).eval()
    tokens = tk.encode_indices(reloaded, renders)
    assert tokens.shape == (4, 4, 4)
    assert np.array_equal(tokens, tk.encode_indices(base.eval(), renders))

    gan_args = ["--steps", "3", "--init", str(folder), "--disc-start", "1", "--eval-every", "2"]
    run(GAN, tmp_path / "gan", *gan_args, "--stop-at", "2")
    gan, summary = run(GAN, tmp_path / "gan", *gan_args, "--resume")
    assert [part["from_step"] for part in summary["history"]] == [0, 2]
    assert {"g", "w", "d", "edge"} <= set(summary["final_train_stats"])
    quick = summary["quick_evals"][0]  # the quick eval compares with the model it started from
    assert quick["step"] == 2 and {"agreement", "sharpness", "closer_share", "margin"} <= set(quick)
    assert np.array_equal(tk.encode_indices(gan.eval(), renders), tokens)  # decoder only
    assert not np.array_equal(tk.decode_indices(gan, tokens), tk.decode_indices(reloaded, tokens))
    with pytest.raises(UserError, match="needs 4 .*shapes-vqvae-f8 architecture"):
        run(GAN, tmp_path / "bad", "--steps", "1", "--init",
            str(REPO_ROOT / "assets" / "models" / "shapes-vqvae"))


def test_a_resumed_vqgan_run_equals_a_straight_one(tmp_path: Path) -> None:
    import torch

    base, summary = run(PLAIN, tmp_path / "base", "--steps", "2")
    folder = training.export(base, summary, tmp_path / "base" / "out")
    gan_args = ["--steps", "4", "--init", str(folder), "--disc-start", "1", "--eval-every", "2"]
    straight, _ = run(GAN, tmp_path / "a", *gan_args)
    run(GAN, tmp_path / "b", *gan_args, "--stop-at", "2")
    resumed, summary = run(GAN, tmp_path / "b", *gan_args, "--resume")
    assert [e["step"] for e in summary["quick_evals"]] == [2, 4]  # kept across the resume
    for (name, x), (_, y) in zip(straight.state_dict().items(), resumed.state_dict().items(),
                                 strict=True):
        assert torch.equal(x, y), name


def test_compare_with_itself_is_no_gain(stand_ins: tuple[Path, Path]) -> None:
    plain = evaluation.load_vq(PLAIN, stand_ins[0])
    metrics = evaluation.evaluate_vq(plain, n=12)
    same = evaluation.compare_with_base(plain, plain, metrics, n=12)
    assert same["closer_to_one_share"] == 0.0 and same["sharpness_margin"] == 0.0
    assert same["sharpness_error_ratio"] == 1.0  # keeps all of its own sharpness error
    assert same["same_tokens_share"] == 1.0 and same["psnr_cost_db"] == 0.0
    assert same["vqvae_sharpness"] == metrics["sharpness"]


def test_targets_of_the_vqgan_need_the_comparison() -> None:
    good = {"psnr": 30.0, "agreement": 0.97, "code_share": 0.7, "sharpness": 0.98,
            "vqvae_sharpness": 0.8, "closer_to_one_share": 0.9, "sharpness_margin": 0.12,
            "sharpness_error_ratio": 0.4}
    assert all(evaluation.check_targets(GAN, good).values())
    assert "sharper than shapes-vqvae-f8" not in evaluation.check_targets(GAN, good)
    uncompared = {k: v for k, v in good.items()
                  if k not in ("closer_to_one_share", "sharpness_margin", "vqvae_sharpness",
                               "sharpness_error_ratio")}
    checks = evaluation.check_targets(GAN, uncompared)
    assert not checks["closer_to_one_share >= 0.8"] and not checks["sharpness_error_ratio <= 0.5"]
    assert not evaluation.check_targets(GAN, {**good, "sharpness_error_ratio": 0.51})[
        "sharpness_error_ratio <= 0.5"]
    assert not evaluation.check_targets(GAN, {**good, "closer_to_one_share": 0.79})[
        "closer_to_one_share >= 0.8"]
    assert not evaluation.check_targets(PLAIN, {**good, "agreement": 0.94})["agreement >= 0.95"]
    # the f4 VQGAN keeps its own comparison
    assert evaluation.check_targets("shapes-vqgan", {**good, "agreement": 0.99})[
        "sharper than shapes-vqvae"]


def test_eval_writes_the_card_template_and_exits_1_on_a_miss(
        stand_ins: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plain_dir, gan_dir = (tmp_path / m for m in (PLAIN, GAN))
    shutil.copytree(stand_ins[0], plain_dir)
    shutil.copytree(stand_ins[1], gan_dir)
    (gan_dir / "MODEL_CARD.md").unlink()  # a run's export has no card: the template is used
    code = evaluation.main(GAN, ["--folder", str(gan_dir), "--base-folder", str(plain_dir),
                                 "--n", "20", "--write", "--json"])
    assert code == 1  # untrained: every target missed
    printed = json.loads(capsys.readouterr().out.split("\nwrote ")[0])
    metrics = json.loads((gan_dir / "metrics.json").read_text())
    assert printed["psnr"] == metrics["psnr"] and metrics["grid"] == [4, 4]
    assert metrics["compression"] == pytest.approx(24576 / (16 * 9), abs=0.1)
    assert metrics["same_tokens_share"] == 1.0  # the stand-in VQGAN has the VQ-VAE's encoder
    assert metrics["vqvae_model"] == str(plain_dir) and not metrics["passed"]
    assert metrics["targets"]["closer_to_one_share >= 0.8"] is False
    card = (gan_dir / "MODEL_CARD.md").read_text()
    template = (TEMPLATES / GAN / "MODEL_CARD.md").read_text()
    head = template.split(evaluation.CARD_START)[0]
    assert card.startswith(head) and card.endswith(template.split(evaluation.CARD_END)[1])
    block = card.split(evaluation.CARD_START)[1].split(evaluation.CARD_END)[0]
    assert "Not measured yet" not in block
    assert f"| {metrics['psnr']} |" in block and f"{metrics['closer_to_one_share']:.1%}" in block
    assert "4 x 4 tokens, one per 8 x 8 px patch" in block and "MISSED" in block
    assert f"vs 16 tokens x 9 bits = {metrics['compression']}x" in " ".join(block.split())
    # written again: the markers stay, one block
    assert evaluation.main(PLAIN, ["--folder", str(plain_dir), "--n", "20", "--write"]) == 1
    evaluation.main(PLAIN, ["--folder", str(plain_dir), "--n", "20", "--write"])
    card = (plain_dir / "MODEL_CARD.md").read_text()
    assert card.count(evaluation.CARD_START) == 1 and card.count(evaluation.CARD_END) == 1
    assert "This folder holds no `training.json`" in card


def test_a_card_without_markers_is_refused() -> None:
    with pytest.raises(UserError, match="no <!-- metrics"):
        evaluation.fill_card("# a card\n\nno markers\n", "block")


@pytest.mark.parametrize("model_id", tk.PAIRS["f8"])
def test_shipped_card_templates(model_id: str) -> None:
    """The f8 cards are written by hand around the markers; until `eval --write` has measured the
    shipped model, nothing between them is a figure."""
    folder = TEMPLATES / model_id
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.count(evaluation.CARD_START) == 1 and card.count(evaluation.CARD_END) == 1
    block = card.split(evaluation.CARD_START)[1].split(evaluation.CARD_END)[0]
    if not (folder / "metrics.json").is_file():
        assert "Not measured yet" in block and "|" not in block
    else:
        metrics = json.loads((folder / "metrics.json").read_text())
        assert f"| {metrics['psnr']} |" in block
    assert f"python -m mmstudio eval {model_id} --write" in card


def test_tokenize_cli_with_the_f8_models(stand_ins: tuple[Path, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    from mmstudio.cli import main

    example = REPO_ROOT / "assets" / "examples" / "shapes-red-circle.png"
    empty = tmp_path / "empty-assets"
    (empty / "models").mkdir(parents=True)
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(empty))
    assert main(["tokenize", "--model", GAN, str(example), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no weights in" in err and f"python -m mmstudio train {GAN}" in err
    assert "\n" not in err  # one line, no traceback
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(stand_ins[0].parent.parent))
    for model_id in (PLAIN, GAN):
        assert main(["tokenize", "--model", model_id, str(example), "--out",
                     str(tmp_path / model_id), "--json"]) == 0
        record = json.loads(capsys.readouterr().out)[0]
        assert np.asarray(record["tokens"]).shape == (4, 4) and record["compression"] == 170.7
        assert record["bits_tokens"] == 144 and Path(record["reconstruction"]).is_file()
