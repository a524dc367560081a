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
    assert "cached, PNGs encoded" in capsys.readouterr().out


def test_bench_denoise(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "denoise", "--steps", "2", "--runs", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["model"] == "shapes-unet" and figures["steps"] == 2
    assert figures["bare_loop_s"] > 0 and figures["streamed_s"] > 0
    assert math.isfinite(figures["streaming_overhead"])
    assert figures["vs_diffusers"]["ours_s"] > 0 and figures["vs_diffusers"]["ratio"] > 0


# --------------------------------------------------------------------------- audio benches
# sounds-codec and sounds-clap stand in untrained where they are not shipped yet
# (tests/stand_ins.py): the real architectures, loaders and folder layouts.


@pytest.fixture(scope="module")
def audio_assets(tmp_path_factory: pytest.TempPathFactory):
    from tests.stand_ins import assets_with

    return assets_with(tmp_path_factory.mktemp("bench-audio-assets"), clap=True, codec=True)


@pytest.fixture
def audio_env(audio_assets, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(audio_assets))
    monkeypatch.setenv("MMSTUDIO_OFFLINE", "1")


def test_bench_codec(audio_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "codec", "--runs", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["model"] == "sounds-codec" and figures["audio_s"] == 1.0
    assert (figures["levels"], figures["frames"], figures["sample_rate"]) == (4, 50, 16_000)
    for key in ("encode_ms", "decode_ms", "encode_decode_ms", "ms_per_audio_s"):
        assert figures[key] > 0, key
    assert figures["target_ms_per_audio_s"] == 50 and figures["target"] in ("met", "missed")
    assert main(["bench", "codec", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "encode + decode" in out and "per second of audio (target <= 50 ms on a CPU: " in out


def test_bench_codec_without_the_model_says_so(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from tests.stand_ins import assets_with

    root = assets_with(tmp_path / "assets", clap=False, skip=("sounds-codec",))
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(root))
    monkeypatch.setenv("MMSTUDIO_OFFLINE", "1")
    assert main(["bench", "codec", "--runs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model 'sounds-codec' is unavailable: no weights")
    assert len(err.strip().splitlines()) == 1


def test_bench_clap(audio_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "clap", "--clips", "5", "--runs", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["model"] == "sounds-clap" and (figures["clips"], figures["texts"]) == (5, 36)
    for key in ("first_s", "computed_median_s", "computed_max_s", "cached_median_s",
                "tab_answer_median_s"):
        assert figures[key] > 0, key
    assert figures["cached_median_s"] <= figures["computed_median_s"] <= figures["computed_max_s"]
    assert figures["target_s"] == 2 and figures["target"] in ("met", "missed")
    assert main(["bench", "clap", "--clips", "3", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "matrix, embeddings computed" in out and "target <= 2 s: " in out
    assert main(["bench", "clap", "--clips", "65"]) == 2
    assert "--clips must be from 1 to 64" in capsys.readouterr().err


def test_bench_video(tmp_path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tests import tiny_models

    assets = tmp_path / "assets"
    tiny_models.make_vae(assets / "models" / "shapes-vae")
    tiny_models.make_latte(assets / "models" / "motion-dit", "shapes-vae", frames=4)
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))
    assert main(["bench", "video", "--steps", "2", "--runs", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["model"] == "motion-dit" and figures["frames"] == 4
    assert figures["clip_s"] > 0 and figures["clip"] in ("met", "missed")
    assert [r["frames"] for r in figures["per_frame_count"]] == [4, 8, 16]
    assert figures["per_frame_count"][2]["gflops_per_step"] > \
        figures["per_frame_count"][0]["gflops_per_step"]
    assert main(["bench", "video", "--steps", "2", "--runs", "1"]) == 0
    assert "one clip (decode included)" in capsys.readouterr().out
