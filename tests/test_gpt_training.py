"""`python -m mmstudio train shapes-gpt`: a few steps on world data, export, reload, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmstudio.errors import UserError
from mmstudio.training import gpt as trainer

TINY = ["--batch", "4", "--layers", "1", "--width", "32", "--heads", "2", "--warmup", "2",
        "--check-prompts", "2", "--save-minutes", "100"]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_a_short_run_exports_a_folder_the_loader_reads(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert trainer.main("shapes-gpt", [*TINY, "--steps", "3", "--check-every", "3",
                                       "--run", str(run)]) == 0
    export = run / "export"
    training = json.loads((export / "training.json").read_text())
    assert training["step"] == 3 and training["vq"] == "shapes-vqvae"
    assert json.loads((export / "vq.json").read_text()) == {"model_id": "shapes-vqvae"}
    assert all(t.dtype == torch.float16 for t in _weights(export).values())
    assert (export / "model.safetensors").stat().st_size < 10 * 2**20

    from mmstudio.catalog import ModelSpec
    from mmstudio.loaders import load_gpt_prior

    spec = ModelSpec("local-gpt", ("token_prior",), "local", "gpt_prior", path=str(export))
    components = load_gpt_prior(export, spec, torch.float32)
    stream = components["stream"]
    assert stream == trainer.shapes_stream()
    assert components["vq_id"] == "shapes-vqvae"
    gpt = components["gpt"]
    assert gpt.config.vocab_size == stream.vocab_size and gpt.config.n_positions == stream.length
    assert gpt.lm_head.weight.data_ptr() == gpt.transformer.wte.weight.data_ptr()  # still tied


def test_a_stopped_and_resumed_run_equals_a_straight_one(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = [*TINY, "--steps", "4", "--check-every", "0"]
    assert trainer.main("shapes-gpt", [*common, "--run", str(straight)]) == 0
    assert trainer.main("shapes-gpt", [*common, "--run", str(resumed), "--stop-at", "2"]) == 0
    state = json.loads((resumed / "checkpoint" / "state.json").read_text())
    assert state["state"]["step"] == 2
    assert trainer.main("shapes-gpt", [*common, "--run", str(resumed), "--resume"]) == 0
    training = json.loads((resumed / "export" / "training.json").read_text())
    assert training["step"] == 4 and [h["from_step"] for h in training["history"]] == [0, 2]
    a, b = _weights(straight / "export"), _weights(resumed / "export")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_without_a_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no checkpoint"):
        trainer.main("shapes-gpt", [*TINY, "--resume", "--run", str(tmp_path / "none")])
