"""Resumable training checkpoints in safetensors (never pickle) and a time-based save cadence.

A checkpoint is a folder holding, per named module and optimizer, a ``.safetensors`` file of its
tensors, plus ``state.json`` (step, RNG seeds, anything JSON). Optimizer state is flattened into
tensors (``state.<param index>.<key>``) with its non-tensor parts in ``state.json``. Writes go to a
temporary folder renamed into place, so an interrupted save never corrupts the last checkpoint.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    folder: Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
) -> None:
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta: dict[str, Any] = {"state": state, "optimizers": {}}
    for name, module in modules.items():
        tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(tensors, tmp / f"{name}.safetensors")
    for name, optimizer in optimizers.items():
        tensors, optimizer_meta = _optimizer_tensors(optimizer)
        save_file(tensors, tmp / f"optim-{name}.safetensors")
        meta["optimizers"][name] = optimizer_meta
    (tmp / "state.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_checkpoint(
    folder: Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> dict[str, Any] | None:
    """Restore modules and optimizers in place; returns the saved ``state``, or None if absent."""
    folder = Path(folder)
    if not (folder / "state.json").is_file():
        return None
    meta = json.loads((folder / "state.json").read_text())
    for name, module in modules.items():
        module.load_state_dict(load_file(folder / f"{name}.safetensors"))
    for name, optimizer in optimizers.items():
        _load_optimizer(optimizer, load_file(folder / f"optim-{name}.safetensors"),
                        meta["optimizers"][name])
    return meta["state"]


class Every:
    """True once every ``seconds`` of wall time: ``if save_timer(): save_checkpoint(...)``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.seconds:
            self._last = now
            return True
        return False
