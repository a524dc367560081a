"""Device discovery, dtype choice, and the placement plan that the manager carries out.

``plan_placement`` is a pure function of the devices and the model's size, so the policy for 0, 1
and many GPUs is testable on a machine with none:
- no GPU -> the CPU, float32;
- one GPU -> that GPU, bf16 where the GPU supports it, else fp16;
- several GPUs, model fits on one (with headroom) -> one replica per GPU that has room, so that
  requests are served in parallel;
- several GPUs, model larger than any one -> a balanced Accelerate device map across them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

HEADROOM = 1.2  # activations and scheduler state need room beside the weights
MAX_REPLICAS = 8


@dataclass(frozen=True)
class DeviceInfo:
    name: str  # "cpu", "cuda:0", ...
    total_bytes: int
    free_bytes: int
    supports_bf16: bool = False

    @property
    def is_gpu(self) -> bool:
        return self.name.startswith("cuda")


@dataclass(frozen=True)
class Placement:
    kind: Literal["cpu", "single", "replicas", "balanced"]
    devices: tuple[str, ...]  # one per replica; for "balanced", the devices the map spans
    dtype: str  # "float32", "float16", "bfloat16"
    max_memory: dict[str, int] = field(default_factory=dict)  # for Accelerate's device map

    def describe(self) -> str:
        where = ", ".join(self.devices)
        return {
            "cpu": f"CPU ({self.dtype})",
            "single": f"{where} ({self.dtype})",
            "replicas": f"{len(self.devices)} replicas on {where} ({self.dtype})",
            "balanced": f"split across {where} ({self.dtype})",
        }[self.kind]


def choose_dtype(gpus: Sequence[DeviceInfo]) -> str:
    if not gpus:
        return "float32"
    return "bfloat16" if all(g.supports_bf16 for g in gpus) else "float16"


def plan_placement(
    model_bytes: int, devices: Sequence[DeviceInfo], max_replicas: int = MAX_REPLICAS
) -> Placement:
    """Where a model of ``model_bytes`` (in its GPU dtype) goes on ``devices``."""
    gpus = [d for d in devices if d.is_gpu]
    if not gpus:
        return Placement("cpu", ("cpu",), "float32")
    dtype = choose_dtype(gpus)
    need = int(model_bytes * HEADROOM)
    if len(gpus) == 1:
        return Placement("single", (gpus[0].name,), dtype)
    roomy = sorted((g for g in gpus if g.free_bytes >= need), key=lambda g: -g.free_bytes)
    if roomy:
        chosen = tuple(g.name for g in roomy[:max_replicas])
        return Placement("replicas" if len(chosen) > 1 else "single", chosen, dtype)
    # Larger than any one GPU: balance layers across all of them, leaving the same headroom on each.
    max_memory = {g.name: int(g.free_bytes / HEADROOM) for g in gpus}
    if sum(max_memory.values()) < model_bytes:
        # Accelerate offloads the rest to the CPU; say so in the plan.
        max_memory["cpu"] = model_bytes
    ordered = tuple(g.name for g in gpus)
    return Placement("balanced", ordered, dtype, max_memory)


def discover_devices(requested: Sequence[str] = ()) -> list[DeviceInfo]:
    """The devices this process may use: every visible GPU (or those requested), else the CPU."""
    import torch

    devices: list[DeviceInfo] = []
    if requested and all(r == "cpu" for r in requested):
        return [_cpu_info()]
    if torch.cuda.is_available():
        indices = range(torch.cuda.device_count())
        if requested:
            indices = [0 if r == "cuda" else int(r.split(":")[1]) for r in requested if r != "cpu"]
        for index in indices:
            free, total = torch.cuda.mem_get_info(index)
            devices.append(
                DeviceInfo(
                    f"cuda:{index}", total, free, supports_bf16=torch.cuda.is_bf16_supported()
                )
            )
    return devices or [_cpu_info()]


def _cpu_info() -> DeviceInfo:
    import psutil

    memory = psutil.virtual_memory()
    return DeviceInfo("cpu", memory.total, memory.available)


def use_cpu_threads(threads: int) -> int:
    """Set torch's intra-op CPU threads for this process (``Settings.cpu_threads`` explains the
    choice); returns the count now in use."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


#: glibc's ``mallopt`` parameter for the number of malloc arenas (``M_ARENA_MAX`` in malloc.h).
M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Bound glibc's malloc arenas for this process (as ``MALLOC_ARENA_MAX`` would at start-up);
    True when applied. glibc gives threads their own arenas, up to 8 per core, and freed memory
    stays in the arena that held it: a server whose thread pool runs torch with changing batch
    sizes then grows without bound although nothing is kept. Elsewhere (macOS, musl) a no-op."""
    libc = _libc()
    try:
        return bool(libc and libc.mallopt(M_ARENA_MAX, int(arenas)))
    except AttributeError:
        return False


@functools.lru_cache(maxsize=1)
def _libc():
    """glibc (or the platform's libc) through ctypes; None off Linux."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def trim_memory() -> bool:
    """Hand the heap's free pages back to the system now (glibc ``malloc_trim``); True when
    done. Freed memory otherwise stays with the process: after a burst of large batches the
    resident size keeps the burst's peak although nothing is kept."""
    libc = _libc()
    try:
        libc.malloc_trim(0)  # type: ignore[union-attr]
    except AttributeError:  # not glibc (or no libc found)
        return False
    return True


def trim_memory_every(seconds: float = 10.0,
                      stop: threading.Event | None = None) -> threading.Thread | None:
    """A daemon thread that calls ``trim_memory`` every ``seconds`` until ``stop`` is set (a
    served app's resident memory then follows what it holds, not its busiest moment; with 16
    clients it had grown 9 to 26% in 2 to 3 minutes, ``bench load``); None where glibc is
    absent."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return None

    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            trim_memory()

    thread = threading.Thread(target=loop, name="mmstudio-trim-memory", daemon=True)
    thread.start()
    return thread
