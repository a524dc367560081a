"""Files made for downloads stay under their bound, however many requests come, and the newest
(which a visitor may still be fetching) and the build-time files survive the sweeps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmstudio.config import Settings
from mmstudio.ui import downloads, tab_worlds
from mmstudio.ui.downloads import DownloadCache

KB = 1024


def test_500_requests_stay_under_the_bound(tmp_path: Path) -> None:
    cache = DownloadCache(tmp_path / "downloads", max_bytes=200 * KB, sweep_every_s=0)
    folders = []
    for i in range(500):
        folder = cache.new_folder("req")
        (folder / "trace.gif").write_bytes(os.urandom(10 * KB + i))  # sizes differ
        folders.append(folder)
        # swept before this request wrote: at most the bound plus this request's file
        assert cache.usage() <= 200 * KB + 10 * KB + i
    assert cache.sweep() <= 200 * KB and cache.usage() <= 200 * KB
    survivors = [f for f in folders if f.exists()]
    assert 10 <= len(survivors) <= 20
    assert survivors == folders[-len(survivors):]  # the newest are kept, oldest go first


def test_sweeps_are_spaced_out_yet_bounded(tmp_path: Path) -> None:
    cache = DownloadCache(tmp_path / "d", max_bytes=50 * KB, sweep_every_s=3600)
    for _ in range(20):
        (cache.new_folder("r") / "f.bin").write_bytes(b"x" * 10 * KB)
    assert cache.usage() == 200 * KB  # only the first call swept (an empty folder)
    cache.sweep()
    assert cache.usage() <= 50 * KB


def test_settings_bound() -> None:
    assert Settings.from_env({}).downloads_max == 10**9
    assert Settings.from_env({"MMSTUDIO_DOWNLOADS_MAX": "64MiB"}).downloads_max == 64 * 2**20


def test_worlds_renders_use_the_bounded_folder(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Worlds render writes 4 WAV + 4 MP4 files; 40 renders stay under a 400 KB bound, and
    the files of the tab's initial view (made at build time) are never swept."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    cache = DownloadCache(downloads.gradio_cache() / "mmstudio-downloads", max_bytes=400 * KB,
                          sweep_every_s=0)
    monkeypatch.setattr(downloads, "_default", cache)
    initial = tab_worlds.render_worlds(0, out_dir=downloads.static_folder("worlds-0"))
    sizes = []
    for seed in range(40):
        out = tab_worlds.on_render(seed, "")
        paths = [Path(update["value"]) for update in out[1:]]
        assert all(p.is_file() and cache.root in p.parents for p in paths)
        sizes.append(sum(p.stat().st_size for p in paths))
        assert cache.usage() <= 400 * KB + sizes[-1]
    assert sum(sizes) > 3 * 400 * KB  # the bound really was reached, many times
    assert all(Path(path).is_file() for path, _ in initial.sounds + initial.clips)
