"""ModelManager: finds, loads, places, caches and evicts models.

One instance per app, passed to the UI (never a module global). Models load lazily on first use,
from the catalog, through the loader its record names; they are placed by ``devices.plan_placement``
with Accelerate; an LRU cache keeps the loaded weights under ``Settings.max_memory``. Thread safety:
a lock per model id makes concurrent first requests load once; weights are shared read-only, and
everything mutable (schedulers, generators) is made per request by the pipelines.

Borrowing: a pipeline holds its models with ``use`` for the whole run. A borrowed model is never
evicted or unloaded, so a run cannot lose its weights halfway and a second request for the same
model finds the same copy (never a second one). Finding a model and borrowing it happen under one
lock, so no eviction can come in between. When the models borrowed at once do not fit the budget
together, the newcomer still loads (a run is not refused for others' runs) and the cache shrinks
back under the budget as soon as they are returned.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo, Placement, discover_devices, plan_placement
from mmstudio.errors import ModelUnavailable, UserError

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
# One model construction at a time in the process: diffusers and transformers build modules under
# accelerate's ``init_empty_weights``, which swaps ``nn.Module.register_parameter`` globally; two
# loads at once (of different models) can restore each other's patch and leave every module made
# afterwards on the meta device. Loads of different models still overlap in everything else.
_CONSTRUCTION = threading.Lock()


@dataclass
class LoadedModel:
    """One replica of a model on its device(s). ``components`` are shared read-only."""

    spec: ModelSpec
    components: dict[str, Any]
    device: str
    dtype: str
    nbytes: int
    load_seconds: float
    in_use: int = 0

    def __getitem__(self, name: str) -> Any:
        return self.components[name]


@dataclass
class _Entry:
    replicas: list[LoadedModel]
    placement: Placement
    last_used: float = field(default_factory=time.monotonic)
    _round_robin: Iterator[int] = field(default_factory=lambda: itertools.count())

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.replicas)

    @property
    def in_use(self) -> int:
        return sum(r.in_use for r in self.replicas)


class ModelInUse(UserError):
    """An unload asked for while runs are borrowing the model."""

    def __init__(self, model_id: str, borrowers: int) -> None:
        super().__init__(f"'{model_id}' is in use by {borrowers} running request(s); it is not "
                         "unloaded while they run (the cache evicts it once they are done and "
                         "the memory is needed)")
        self.model_id = model_id
        self.borrowers = borrowers


class ModelManager:
    def __init__(
        self,
        settings: Settings | None = None,
        catalog: Catalog | None = None,
        devices: list[DeviceInfo] | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.catalog = catalog or Catalog.load(self.settings)
        self._devices = devices
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # LRU order: oldest first
        self._lock = threading.RLock()  # guards _entries and the per-model lock table
        self._model_locks: dict[str, threading.Lock] = {}
        self.load_count: dict[str, int] = {}  # how many times each model was loaded (for tests)

    # ------------------------------------------------------------------ devices
    @property
    def devices(self) -> list[DeviceInfo]:
        if self._devices is None:
            self._devices = discover_devices(self.settings.devices)
        return self._devices

    # ------------------------------------------------------------------ loading
    def get(self, model_id: str) -> LoadedModel:
        """The loaded model (least busy replica), loading it on first use.

        Not borrowed: it may be evicted as soon as this returns. Code that runs the model holds
        it with ``use`` instead."""
        return self._acquire(model_id, borrow=False)

    @contextlib.contextmanager
    def use(self, model_id: str) -> Iterator[LoadedModel]:
        """Borrow a replica for one request; it is not evicted or unloaded while borrowed."""
        model = self._acquire(model_id, borrow=True)
        try:
            yield model
        finally:
            with self._lock:
                model.in_use -= 1
                if not model.in_use:  # models loaded past the budget while this one was held
                    self._evict(keep=None)

    def is_loaded(self, model_id: str) -> bool:
        with self._lock:
            return model_id in self._entries

    def _acquire(self, model_id: str, borrow: bool) -> LoadedModel:
        """Find (or load) the model and pick a replica, borrowing it in the same critical section,
        so that no eviction can fall between finding and touching."""
        spec = self.catalog.get(model_id)  # unknown id -> UserError before any lock
        while True:
            with self._lock:
                entry = self._entries.get(model_id)
                if entry is not None:
                    return self._touch(model_id, entry, borrow)
                model_lock = self._model_locks.setdefault(model_id, threading.Lock())
            with model_lock:  # one loader per model; others wait here and then find it cached
                with self._lock:
                    if model_id in self._entries:
                        continue  # loaded meanwhile: take it under the lock, as above
                entry = self._load(spec)
                with self._lock:
                    self._entries[model_id] = entry
                    model = self._touch(model_id, entry, borrow)
                    self._evict(keep=model_id)
                    return model

    def _touch(self, model_id: str, entry: _Entry, borrow: bool) -> LoadedModel:
        """Most recently used now; the least busy replica, borrowed when asked. Holds the lock."""
        self._entries.move_to_end(model_id)
        entry.last_used = time.monotonic()
        model = min(entry.replicas, key=lambda r: (r.in_use, next(entry._round_robin)))
        if borrow:
            model.in_use += 1
        return model

    def _load(self, spec: ModelSpec) -> _Entry:
        import torch

        if self.settings.threads and torch.get_num_threads() != self.settings.threads:
            torch.set_num_threads(self.settings.threads)

        from mmstudio.loaders import LOADERS, nbytes

        folder = self.catalog.resolve(spec.id)
        loader = LOADERS.get(spec.loader)
        if loader is None:
            raise ModelUnavailable(spec.id, f"no loader named '{spec.loader}'")
        placement = plan_placement(spec.memory_bytes, self.devices)
        with self._lock:
            self._evict(keep=None, incoming=spec.memory_bytes)
        dtype = getattr(torch, placement.dtype)
        replicas = []
        for device in placement.devices if placement.kind != "balanced" else ("balanced",):
            start = time.perf_counter()
            try:
                with _CONSTRUCTION:
                    components = loader(Path(folder), spec, dtype)
            except ModelUnavailable:
                raise
            except Exception as exc:  # corrupt or incomplete weights: say what and where
                raise ModelUnavailable(spec.id, f"loading {folder} failed: {exc}") from exc
            _place(components, placement, device)
            replicas.append(
                LoadedModel(
                    spec, components, device, placement.dtype, nbytes(components),
                    time.perf_counter() - start,
                )
            )
        self.load_count[spec.id] = self.load_count.get(spec.id, 0) + 1
        log.info("loaded %s on %s", spec.id, placement.describe())
        return _Entry(replicas, placement)

    # ------------------------------------------------------------------ eviction
    def _evict(self, keep: str | None, incoming: int = 0) -> None:
        """Drop least recently used models (not borrowed, not ``keep``) until under budget.
        Holds the lock."""
        budget = self.settings.max_memory
        evicted = False
        for model_id in list(self._entries):
            if sum(e.nbytes for e in self._entries.values()) + incoming <= budget:
                break
            entry = self._entries[model_id]
            if model_id == keep or entry.in_use:
                continue
            del self._entries[model_id]
            evicted = True
            log.info("evicted %s (memory budget %d bytes)", model_id, budget)
        if evicted:
            _empty_gpu_cache()

    def unload(self, model_id: str) -> bool:
        """Drop a loaded model; False when it was not loaded. A model that runs are borrowing
        stays: ``ModelInUse`` says so (it is evicted normally once they are done)."""
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is None:
                return False
            if entry.in_use:
                raise ModelInUse(model_id, entry.in_use)
            del self._entries[model_id]
        _empty_gpu_cache()
        return True

    def unload_all(self) -> list[str]:
        """Drop every model that no run is borrowing; returns the ids kept because they are."""
        with self._lock:
            kept = [model_id for model_id, entry in self._entries.items() if entry.in_use]
            for model_id in [m for m in self._entries if m not in kept]:
                del self._entries[model_id]
        _empty_gpu_cache()
        return kept

    # ------------------------------------------------------------------ reporting
    def status(self) -> list[dict[str, Any]]:
        """One row per catalog model: availability, and where and how big it is when loaded."""
        rows = []
        with self._lock:
            entries = dict(self._entries)
            in_use = {model_id: entry.in_use for model_id, entry in entries.items()}
        for spec in self.catalog:
            availability = self.catalog.availability(spec.id)
            entry = entries.get(spec.id)
            rows.append(
                {
                    "id": spec.id,
                    "tasks": list(spec.tasks),
                    "source": spec.source if spec.source != "assets" else "embedded",
                    "available": availability.available,
                    "reason": availability.reason,
                    "loaded": entry is not None,
                    "placement": entry.placement.describe() if entry else "",
                    "memory_mb": round(entry.nbytes / 2**20, 1) if entry else 0.0,
                    "in_use": in_use.get(spec.id, 0),
                    "license": spec.license,
                    "metrics": spec.metrics,
                }
            )
        return rows

    def memory_used(self) -> int:
        with self._lock:
            return sum(e.nbytes for e in self._entries.values())

    # ------------------------------------------------------------------ ZeroGPU
    def gpu(self, fn: F, duration: int = 60) -> F:
        """Wrap GPU work with ``spaces.GPU`` on Hugging Face ZeroGPU; unchanged elsewhere."""
        try:
            import spaces  # type: ignore[import-not-found]
        except ImportError:
            return fn
        return spaces.GPU(duration=duration)(fn)


def _place(components: dict[str, Any], placement: Placement, device: str) -> None:
    """Move every module of ``components`` to ``device``, or dispatch it across GPUs."""
    from mmstudio.loaders import torch_modules

    for module in torch_modules(components).values():
        module.eval().requires_grad_(False)
        if placement.kind == "balanced":
            from accelerate import dispatch_model, infer_auto_device_map

            device_map = infer_auto_device_map(module, max_memory=placement.max_memory)
            dispatch_model(module, device_map=device_map)
        else:
            module.to(device)


def _empty_gpu_cache() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
