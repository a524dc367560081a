"""Settings: one dataclass, read from the environment (``MMSTUDIO_*``), in one place.

README.md documents each variable:

OFFLINE, DEVICE, MAX_MEMORY, ASSETS, DEFAULT_MODELS, HUB_CACHE, THREADS, ADMIN and
DOWNLOADS_MAX, each prefixed MMSTUDIO_; from huggingface_hub's own variables, HF_HUB_OFFLINE (the
default of OFFLINE) and HF_ENDPOINT (the hub's address, which the reachability check asks).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mmstudio.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_MODELS: dict[str, str] = {
    "tokenize": "shapes-vqvae",
    "denoise": "shapes-unet",
    "similarity": "shapes-clip",
}

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bytes(text: str) -> int:
    """``'6GB'`` -> 6_000_000_000; ``'512MiB'`` -> 536_870_912; a bare number is bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise UserError(f"not a memory size: {text!r} (examples: 6GB, 512MiB, 2000000000)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UserError(f"{name} must be 1/0, true/false, yes/no or on/off, not {text!r}")


def parse_devices(text: str) -> tuple[str, ...]:
    """``'auto'`` -> (); ``'cpu'`` -> ('cpu',); ``'cuda:0, cuda:1'`` -> ('cuda:0', 'cuda:1')."""
    value = text.strip().lower()
    if value in ("", "auto"):
        return ()
    devices = tuple(d.strip() for d in value.split(",") if d.strip())
    for device in devices:
        if not re.fullmatch(r"cpu|cuda|cuda:\d+", device):
            raise UserError(f"MMSTUDIO_DEVICE: unknown device {device!r} (auto, cpu, cuda, cuda:N)")
    return devices


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_threads(cores: int | None = None) -> int:
    """The served studio's and the benchmarks' torch CPU threads when MMSTUDIO_THREADS is 0 or
    unset: one less than the cores, at least 1 (``devices.use_cpu_threads`` applies it).

    Why not one per core (torch's default): torch's intra-op threads work in lock-step (every
    parallel op waits for its slowest thread), and the studio always has other work on the CPU
    while a model runs: the thread that streams each step to the browser (image conversion, PNG
    encoding), gradio's server, other users' requests. With one thread per core, that work takes
    a core from one of torch's threads and every op waits for it: on 2 cores the streamed loop
    took 1.8x the bare loop (``bench denoise``), and with another process busy on the machine up
    to 10x. Leaving one core free keeps the loop at its own speed whatever streams beside it, on
    2 cores (1 thread; our small models are as fast on one thread as on two) as on 64. Batched
    passes of many users (``pipelines.batching``) use the spare cores with passes of their own,
    which do not wait on each other. Training and evaluation scripts keep their own
    ``--threads``.
    """
    return max(1, (cores or cpu_cores()) - 1)


def parse_threads(text: str) -> int:
    try:
        threads = int(text.strip() or "0")
    except ValueError:
        threads = -1
    if threads < 0:
        raise UserError(f"MMSTUDIO_THREADS must be a whole number (0 = automatic: one less than "
                        f"the cores), not {text!r}")
    return threads


def parse_defaults(text: str) -> dict[str, str]:
    defaults = dict(DEFAULT_MODELS)
    for item in filter(None, (part.strip() for part in text.split(","))):
        task, sep, model_id = item.partition("=")
        if not sep or not task.strip() or not model_id.strip():
            raise UserError(f"MMSTUDIO_DEFAULT_MODELS: expected task=model_id, got {item!r}")
        defaults[task.strip()] = model_id.strip()
    return defaults


@dataclass(frozen=True)
class Settings:
    offline: bool = False
    admin: bool = False  # the Models tab may load and unload models (off on a public Space)
    downloads_max: int = 10**9  # bytes of download files (traces, audio, video) kept on disk
    devices: tuple[str, ...] = ()  # () means auto: every visible GPU, else the CPU
    max_memory: int = 8 * 10**9  # bytes of model weights kept loaded at once
    assets: Path = REPO_ROOT / "assets"
    default_models: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    hub_cache: Path | None = None  # None: huggingface_hub's own default
    threads: int = 0  # CPU threads for torch; 0: automatic (``cpu_threads``)
    hub_endpoint: str | None = None  # None: huggingface_hub's default (https://huggingface.co)

    @property
    def cpu_threads(self) -> int:
        """The thread count to serve and benchmark with: MMSTUDIO_THREADS, else automatic."""
        return self.threads or auto_threads()

    @property
    def models_dir(self) -> Path:
        return self.assets / "models"

    @property
    def examples_dir(self) -> Path:
        return self.assets / "examples"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        hf_offline = env.get("HF_HUB_OFFLINE", "0")
        offline_text = env.get("MMSTUDIO_OFFLINE", hf_offline)
        assets = env.get("MMSTUDIO_ASSETS")
        hub_cache = env.get("MMSTUDIO_HUB_CACHE")
        return cls(
            offline=parse_bool("MMSTUDIO_OFFLINE", offline_text),
            admin=parse_bool("MMSTUDIO_ADMIN", env.get("MMSTUDIO_ADMIN", "0")),
            downloads_max=parse_bytes(env.get("MMSTUDIO_DOWNLOADS_MAX", "1GB")),
            devices=parse_devices(env.get("MMSTUDIO_DEVICE", "auto")),
            max_memory=parse_bytes(env.get("MMSTUDIO_MAX_MEMORY", "8GB")),
            assets=Path(assets).expanduser().resolve() if assets else REPO_ROOT / "assets",
            default_models=parse_defaults(env.get("MMSTUDIO_DEFAULT_MODELS", "")),
            hub_cache=Path(hub_cache).expanduser() if hub_cache else None,
            threads=parse_threads(env.get("MMSTUDIO_THREADS", "0")),
            hub_endpoint=env.get("HF_ENDPOINT") or None,
        )
