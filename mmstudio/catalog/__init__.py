"""The catalog: what models exist, where their weights come from, and whether they can load here.

Records live in ``models.toml`` beside this file. An embedded model's weights are a folder under
``Settings.assets``; a hub model's are a Hugging Face repo (+ revision, optional subfolder),
resolved to a local snapshot folder before the same loader reads it: both sources run one code.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mmstudio.config import Settings
from mmstudio.errors import ModelUnavailable, UserError

CATALOG_FILE = Path(__file__).with_name("models.toml")
PICKLE_PATTERNS = ["*.bin", "*.ckpt", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.msgpack", "*.h5"]


@dataclass(frozen=True)
class ModelSpec:
    id: str
    tasks: tuple[str, ...]
    source: Literal["assets", "hub", "local"]
    loader: str
    path: str | None = None  # assets: relative to Settings.assets; local: absolute folder
    repo: str | None = None  # hub repo id
    revision: str = "main"
    subfolder: str | None = None
    resolution: int | None = None
    sample_rate: int | None = None
    frames: int | None = None
    steps: int | None = None
    guidance: float | None = None
    memory_gb: float = 0.1
    gpu_recommended: bool = False
    license: str = "unknown"
    description: str = ""
    allow_patterns: tuple[str, ...] | None = None
    ignore_patterns: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def embedded(self) -> bool:
        return self.source == "assets"

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gb * 10**9)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tasks"] = list(self.tasks)
        return data


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str
    folder: Path | None = None  # where the weights are, when they are here


def _spec_from_record(record: dict[str, Any]) -> ModelSpec:
    record = dict(record)
    for key in ("tasks", "allow_patterns", "ignore_patterns"):
        if record.get(key) is not None:
            record[key] = tuple(record[key])
    return ModelSpec(**record)


def _read_metrics(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


class Catalog:
    """Lookup and availability over a list of ``ModelSpec``."""

    def __init__(self, specs: list[ModelSpec], settings: Settings) -> None:
        ids = [spec.id for spec in specs]
        duplicates = {i for i in ids if ids.count(i) > 1}
        if duplicates:
            raise ValueError(f"duplicate catalog ids: {sorted(duplicates)}")
        self.settings = settings
        self._specs = {spec.id: self._with_metrics(spec) for spec in specs}

    @classmethod
    def load(cls, settings: Settings, path: Path = CATALOG_FILE) -> Catalog:
        records = tomllib.loads(path.read_text())["model"]
        return cls([_spec_from_record(r) for r in records], settings)

    def _with_metrics(self, spec: ModelSpec) -> ModelSpec:
        if spec.source != "assets" or spec.path is None:
            return spec
        metrics = _read_metrics(self.settings.assets / spec.path)
        return ModelSpec(**{**asdict(spec), "metrics": metrics}) if metrics else spec

    def add(self, spec: ModelSpec) -> None:
        """Register a model at run time (e.g. a local folder); replaces an entry of the same id."""
        self._specs[spec.id] = self._with_metrics(spec)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._specs

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self._specs[model_id]
        except KeyError:
            known = ", ".join(self._specs)
            raise UserError(f"unknown model '{model_id}'; known models: {known}") from None

    def for_task(self, task: str) -> list[ModelSpec]:
        return [spec for spec in self._specs.values() if task in spec.tasks]

    def default_for(self, task: str) -> str | None:
        wanted = self.settings.default_models.get(task)
        if wanted in self._specs:
            return wanted
        specs = self.for_task(task)
        return specs[0].id if specs else None

    # ------------------------------------------------------------------ availability
    def availability(self, model_id: str) -> Availability:
        """Whether the weights can be had here, and why not; never touches the network."""
        spec = self.get(model_id)
        if spec.source in ("assets", "local"):
            return self._local_availability(spec)
        return self._hub_availability(spec)

    def _local_availability(self, spec: ModelSpec) -> Availability:
        assert spec.path is not None, f"{spec.id}: a local model needs a path"
        folder = Path(spec.path) if spec.source == "local" else self.settings.assets / spec.path
        if spec.subfolder:
            folder = folder / spec.subfolder
        if not folder.is_dir() or not any(folder.rglob("*.safetensors")):
            hint = f" (train it with `python -m mmstudio train {spec.id}`)" if spec.embedded else ""
            return Availability(False, f"no weights in {folder}{hint}")
        return Availability(True, f"embedded, {folder}", folder)

    def _hub_availability(self, spec: ModelSpec) -> Availability:
        folder = cached_snapshot(spec, self.settings.hub_cache)
        if folder is not None:
            return Availability(True, f"in the local Hugging Face cache ({folder})", folder)
        if self.settings.offline:
            return Availability(
                False,
                f"not in the local Hugging Face cache and offline mode is on (HF_HUB_OFFLINE / "
                f"MMSTUDIO_OFFLINE); download it once on a machine with network: "
                f"`python -m mmstudio download {spec.id}`",
            )
        return Availability(
            True, f"downloads about {spec.memory_gb:.1f} GB from the Hugging Face Hub on first use"
        )

    def resolve(self, model_id: str) -> Path:
        """The local folder holding the model's weights, downloading hub weights when allowed."""
        spec = self.get(model_id)
        status = self.availability(model_id)
        if not status.available:
            raise ModelUnavailable(model_id, status.reason)
        if status.folder is not None:
            return status.folder
        return download_snapshot(spec, self.settings.hub_cache)


def _hub_patterns(spec: ModelSpec) -> dict[str, Any]:
    return {
        "allow_patterns": list(spec.allow_patterns) if spec.allow_patterns else None,
        "ignore_patterns": sorted(set(spec.ignore_patterns) | set(PICKLE_PATTERNS)),
    }


def cached_snapshot(spec: ModelSpec, cache_dir: Path | None = None) -> Path | None:
    """The snapshot folder of a hub model in the local cache, or None; no network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    assert spec.repo is not None, f"{spec.id}: a hub model needs a repo"
    try:
        folder = Path(
            snapshot_download(
                spec.repo,
                revision=spec.revision,
                cache_dir=cache_dir,
                local_files_only=True,
                **_hub_patterns(spec),
            )
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    target = folder / spec.subfolder if spec.subfolder else folder
    if not target.is_dir() or not any(target.rglob("*.safetensors")):
        return None
    return target


def download_snapshot(spec: ModelSpec, cache_dir: Path | None = None) -> Path:
    """Download a hub model's safetensors and configs (never pickles) and return its folder."""
    from huggingface_hub import snapshot_download

    assert spec.repo is not None
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        folder = Path(
            snapshot_download(
                spec.repo, revision=spec.revision, cache_dir=cache_dir, **_hub_patterns(spec)
            )
        )
    except Exception as exc:  # network errors come in many types; the reason is what matters
        reason = f"download from the Hugging Face Hub failed: {exc}"
        raise ModelUnavailable(spec.id, reason) from exc
    return folder / spec.subfolder if spec.subfolder else folder
