"""Training smoke tests for shapes-vqvae / shapes-vqgan: a few steps on world data with a narrow
model, export, reload (identical outputs), exact resume from a checkpoint, the VQGAN fine-tune
with its critic, and the codebook mechanics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mmstudio.errors import UserError
from mmstudio.pipelines import tokenize as tk
from mmstudio.training import vq as training
from mmstudio.training.checkpoint import checkpoint_file
from mmstudio.worlds import shapes
from mmstudio.worlds.datasets import eval_set

NARROW = ["--channels", "8,8,16", "--batch", "4", "--no-progress", "--no-compile",
          "--eval-every", "0", "--restart-every", "2", "--log-every", "1"]


def run(model_id: str, tmp: Path, *extra: str) -> tuple[torch.nn.Module, dict]:
    args = training.parse_args(model_id, [*NARROW, "--run", str(tmp / "run"), "--out",
                                          str(tmp / "out"), *extra])
    return training.train(args)


@pytest.fixture(scope="module")
def renders() -> np.ndarray:
    return np.stack([item.sample for item in eval_set(shapes, 4)])


def test_train_export_reload_identical(tmp_path: Path, renders: np.ndarray) -> None:
    vq, summary = run("shapes-vqvae", tmp_path, "--steps", "3")
    assert summary["steps"] == 3 and summary["codebook"]["l2_normalised"]
    assert summary["adversarial"] is None
    folder = training.export(vq, summary, tmp_path / "out")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "diffusion_pytorch_model.safetensors", "training.json"]
    config = json.loads((folder / "config.json").read_text())
    assert config["lookup_from_codebook"] and not config["mid_block_add_attention"]
    assert config["num_vq_embeddings"] == 512 and config["block_out_channels"] == [8, 8, 16]
    from diffusers import VQModel

    reloaded = VQModel.from_pretrained(folder, use_safetensors=True).eval()
    vq.eval()
    a, b = tk.encode_indices(vq, renders), tk.encode_indices(reloaded, renders)
    assert a.shape == (4, 8, 8) and np.array_equal(a, b)
    assert np.array_equal(tk.decode_indices(vq, a), tk.decode_indices(reloaded, b))
    norms = reloaded.quantize.embedding.weight.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)  # unit-norm codebook
    assert (tmp_path / "run" / "train.log").read_text().count("step ") >= 3


def test_resume_is_exact(tmp_path: Path) -> None:
    straight, _ = run("shapes-vqvae", tmp_path / "a", "--steps", "4")
    run("shapes-vqvae", tmp_path / "b", "--steps", "4", "--stop-at", "2")
    state = json.loads((tmp_path / "b" / "run" / "checkpoint" / "state.json").read_text())
    assert state["state"]["step"] == 2
    resumed, summary = run("shapes-vqvae", tmp_path / "b", "--steps", "4", "--resume")
    assert summary["steps"] == 4
    assert [part["from_step"] for part in summary["history"]] == [0, 2]
    from mmstudio.evaluation.vq import reproduce_commands

    first, second = reproduce_commands("shapes-vqvae", summary)
    assert first.endswith("--stop-at 2") and "--run" not in first
    assert second.startswith("python -m mmstudio train shapes-vqvae") and "--resume" in second
    for (name, x), (_, y) in zip(straight.state_dict().items(), resumed.state_dict().items(),
                                 strict=True):
        assert torch.equal(x, y), name


def test_same_seed_same_model_and_seeded_data(tmp_path: Path) -> None:
    first, _ = run("shapes-vqvae", tmp_path / "a", "--steps", "2", "--seed", "5")
    second, _ = run("shapes-vqvae", tmp_path / "b", "--steps", "2", "--seed", "5")
    for x, y in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(x, y)
    batch = training.batch_for_step(5, 10, 64)
    assert batch.shape == (64, 32, 32, 3)
    assert np.array_equal(batch, training.batch_for_step(5, 10, 64))
    # the training split never holds a held-out pair
    for image in training.batch_for_step(0, 0, 64):
        described = shapes.describe(image)
        assert (described.color, described.shape) not in shapes.HELD_OUT


def test_vqgan_fine_tune_from_the_vqvae(tmp_path: Path, renders: np.ndarray) -> None:
    base, summary = run("shapes-vqvae", tmp_path / "base", "--steps", "2")
    base_folder = training.export(base, summary, tmp_path / "base" / "out")
    vq, summary = run("shapes-vqgan", tmp_path / "gan", "--steps", "3", "--init",
                      str(base_folder), "--disc-start", "1", "--stop-at", "2")
    vq, summary = run("shapes-vqgan", tmp_path / "gan", "--steps", "3", "--init",
                      str(base_folder), "--disc-start", "1", "--resume")
    assert summary["adversarial"]["loss"] == "hinge" and summary["init"] == str(base_folder)
    assert {"g", "w", "d", "edge"} <= set(summary["final_train_stats"])
    checkpoint = tmp_path / "gan" / "run" / "checkpoint"
    assert checkpoint_file(checkpoint, "disc").is_file()
    assert "net.0.weight" in load_file(checkpoint_file(checkpoint, "disc"))
    folder = training.export(vq, summary, tmp_path / "gan" / "out")
    config = json.loads((folder / "config.json").read_text())
    assert config["num_vq_embeddings"] == 512 and config["block_out_channels"] == [8, 8, 16]
    assert tk.encode_indices(vq.eval(), renders).shape == (4, 8, 8)
    with pytest.raises(UserError, match="holds no VQModel"):
        run("shapes-vqgan", tmp_path / "bad", "--steps", "1", "--init", str(tmp_path / "none"))


def test_quantizer_and_dead_code_restart() -> None:
    torch.manual_seed(0)
    codebook = torch.nn.functional.normalize(torch.randn(16, 4), dim=1).requires_grad_()
    h = torch.randn(2, 4, 3, 3, requires_grad=True)
    q = training.quantize(codebook, h)
    assert q.indices.shape == (2, 3, 3) and q.z_q.shape == h.shape
    # cosine nearest neighbour == what diffusers' VectorQuantizer (Euclidean) picks
    from diffusers.models.autoencoders.vae import VectorQuantizer

    library = VectorQuantizer(16, 4, beta=0.25)
    library.embedding.weight.data.copy_(codebook.detach())
    assert torch.equal(library(h.detach())[2][2].view(2, 3, 3), q.indices)
    (q.z_q.sum() + q.codebook_loss + q.commitment_loss).backward()
    assert h.grad is not None and codebook.grad is not None  # straight-through + codebook loss

    model = training.build_vq({**training.ARCHITECTURE, "block_out_channels": [8, 8, 16]})
    usage = training.CodeUsage(512)
    usage.ema[:500] = 0.0  # 500 codes never used
    z = torch.nn.functional.normalize(torch.randn(2, 16, 8, 8), dim=1)
    restarted = usage.restart_dead(model, z, np.random.default_rng(0), threshold=0.03)
    assert restarted == 500 and (usage.ema == 1.0).all()
    weight = model.quantize.embedding.weight
    assert torch.allclose(weight.norm(dim=1)[:500], torch.ones(500), atol=1e-5)


def test_lr_schedule_and_bad_options() -> None:
    assert training.lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert training.lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert training.lr_at(100, 100, 1.0, 10) == pytest.approx(0.05)
    with pytest.raises(UserError, match="--channels needs 3 numbers"):
        training.parse_args("shapes-vqvae", ["--channels", "8,8"])
    with pytest.raises(UserError, match="at least 1"):
        training.parse_args("shapes-vqvae", ["--steps", "0"])
    with pytest.raises(UserError, match="makes shapes-vqvae, shapes-vqgan"):
        training.main("shapes-clip", [])
