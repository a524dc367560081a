"""Training never touches the shipped models unless asked, and --resume without a checkpoint
says so before any work (shapes-vqvae/vqgan, shapes-clip, shapes-unet, shapes-vae)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from mmstudio.config import REPO_ROOT
from mmstudio.errors import UserError
from mmstudio.training import TRAINERS

ASSETS = (REPO_ROOT / "assets").resolve()


@pytest.mark.parametrize("model_id", ["shapes-vqvae", "shapes-vqgan", "shapes-clip",
                                      "shapes-unet"])
def test_default_out_is_the_run_folder(model_id: str, tmp_path: Path) -> None:
    module = importlib.import_module(TRAINERS[model_id])
    argv = ["--run", str(tmp_path / "run")]
    args = (module.parse_args(model_id, argv) if model_id.startswith("shapes-vq")
            else module.parse_args(argv))
    if model_id == "shapes-clip":  # its main fills --out, as the others' parse_args do
        args.out = args.out or Path(args.run) / "export"
    assert Path(args.out) == tmp_path / "run" / "export"
    assert ASSETS not in Path(args.out).resolve().parents


@pytest.mark.parametrize("model_id", ["shapes-vqvae", "shapes-vqgan", "shapes-clip",
                                      "shapes-unet", "shapes-vae"])
def test_resume_without_a_checkpoint_says_so(model_id: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    from mmstudio.cli import main

    run = tmp_path / "no-run-here"
    code = main(["train", model_id, "--resume", "--run", str(run), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: --resume: there is no checkpoint in ") and str(run) in err
    assert "\n" not in err
    assert not (run / "export").exists()


def test_resume_with_a_checkpoint_folder_but_no_state_is_refused(tmp_path: Path) -> None:
    from mmstudio.training.checkpoint import require_checkpoint

    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "vq.safetensors").write_bytes(b"half-written")
    with pytest.raises(UserError, match="no checkpoint in"):
        require_checkpoint(tmp_path / "checkpoint")
