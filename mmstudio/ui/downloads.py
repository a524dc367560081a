"""Files made for downloads (trace GIF/MP4, WAV, MP4, rendered PNGs) in one folder with a bound.

A Space stays up for weeks and every request may write files: left alone, the disk fills. Every
tab makes a request's files in ``new_folder(prefix)``, a fresh subfolder of one folder,
``mmstudio-downloads`` inside gradio's cache folder (``GRADIO_TEMP_DIR``). gradio serves files
that are already in its cache folder where they are (it copies only files from elsewhere), so each
file exists once. Making a folder first sweeps: the oldest request folders are deleted until the
rest fit ``MMSTUDIO_DOWNLOADS_MAX`` (default 1 GB); the newest, which a visitor may still be
downloading, go last. The disk used by downloads is so bounded by the setting plus the files of the
requests made since the last sweep (sweeps are at most ``SWEEP_EVERY_S`` apart, so a burst of
requests does not pay for a directory walk each).

Files made once when the app is built (a component's initial value) go to ``static_folder``, which
is never swept: gradio keeps serving them to every new page.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SWEEP_EVERY_S = 1.0
SETTLED_S = 60.0  # a request folder older than this is complete: its size is not measured again


def gradio_cache() -> Path:
    """gradio's upload and cache folder (gradio's own rule: ``GRADIO_TEMP_DIR`` or the temp
    folder's ``gradio``)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR")
                or Path(tempfile.gettempdir()) / "gradio").resolve()


def static_folder(name: str) -> Path:
    """A fixed folder for files made once at build time (the same name is reused at every start,
    so it does not grow); never swept."""
    folder = gradio_cache() / "mmstudio-static" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _size(path: Path) -> int:
    try:
        if path.is_symlink() or not path.is_dir():
            return path.lstat().st_size
        return sum(_size(child) for child in path.iterdir())
    except OSError:  # deleted meanwhile
        return 0


@dataclass
class DownloadCache:
    """One folder, at most ``max_bytes`` of entries (files or folders) after each sweep."""

    root: Path
    max_bytes: int
    sweep_every_s: float = SWEEP_EVERY_S
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_sweep: float = field(default=float("-inf"), repr=False)
    # every entry, oldest first: path -> (made at, size once settled, else None)
    _entries: dict[str, tuple[float, int | None]] | None = field(default=None, repr=False)

    def new_folder(self, prefix: str) -> Path:
        """A new, empty folder for one request's files (after a sweep, when one is due)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if time.monotonic() - self._last_sweep >= self.sweep_every_s:
            self.sweep()
        folder = tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.root)
        with self._lock:
            self._known()[folder] = (time.time(), None)
        return Path(folder)

    def _known(self) -> dict[str, tuple[float, int | None]]:
        """The entries, listed from the disk once (what an earlier run left), then kept up to
        date here: this cache is the folder's only writer. Holds the lock."""
        if self._entries is None:
            try:
                found = [(e.stat(follow_symlinks=False).st_mtime, e.path)
                         for e in os.scandir(self.root)]
            except FileNotFoundError:
                found = []
            self._entries = {path: (mtime, None) for mtime, path in sorted(found)}
        return self._entries

    def sweep(self) -> int:
        """Delete the oldest entries until the rest fit ``max_bytes``; returns bytes kept.

        No directory walk: an entry's size is measured while it is young (its request may still
        be writing) and remembered once it has settled."""
        with self._lock:
            now = time.time()
            self._last_sweep = time.monotonic()
            entries = self._known()
            sizes: list[tuple[str, int]] = []
            for path, (made, size) in entries.items():
                if size is None:
                    size = _size(Path(path))
                    if now - made > SETTLED_S:
                        entries[path] = (made, size)
                sizes.append((path, size))
            kept = 0
            for path, size in reversed(sizes):  # newest first
                if kept + size <= self.max_bytes:
                    kept += size
                    continue
                del entries[path]
                target = Path(path)
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
            return kept

    def usage(self) -> int:
        """Bytes in the folder now (measured on disk)."""
        return _size(self.root) if self.root.exists() else 0


_default: DownloadCache | None = None
_default_lock = threading.Lock()


def default_cache() -> DownloadCache:
    """The process's cache, in gradio's folder, bounded by ``Settings.downloads_max``."""
    global _default
    with _default_lock:
        if _default is None:
            from mmstudio.config import Settings

            _default = DownloadCache(gradio_cache() / "mmstudio-downloads",
                                     Settings.from_env().downloads_max)
        return _default


def new_folder(prefix: str) -> Path:
    """``default_cache().new_folder(prefix)``: where a tab writes one request's download files."""
    return default_cache().new_folder(prefix)
