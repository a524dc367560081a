"""`python -m mmstudio bench ...`, run in-process with tiny settings: the figures come out
complete and measured (no timing is asserted; performance lives in the benchmark itself)."""

from __future__ import annotations

import json
import math

import pytest

from mmstudio.cli import main


def test_bench_similarity(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "similarity", "--images", "6", "--texts", "3", "--runs", "1", "--json"]
    assert main(argv) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["model"] == "shapes-clip" and (figures["images"], figures["texts"]) == (6, 3)
    for key in ("first_total_s", "new_inputs_total_median_s", "cached_compute_median_s",
                "cached_total_median_s", "cached_total_max_s"):
        assert figures[key] > 0, key
    assert figures["cached_compute_median_s"] <= figures["cached_total_median_s"]
    assert main(["bench", "similarity", "--images", "4", "--texts", "2", "--runs", "1"]) == 0
    assert "cached, with figures" in capsys.readouterr().out


def test_bench_denoise(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "denoise", "--steps", "2", "--runs", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["model"] == "shapes-unet" and figures["steps"] == 2
    assert figures["bare_loop_s"] > 0 and figures["streamed_s"] > 0
    assert math.isfinite(figures["streaming_overhead"])
    assert figures["vs_diffusers"]["ours_s"] > 0 and figures["vs_diffusers"]["ratio"] > 0
