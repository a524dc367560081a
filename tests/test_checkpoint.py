"""Resumable checkpoints: save, reload, and training continues exactly."""

from __future__ import annotations

from pathlib import Path

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
