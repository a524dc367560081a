"""Test settings: CPU only, no network, no analytics."""

from __future__ import annotations

import os

os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from mmstudio.config import Settings  # noqa: E402


@pytest.fixture
def offline_settings(tmp_path: Path) -> Settings:
    """Offline settings with an empty assets folder and an empty hub cache of their own."""
    (tmp_path / "assets" / "models").mkdir(parents=True)
    (tmp_path / "hub").mkdir()
    return Settings(offline=True, assets=tmp_path / "assets", hub_cache=tmp_path / "hub")
