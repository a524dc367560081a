"""Settings, catalog, placement plan and the model manager."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings, auto_threads, cpu_cores, parse_bytes, parse_devices
from mmstudio.devices import DeviceInfo, plan_placement
from mmstudio.errors import ModelUnavailable, UserError
from mmstudio.manager import ModelManager
from tests import tiny_models

GB = 10**9
CPU = [DeviceInfo("cpu", 8 * GB, 8 * GB)]


# ---------------------------------------------------------------------------------- settings
def test_settings_from_env(tmp_path: Path) -> None:
    env = {
        "HF_HUB_OFFLINE": "1",
        "MMSTUDIO_DEVICE": "cuda:0, cuda:1",
        "MMSTUDIO_MAX_MEMORY": "512MiB",
        "MMSTUDIO_ASSETS": str(tmp_path),
        "MMSTUDIO_DEFAULT_MODELS": "tokenize=amused/amused-256:vqvae",
    }
    settings = Settings.from_env(env)
    assert settings.offline is True
    assert settings.devices == ("cuda:0", "cuda:1")
    assert settings.max_memory == 512 * 2**20
    assert settings.models_dir == tmp_path / "models"
    assert settings.default_models["tokenize"] == "amused/amused-256:vqvae"
    assert settings.default_models["similarity"] == "shapes-clip"
    assert Settings.from_env({"MMSTUDIO_OFFLINE": "0", "HF_HUB_OFFLINE": "1"}).offline is False
    assert Settings.from_env({"MMSTUDIO_THREADS": "1"}).threads == 1
    assert Settings.from_env({"MMSTUDIO_THREADS": "1"}).cpu_threads == 1
    # unset or 0: the app serves with one less than the cores (streaming keeps a core)
    assert Settings.from_env({}).threads == Settings.from_env({"MMSTUDIO_THREADS": "0"}).threads
    assert Settings.from_env({}).threads == 0
    assert Settings.from_env({}).cpu_threads == auto_threads() == max(1, cpu_cores() - 1)
    assert [auto_threads(n) for n in (1, 2, 4, 64)] == [1, 1, 3, 63]
    with pytest.raises(UserError, match="MMSTUDIO_THREADS"):
        Settings.from_env({"MMSTUDIO_THREADS": "many"})


def test_cpu_lanes_fit_torch_threads_in_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from mmstudio.pipelines import batching

    threads = torch.get_num_threads()
    try:
        for cores, torch_threads, lanes in ((2, 1, 2), (64, 63, 1), (8, 2, 4), (1, 1, 1)):
            monkeypatch.setattr("mmstudio.config.cpu_cores", lambda c=cores: c)
            torch.set_num_threads(torch_threads)
            assert batching.cpu_lanes() == lanes, (cores, torch_threads)
    finally:
        torch.set_num_threads(threads)


def test_malloc_arenas_are_bounded_on_linux() -> None:
    import sys

    from mmstudio.devices import limit_malloc_arenas

    assert limit_malloc_arenas(2) is sys.platform.startswith("linux")


def test_freed_heap_memory_goes_back_to_the_system_on_linux() -> None:
    import sys
    import threading

    from mmstudio.devices import trim_memory, trim_memory_every

    if not sys.platform.startswith("linux"):
        assert trim_memory() is False and trim_memory_every(0.01, threading.Event()) is None
        return

    def rss() -> int:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    # many small blocks (below the mmap threshold: they live on the heap), then all but the last
    # freed: without a trim the pages below the last block stay resident
    blocks = [bytearray(64 * 1024) for _ in range(1500)]  # about 100 MB
    keep = blocks[-1]
    del blocks
    before = rss()
    assert trim_memory() is True
    assert before - rss() > 50 * 2**20, "malloc_trim gave back less than half of 100 MB"
    assert len(keep) == 64 * 1024
    stop = threading.Event()
    thread = trim_memory_every(0.01, stop)
    assert thread is not None and thread.daemon and thread.is_alive()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


@pytest.mark.parametrize("text", ["lots", "5 parsecs", "-3GB"])
def test_bad_memory_size_is_a_clear_error(text: str) -> None:
    with pytest.raises(UserError, match="not a memory size"):
        parse_bytes(text)


def test_device_parsing() -> None:
    assert parse_devices("auto") == ()
    assert parse_devices("cpu") == ("cpu",)
    with pytest.raises(UserError, match="unknown device"):
        parse_devices("tpu")


# ---------------------------------------------------------------------------------- catalog
def test_catalog_lists_the_required_models(offline_settings: Settings) -> None:
    catalog = Catalog.load(offline_settings)
    ids = {spec.id for spec in catalog}
    required = {
        "shapes-vqvae", "shapes-vqgan", "shapes-clip", "shapes-unet", "facebook/DiT-XL-2-256",
        "stabilityai/sd-turbo", "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "amused/amused-256:vqvae", "open_clip:ViT-B-32/laion2b_s34b_b79k", "cvssp/audioldm2",
        "facebook/encodec_24khz",
    }
    assert required <= ids
    assert catalog.for_task("video"), "a text-to-video model is listed"
    for spec in catalog:
        assert spec.tasks and spec.loader and spec.license
        assert (spec.path if spec.embedded else spec.repo), spec.id
        assert spec.resolution or spec.sample_rate, spec.id


def test_missing_embedded_weights_say_how_to_get_them(offline_settings: Settings) -> None:
    catalog = Catalog.load(offline_settings)
    status = catalog.availability("shapes-vqvae")
    assert not status.available and "python -m mmstudio train shapes-vqvae" in status.reason
    with pytest.raises(ModelUnavailable, match="shapes-vqvae"):
        catalog.resolve("shapes-vqvae")


def test_unknown_model_is_a_user_error(offline_settings: Settings) -> None:
    with pytest.raises(UserError, match="unknown model 'nope'"):
        Catalog.load(offline_settings).get("nope")


def test_embedded_metrics_are_read_from_the_model_folder(offline_settings: Settings) -> None:
    folder = offline_settings.assets / "models" / "shapes-vqvae"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"psnr_db": 31.5}')
    assert Catalog.load(offline_settings).get("shapes-vqvae").metrics == {"psnr_db": 31.5}


# ---------------------------------------------------------------------------------- placement
def gpu(i: int, free_gb: float, bf16: bool = True) -> DeviceInfo:
    return DeviceInfo(f"cuda:{i}", int(80 * GB), int(free_gb * GB), supports_bf16=bf16)


def test_no_gpu_means_cpu_float32() -> None:
    plan = plan_placement(2 * GB, CPU)
    assert (plan.kind, plan.devices, plan.dtype) == ("cpu", ("cpu",), "float32")


def test_one_gpu_takes_the_model_in_half_precision() -> None:
    plan = plan_placement(2 * GB, [*CPU, gpu(0, 70)])
    assert (plan.kind, plan.devices, plan.dtype) == ("single", ("cuda:0",), "bfloat16")
    assert plan_placement(2 * GB, [gpu(0, 10, bf16=False)]).dtype == "float16"


def test_small_model_on_several_gpus_is_replicated() -> None:
    plan = plan_placement(2 * GB, [gpu(0, 20), gpu(1, 70), gpu(2, 1)])
    assert plan.kind == "replicas"
    assert plan.devices == ("cuda:1", "cuda:0")  # most free first; cuda:2 has no room


def test_large_model_on_several_gpus_is_balanced() -> None:
    plan = plan_placement(100 * GB, [gpu(0, 70), gpu(1, 70)])
    assert plan.kind == "balanced" and plan.devices == ("cuda:0", "cuda:1")
    assert set(plan.max_memory) == {"cuda:0", "cuda:1"}
    assert sum(plan.max_memory.values()) >= 100 * GB
    too_big = plan_placement(200 * GB, [gpu(0, 70), gpu(1, 70)])
    assert "cpu" in too_big.max_memory  # the rest is offloaded, and the plan says so


# ---------------------------------------------------------------------------------- manager
def vq_catalog(tmp_path: Path, settings: Settings, n: int) -> Catalog:
    specs = []
    for i in range(n):
        folder = tiny_models.make_vq(tmp_path / f"vq{i}")
        specs.append(ModelSpec(id=f"vq{i}", tasks=("tokenize",), source="local", loader="vq",
                               path=str(folder), resolution=32, memory_gb=0.0))
    return Catalog(specs, settings)


def test_loading_is_lazy(tmp_path: Path, offline_settings: Settings) -> None:
    manager = ModelManager(offline_settings, vq_catalog(tmp_path, offline_settings, 1), CPU)
    assert not manager.is_loaded("vq0") and manager.memory_used() == 0
    model = manager.get("vq0")
    assert manager.is_loaded("vq0") and model.device == "cpu" and model.nbytes > 0
    assert manager.get("vq0") is model and manager.load_count["vq0"] == 1


def test_eviction_under_a_budget_smaller_than_two_models(
    tmp_path: Path, offline_settings: Settings
) -> None:
    catalog = vq_catalog(tmp_path, offline_settings, 3)
    size = ModelManager(offline_settings, catalog, CPU).get("vq0").nbytes
    settings = Settings(offline=True, assets=offline_settings.assets, max_memory=int(size * 1.5))
    manager = ModelManager(settings, catalog, CPU)
    manager.get("vq0")
    manager.get("vq1")
    assert not manager.is_loaded("vq0") and manager.is_loaded("vq1")
    assert manager.memory_used() <= settings.max_memory
    with manager.use("vq1"):  # a model in use is never evicted
        manager.get("vq2")
        assert manager.is_loaded("vq1")
    manager.get("vq0")
    assert manager.is_loaded("vq0") and not manager.is_loaded("vq1")


def test_concurrent_requests_load_once(tmp_path: Path, offline_settings: Settings) -> None:
    manager = ModelManager(offline_settings, vq_catalog(tmp_path, offline_settings, 1), CPU)
    barrier = threading.Barrier(6)
    results = []

    def worker() -> None:
        barrier.wait()
        results.append(manager.get("vq0"))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 6 and all(r is results[0] for r in results)
    assert manager.load_count["vq0"] == 1


def test_status_and_unload(tmp_path: Path, offline_settings: Settings) -> None:
    manager = ModelManager(offline_settings, vq_catalog(tmp_path, offline_settings, 2), CPU)
    manager.get("vq1")
    rows = {row["id"]: row for row in manager.status()}
    assert rows["vq1"]["loaded"] and rows["vq1"]["placement"] == "CPU (float32)"
    assert rows["vq1"]["memory_mb"] > 0 and not rows["vq0"]["loaded"]
    assert manager.unload("vq1") and not manager.unload("vq1")
    assert manager.memory_used() == 0


def test_corrupt_weights_give_a_clear_error(tmp_path: Path, offline_settings: Settings) -> None:
    catalog = vq_catalog(tmp_path, offline_settings, 1)
    (tmp_path / "vq0" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a tensor file")
    manager = ModelManager(offline_settings, catalog, CPU)
    with pytest.raises(ModelUnavailable, match="vq0.*loading .* failed"):
        manager.get("vq0")


def test_gpu_wrapper_is_identity_without_spaces(offline_settings: Settings) -> None:
    manager = ModelManager(offline_settings, Catalog([], offline_settings), CPU)

    def work() -> float:
        return time.monotonic()

    assert manager.gpu(work) is work


def test_nothing_below_the_ui_imports_gradio() -> None:
    """Layering (DESIGN.md): pipelines, manager, worlds, training, evaluation are plain Python."""
    import subprocess
    import sys

    code = (
        "import importlib, pkgutil, sys\n"
        "import mmstudio\n"
        "for package in ('pipelines', 'worlds', 'training', 'evaluation'):\n"
        "    base = importlib.import_module('mmstudio.' + package)\n"
        "    for info in pkgutil.iter_modules(base.__path__):\n"
        "        importlib.import_module(f'mmstudio.{package}.{info.name}')\n"
        "import mmstudio.manager, mmstudio.loaders, mmstudio.catalog, mmstudio.images\n"
        "print('gradio' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_hub_revisions_are_main_or_pinned_commits(offline_settings: Settings) -> None:
    import re

    hub = [spec for spec in Catalog.load(offline_settings) if spec.source == "hub"]
    pinned = {spec.id for spec in hub if re.fullmatch(r"[0-9a-f]{40}", spec.revision)}
    assert all(spec.revision == "main" or spec.id in pinned for spec in hub)
    assert {"stabilityai/sd-turbo", "open_clip:ViT-B-32/laion2b_s34b_b79k",
            "amused/amused-256:vqvae"} <= pinned
