"""The model manager under concurrency: borrowed models are never evicted or unloaded, finding and
borrowing cannot be split by an eviction, and no model is loaded twice while it is in use.

The stress test runs many threads over more models than a tiny budget holds, with the interpreter
switching threads every microsecond and loads that take a random few milliseconds, so that the
windows between finding, touching, loading and evicting are hit many times."""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

import pytest

from mmstudio import loaders
from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelInUse, ModelManager
from tests import tiny_models

CPU = [DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)]
MODELS = 4


@pytest.fixture
def slow_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real VQ loader, after a random pause of 0 to 4 ms (widens every race window)."""

    def slow_vq(folder, spec, dtype):
        time.sleep(random.random() * 0.004)
        return loaders.load_vq(folder, spec, dtype)

    monkeypatch.setitem(loaders.LOADERS, "slow_vq", slow_vq)


def catalog(tmp_path: Path, settings: Settings, n: int = MODELS) -> Catalog:
    folder = tiny_models.make_vq(tmp_path / "vq")  # one folder, n catalog entries
    return Catalog([ModelSpec(id=f"m{i}", tasks=("tokenize",), source="local", loader="slow_vq",
                              path=str(folder), resolution=32, memory_gb=0.0)
                    for i in range(n)], settings)


def tiny_budget_manager(tmp_path: Path, offline_settings: Settings) -> tuple[ModelManager, int]:
    models = catalog(tmp_path, offline_settings)
    size = ModelManager(offline_settings, models, CPU).get("m0").nbytes
    settings = Settings(offline=True, assets=offline_settings.assets, max_memory=int(size * 1.5))
    return ModelManager(settings, models, CPU), size


def test_unload_refuses_a_borrowed_model(tmp_path: Path, offline_settings: Settings,
                                         slow_loader: None) -> None:
    manager, _ = tiny_budget_manager(tmp_path, offline_settings)
    with manager.use("m0") as model:
        with pytest.raises(ModelInUse, match="in use by 1 running request"):
            manager.unload("m0")
        assert manager.unload_all() == ["m0"] and manager.is_loaded("m0")
        with manager.use("m0") as again:  # asked again during the run: the same copy
            assert again is model
    assert manager.load_count["m0"] == 1
    assert manager.unload("m0") and not manager.is_loaded("m0")


def test_eviction_skips_borrowed_models_and_catches_up_after(
    tmp_path: Path, offline_settings: Settings, slow_loader: None
) -> None:
    manager, size = tiny_budget_manager(tmp_path, offline_settings)
    with manager.use("m0") as first, manager.use("m1"):  # two borrowed: over budget, both kept
        assert manager.is_loaded("m0") and manager.is_loaded("m1")
        manager.get("m2")  # a third loads (not refused) and evicts nothing borrowed
        assert manager.is_loaded("m0") and manager.is_loaded("m1")
        assert manager.get("m0") is first
    # returned: the cache is back under its budget, keeping the most recently used
    assert manager.memory_used() <= manager.settings.max_memory
    assert manager.memory_used() == size


def test_stress_with_a_tiny_budget(tmp_path: Path, offline_settings: Settings,
                                   slow_loader: None) -> None:
    manager, size = tiny_budget_manager(tmp_path, offline_settings)
    budget = manager.settings.max_memory
    errors: list[BaseException] = []
    held: dict[str, tuple[object, int]] = {}  # model id -> (borrowed object, borrowers)
    held_lock = threading.Lock()
    stop = threading.Event()
    snapshots = [0]

    def borrow(rng: random.Random) -> None:
        model_id = f"m{rng.randrange(MODELS)}"
        with manager.use(model_id) as model:
            with held_lock:
                obj, count = held.get(model_id, (model, 0))
                assert obj is model, f"a second copy of {model_id} while the first is borrowed"
                held[model_id] = (model, count + 1)
            assert manager.is_loaded(model_id), f"{model_id} evicted while borrowed"
            assert model.in_use >= 1 and model["vq"] is not None
            time.sleep(rng.random() * 0.003)
            assert manager.get(model_id) is model
            with held_lock:
                obj, count = held[model_id]
                held[model_id] = (obj, count - 1) if count > 1 else (None, 0)
                if count == 1:
                    del held[model_id]

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(60):
                action = rng.random()
                if action < 0.6:
                    borrow(rng)
                elif action < 0.85:
                    manager.get(f"m{rng.randrange(MODELS)}")
                elif action < 0.95:
                    try:
                        manager.unload(f"m{rng.randrange(MODELS)}")
                    except ModelInUse:
                        pass
                else:
                    manager.unload_all()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def monitor() -> None:
        """Over budget only by borrowed models, plus at most the one just loaded."""
        while not stop.is_set():
            rows = [r for r in manager.status() if r["loaded"]]
            idle = [r for r in rows if not r["in_use"]]
            used = len(rows) * size
            if used > budget and len(idle) > 1:
                errors.append(AssertionError(f"over budget with idle models: {rows}"))
            snapshots[0] += 1
            time.sleep(0.0005)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # force thread switches everywhere
    try:
        watcher = threading.Thread(target=monitor)
        watcher.start()
        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        stop.set()
        watcher.join(timeout=10)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads), "a worker hung (deadlock?)"
    assert not errors, f"{len(errors)} failures, first: {errors[0]!r}"
    assert snapshots[0] > 10
    assert sum(manager.load_count.values()) > MODELS  # the budget really forced reloads
    assert all(r["in_use"] == 0 for r in manager.status())
    assert manager.memory_used() <= budget
