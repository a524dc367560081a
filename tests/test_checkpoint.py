"""Resumable checkpoints: save, reload, and training continues exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmstudio.training.checkpoint import load_checkpoint, save_checkpoint


def make() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=generator)
    loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_resume_continues_identically(tmp_path: Path) -> None:
    model, optimizer = make()
    for i in range(3):
        step(model, optimizer, i)
    save_checkpoint(tmp_path / "ckpt", {"model": model}, {"opt": optimizer}, {"step": 3})
    for i in range(3, 6):
        step(model, optimizer, i)

    resumed, resumed_optimizer = make()
    state = load_checkpoint(tmp_path / "ckpt", {"model": resumed}, {"opt": resumed_optimizer})
    assert state == {"step": 3}
    for i in range(3, 6):
        step(resumed, resumed_optimizer, i)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert load_checkpoint(tmp_path / "missing", {"model": resumed}, {}) is None


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("fail_at", ["tensors", "commit"])
def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, fail_at: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A save that dies while writing tensors (disk full) or at the rename leaves the last
    checkpoint whole and loadable; nothing of the old one was deleted first."""
    from mmstudio.training import checkpoint

    model, optimizer = make()
    step(model, optimizer, 0)
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, {"model": model}, {"opt": optimizer}, {"step": 1})
    saved = _params(model)
    step(model, optimizer, 1)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file" if fail_at == "tensors" else "os",
                        disk_full if fail_at == "tensors" else _NoReplace())
    with pytest.raises(OSError):
        save_checkpoint(folder, {"model": model}, {"opt": optimizer}, {"step": 2})
    monkeypatch.undo()

    resumed, resumed_optimizer = make()
    assert load_checkpoint(folder, {"model": resumed}, {"opt": resumed_optimizer}) == {"step": 1}
    assert all(torch.equal(a, b) for a, b in zip(_params(resumed), saved, strict=True))
    # the next save succeeds and leaves only its own files
    save_checkpoint(folder, {"model": model}, {"opt": optimizer}, {"step": 2})
    assert len(list(folder.glob("*.safetensors"))) == 2
    assert load_checkpoint(folder, {"model": resumed}, {"opt": resumed_optimizer}) == {"step": 2}


class _NoReplace:
    """``os`` as the checkpoint module sees it, with a rename that fails (the crash point)."""

    def __getattr__(self, name: str):
        import os

        if name == "replace":
            def replace(*args, **kwargs):
                raise OSError(5, "Input/output error")
            return replace
        return getattr(os, name)


def test_checkpoints_of_the_older_layout_still_load(tmp_path: Path) -> None:
    """Runs started before tagged files (``model.safetensors`` + a state.json without names)
    resume, and their first new save replaces the old files."""
    import json

    from safetensors.torch import save_file

    from mmstudio.training.checkpoint import _optimizer_tensors

    model, optimizer = make()
    step(model, optimizer, 0)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              folder / "model.safetensors")
    tensors, meta = _optimizer_tensors(optimizer)
    save_file(tensors, folder / "optim-opt.safetensors")
    (folder / "state.json").write_text(json.dumps({"state": {"step": 1},
                                                   "optimizers": {"opt": meta}}))
    resumed, resumed_optimizer = make()
    assert load_checkpoint(folder, {"model": resumed}, {"opt": resumed_optimizer}) == {"step": 1}
    assert all(torch.equal(a, b) for a, b in zip(_params(resumed), _params(model), strict=True))
    save_checkpoint(folder, {"model": resumed}, {"opt": resumed_optimizer}, {"step": 1})
    assert not (folder / "model.safetensors").exists()
    assert load_checkpoint(folder, {"model": model}, {"opt": optimizer}) == {"step": 1}
