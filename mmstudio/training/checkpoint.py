"""Resumable training checkpoints in safetensors (never pickle) and a time-based save cadence.

A checkpoint is a folder holding, per named module and optimizer, a ``.safetensors`` file of its
tensors, plus ``state.json`` (step, RNG seeds, anything JSON). Optimizer state is flattened into
tensors (``state.<param index>.<key>``) with its non-tensor parts in ``state.json``. A save
replaces the previous checkpoint atomically (``save_checkpoint``): an interrupted save never
loses or corrupts the last checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mmstudio.errors import UserError


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
    """Write a new checkpoint into ``folder``, replacing the one there atomically.

    The new tensors go to files of their own (named with a fresh tag) and are fsynced; then
    ``state.json``, which names the files of the current checkpoint, is written to a temporary
    file, fsynced and renamed over the old one (``os.replace``: atomic), and the folder is
    fsynced. Only then are the old checkpoint's files deleted. A crash or a full disk at any
    moment leaves either the old checkpoint or the new one, complete."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{time.time_ns():x}"
    files: dict[str, str] = {}
    meta: dict[str, Any] = {"state": state, "optimizers": {}, "files": files}
    for name, module in modules.items():
        tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        files[name] = _write_tensors(folder, f"{name}.{tag}.safetensors", tensors)
    for name, optimizer in optimizers.items():
        tensors, optimizer_meta = _optimizer_tensors(optimizer)
        files[f"optim-{name}"] = _write_tensors(folder, f"optim-{name}.{tag}.safetensors",
                                                tensors)
        meta["optimizers"][name] = optimizer_meta
    staging = folder / "state.json.tmp"
    with open(staging, "w") as out:
        out.write(json.dumps(meta))
        out.flush()
        os.fsync(out.fileno())
    os.replace(staging, folder / "state.json")  # the commit point
    _fsync_dir(folder)
    current = set(files.values())
    for old in folder.glob("*.safetensors"):  # the previous checkpoint's (and older formats')
        if old.name not in current:
            old.unlink(missing_ok=True)
    shutil.rmtree(folder.with_name(folder.name + ".tmp"), ignore_errors=True)  # older format


def _write_tensors(folder: Path, name: str, tensors: dict[str, torch.Tensor]) -> str:
    path = folder / name
    save_file(tensors, path)
    with open(path, "rb") as written:
        os.fsync(written.fileno())
    return name


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


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
        module.load_state_dict(load_file(_file(folder, meta, name)))
    for name, optimizer in optimizers.items():
        _load_optimizer(optimizer, load_file(_file(folder, meta, f"optim-{name}")),
                        meta["optimizers"][name])
    return meta["state"]


def checkpoint_file(folder: Path, key: str) -> Path:
    """The safetensors file of a module (``"vq"``) or optimizer (``"optim-adam"``) in the
    checkpoint of ``folder``."""
    return _file(Path(folder), json.loads((Path(folder) / "state.json").read_text()), key)


def _file(folder: Path, meta: dict[str, Any], key: str) -> Path:
    files = meta.get("files") or {}  # absent in checkpoints written before files were tagged
    return folder / files.get(key, f"{key}.safetensors")


def require_checkpoint(folder: Path) -> None:
    """For ``--resume``: say so, before any training, when ``folder`` holds no checkpoint."""
    if not (Path(folder) / "state.json").is_file():
        raise UserError(f"--resume: there is no checkpoint in {folder} (start without --resume, "
                        "or give --run the folder of the run to continue)")


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
