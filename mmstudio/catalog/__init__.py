"""The catalog: what models exist, where their weights come from, and whether they can load here.

Records live in ``models.toml`` beside this file. An embedded model's weights are a folder under
``Settings.assets``; a hub model's are a Hugging Face repo (+ revision, optional subfolder),
resolved to a local snapshot folder before the same loader reads it: both sources run one code.

Whether a hub model can be had depends on the cache and on the hub's reachability
(``Catalog.hub``, a ``mmstudio.hub.HubStatus``): while the hub is known to be unreachable, a hub
model that is not cached is listed as unavailable with that reason, and asking for it gives one or
two plain sentences (what happened, what to do); the technical detail goes to the log.

An embedded model names the procedural ``world`` it was trained on (WORLDS.md): that world's
caption grammar is all its text encoder ever read, so ``Catalog.unknown_words_message`` can say
which words of a prompt it never learned. Hub models declare no world and are not marked.
"""

from __future__ import annotations

import json
import logging
import os
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mmstudio.config import Settings
from mmstudio.errors import ModelUnavailable, UserError
from mmstudio.hub import OFFLINE, UNREACHABLE, HubStatus, Reachability

log = logging.getLogger(__name__)

CATALOG_FILE = Path(__file__).with_name("models.toml")
MAX_LISTED = 8  # texts whose unknown words one message lists
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
    world: str | None = None  # the procedural world an embedded model was trained on (WORLDS.md)
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

    def __init__(self, specs: list[ModelSpec], settings: Settings,
                 hub: HubStatus | None = None) -> None:
        ids = [spec.id for spec in specs]
        duplicates = {i for i in ids if ids.count(i) > 1}
        if duplicates:
            raise ValueError(f"duplicate catalog ids: {sorted(duplicates)}")
        self.settings = settings
        self.hub = hub or HubStatus.from_settings(settings)  # checks nothing until asked
        self._specs = {spec.id: self._with_metrics(spec) for spec in specs}

    @classmethod
    def load(cls, settings: Settings, path: Path = CATALOG_FILE,
             hub: HubStatus | None = None) -> Catalog:
        records = tomllib.loads(path.read_text())["model"]
        return cls([_spec_from_record(r) for r in records], settings, hub)

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
        hub = self.hub.current()  # what is known; never waits for the network
        if hub.state == OFFLINE:
            return Availability(False, "not in the local Hugging Face cache; offline by setting "
                                "(HF_HUB_OFFLINE / MMSTUDIO_OFFLINE)")
        if hub.state == UNREACHABLE:
            return Availability(False, "not in the local Hugging Face cache; no network (the "
                                "Hugging Face Hub can't be reached)")
        return Availability(
            True, f"downloads about {spec.memory_gb:.1f} GB from the Hugging Face Hub on first use"
        )

    def resolve(self, model_id: str) -> Path:
        """The local folder holding the model's weights, downloading hub weights when allowed."""
        spec = self.get(model_id)
        status = self.availability(model_id)
        if (not status.available and spec.source == "hub"
                and self.hub.current().state == UNREACHABLE):
            self.hub.check()  # known unreachable before: ask again, the network may be back
            status = self.availability(model_id)
        if not status.available:
            message = (self.missing_message(spec, self.hub.current()) if spec.source == "hub"
                       else None)
            raise ModelUnavailable(model_id, status.reason, message)
        if status.folder is not None:
            return status.folder
        return self.download(model_id)

    def download(self, model_id: str) -> Path:
        """Download a hub model's weights into the cache. On failure the hub is checked again and
        the error says plainly what happened and what to do; the library's error goes to the log."""
        spec = self.get(model_id)
        try:
            return download_snapshot(spec, self.settings.hub_cache, self.settings.hub_endpoint)
        except Exception as exc:  # network errors come in many types; the log keeps the detail
            hub = self.hub.check()
            log.warning("downloading %s failed (%s): %s: %s", spec.id, hub.describe(),
                        type(exc).__name__, exc)
            reason = f"download failed: {type(exc).__name__}"
            raise ModelUnavailable(spec.id, reason, self.failed_download_message(spec, exc, hub)
                                   ) from exc

    # ------------------------------------------------------------------ plain messages
    def _embedded_alternative(self, spec: ModelSpec) -> str:
        """' or use the embedded X' for an embedded model that can do the same task, else ''."""
        for task in spec.tasks:
            for other in self.for_task(task):
                if other.embedded and self.availability(other.id).available:
                    return f", or use the embedded {other.id}"
        return ""

    def missing_message(self, spec: ModelSpec, hub: Reachability) -> str:
        """What to tell a person asking for a hub model that is not on this machine."""
        name = short_name(spec.id)
        command = f"`python -m mmstudio download {spec.id}`"
        other = self._embedded_alternative(spec)
        if hub.state == OFFLINE:
            return (f"{name} is not on this machine: it is not in the local Hugging Face cache and "
                    "offline mode is on (HF_HUB_OFFLINE or MMSTUDIO_OFFLINE). Turn offline mode "
                    f"off, or run {command} where there is a network and bring the cache here"
                    f"{other}.")
        return (f"{name} is not on this machine and the Hugging Face Hub can't be reached. "
                f"Connect, or run {command} where there is a network{other}.")

    def failed_download_message(self, spec: ModelSpec, exc: Exception, hub: Reachability) -> str:
        """What to tell a person whose download failed, given the hub's reachability after it."""
        from huggingface_hub.errors import (
            GatedRepoError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        name = short_name(spec.id)
        if hub.state in (OFFLINE, UNREACHABLE):
            return self.missing_message(spec, hub)
        if isinstance(exc, GatedRepoError):
            return (f"{name} needs permission on the Hugging Face Hub. Accept its terms on "
                    f"huggingface.co/{spec.repo} and set HF_TOKEN, then load it again.")
        if isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError)):
            return (f"The Hugging Face Hub has no {spec.repo} at revision {spec.revision}. The "
                    "catalog entry (mmstudio/catalog/models.toml) needs fixing.")
        return (f"Downloading {name} from the Hugging Face Hub failed (the log has the details). "
                f"Try again{self._embedded_alternative(spec)}.")

    # ------------------------------------------------------------------ prompt vocabulary
    def vocabulary(self, model_id: str) -> frozenset[str] | None:
        """Every word the model's text encoder learned, when known: the caption grammar of the
        world an embedded model declares. ``None`` for models that declare none (hub models)."""
        spec = self.get(model_id)
        if spec.world is None:
            return None
        from mmstudio.worlds import vocabulary

        return vocabulary(spec.world)

    def unknown_words_message(self, model_id: str, texts: str | Sequence[str]) -> str:
        """One sentence naming the words of ``texts`` that the model's text encoder never learned,
        or ``""`` (all known, nothing to check, or a model whose vocabulary is not known).
        Several texts are numbered ("text 2: ...") as they are in the UI."""
        vocab = self.vocabulary(model_id) if model_id in self else None
        if vocab is None:
            return ""
        from mmstudio.worlds import unknown_words

        items = [texts] if isinstance(texts, str) else list(texts)
        found = [(i, unknown_words(t, vocab)) for i, t in enumerate(items, 1)]
        found = [(i, words) for i, words in found if words]
        if not found:
            return ""
        if len(items) == 1:
            listed = _quoted(found[0][1])
        else:
            listed = "; ".join(f"text {i}: {_quoted(words)}" for i, words in found[:MAX_LISTED])
            if len(found) > MAX_LISTED:
                listed += f"; and {len(found) - MAX_LISTED} more texts"
        world = self.get(model_id).world
        total = len({w for _, words in found for w in words})
        these = "this word" if total == 1 else "these words"
        return (f"{model_id}'s text encoder never learned {these} ({listed}): it knows only "
                f"the {len(vocab)} words of the {world} captions, so other words only add noise.")


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


def _quoted(words: list[str]) -> str:
    return ", ".join(f"'{w}'" for w in words)


def short_name(model_id: str) -> str:
    """``stabilityai/sd-turbo`` -> ``sd-turbo``: how a sentence names a model. An id whose owner
    part is not a hub owner (``open_clip:ViT-B-32/laion2b_s34b_b79k``) stays whole."""
    owner, _, name = model_id.rpartition("/")
    return model_id if ":" in owner else name


def download_snapshot(spec: ModelSpec, cache_dir: Path | None = None,
                      endpoint: str | None = None) -> Path:
    """Download a hub model's safetensors and configs (never pickles) and return its folder.
    Raises the library's error as is (``Catalog.download`` turns it into a plain message)."""
    from huggingface_hub import snapshot_download

    assert spec.repo is not None
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    folder = Path(
        snapshot_download(
            spec.repo, revision=spec.revision, cache_dir=cache_dir, endpoint=endpoint,
            **_hub_patterns(spec),
        )
    )
    return folder / spec.subfolder if spec.subfolder else folder
