"""shapes-gpt on the command line: generate, eval, compare, bench, on an untrained stand-in of
the exact architecture (the shipped models linked beside it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmstudio.cli import main
from mmstudio.evaluation.unet import CARD_END, CARD_START


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.stand_ins import assets_with

    return assets_with(tmp_path_factory.mktemp("gpt-assets"), clap=False, gpt=True)


@pytest.fixture(autouse=True)
def _use_assets(assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))


def test_generate_writes_the_images_the_tokens_and_the_filling_trace(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["generate", "--model", "shapes-gpt", "--prompt", "a red circle", "--prompt",
                 "a blue cross", "--n", "2", "--seed", "5", "--batch", "3", "--top-k", "50",
                 "--temperature", "0.9", "--out", str(out), "--trace"]) == 0
    record = json.loads((out / "generate.json").read_text())
    assert record["model"] == "shapes-gpt" and record["steps"] == 64
    assert (record["temperature"], record["top_k"], record["top_p"]) == (0.9, 50, 1.0)
    assert record["guidance"] == 3.0 and record["resolution"] == 32  # the catalog's guidance
    assert [(r["prompt"], r["seed"]) for r in record["images"]] == [
        ("a red circle", 5), ("a red circle", 6), ("a blue cross", 5), ("a blue cross", 6)]
    for r in record["images"]:
        assert Image.open(out / r["file"]).size == (32, 32)
        assert np.asarray(r["tokens"]).shape == (8, 8)
        frames = sorted((out / r["trace"]).glob("token*.png"))
        assert len(frames) == 64
    # the last frame of the trace is the image; the same seed alone gives the same tokens
    alone = tmp_path / "alone"
    assert main(["generate", "--model", "shapes-gpt", "--prompt", "a blue cross", "--seed", "6",
                 "--top-k", "50", "--temperature", "0.9", "--out", str(alone)]) == 0
    single = json.loads((alone / "generate.json").read_text())["images"][0]
    assert single["tokens"] == record["images"][3]["tokens"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "shapes-gpt", "--steps", "10"], "--steps is for diffusion models"),
    (["--model", "shapes-gpt", "--top-p", "0"], "top-p must be above 0"),
    (["--model", "shapes-gpt", "--temperature", "9"], "temperature must be between 0"),
    (["--model", "shapes-unet", "--top-k", "5"], "--top-k is for token priors"),
])
def test_generate_refuses_settings_that_do_not_apply(argv: list[str], message: str,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    assert main(["generate", *argv, "--prompt", "a red circle", "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_eval_measures_the_model_and_fails_on_a_miss(assets: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    import shutil

    folder = tmp_path / "export"
    shutil.copytree(assets / "models" / "shapes-gpt", folder)
    card = (folder / "MODEL_CARD.md").read_text()
    assert CARD_START in card and CARD_END in card  # the shipped template
    argv = ["eval", "shapes-gpt", "--model-dir", str(folder), "--n", "6", "--batch", "3",
            "--diversity-seeds", "4", "--top-k", "20", "--write", "--json"]
    assert main(argv) == 1  # an untrained model misses its targets, and says so
    out = capsys.readouterr().out
    metrics = json.loads(out[out.index("{"):])
    assert metrics["samples"] == 6 and metrics["network_evaluations"] == 64
    assert metrics["top_k"] == 20 and metrics["guidance"] == 3.0
    assert len(metrics["hits"]) == 6 and not all(metrics["passed"].values())
    assert json.loads((folder / "metrics.json").read_text())["samples"] == 6
    written = (folder / "MODEL_CARD.md").read_text()
    assert "Not measured yet" not in written and "64 transformer passes" in written
    assert "top-k 20" in written and "| adherence, 6 full-caption prompts |" in written


def test_eval_without_weights_names_the_folder(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "shapes-gpt", "--model-dir", str(tmp_path), "--n", "2"]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_compare_measures_each_model_on_the_same_prompts(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na purple triangle on a gray background\n")
    out = tmp_path / "cmp"
    assert main(["compare", "--prompts", str(prompts), "--models", "shapes-gpt,shapes-dit",
                 "--n", "2", "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["prompts"] == ["a red circle", "a purple triangle on a gray background"]
    gpt, dit = record["rows"]
    assert (gpt["model"], dit["model"]) == ("shapes-gpt", "shapes-dit")
    assert gpt["paradigm"] == "tokens + autoregression" and dit["paradigm"] == "latent diffusion"
    assert gpt["evaluations_per_sample"] == 64 and dit["evaluations_per_sample"] == 25
    for row in (gpt, dit):
        assert row["samples"] == 4 and row["held_out_samples"] == 2
        assert 0 <= row["adherence"] <= 1 and row["gflops_per_sample"] > 0
        assert row["seconds_per_sample"] > 0 and row["seconds_alone"] > 0
        assert 0 < row["pixel_diversity"] < 1 and row["free_coverage"] is not None
    assert dit["gflops_per_sample"] > gpt["gflops_per_sample"]  # 25 passes of 64 positions
    assert any("Speed:" in s for s in record["findings"])
    sheet = Image.open(out / "samples.png")
    assert sheet.size[1] > 2 * 32 * 3  # two prompt rows, enlarged


@pytest.mark.parametrize(("argv", "message"), [
    (["--prompt", "a dragon"], "prompt 1 is not a shapes caption"),
    (["--models", "shapes-gpt,nope"], "unknown model 'nope'"),
    (["--models", "shapes-gpt", "--n", "99"], "samples per prompt must be from 1 to 16"),
    (["--models", "shapes-clip"], "neither a token prior nor"),
])
def test_compare_refuses_bad_input_in_one_line(argv: list[str], message: str,
                                              capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", *argv]) == 2
    assert message in capsys.readouterr().err


def test_bench_gpt_reports_one_image_a_batch_and_the_cache(capsys: pytest.CaptureFixture
                                                           ) -> None:
    assert main(["bench", "gpt", "--runs", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["model"] == "shapes-gpt" and figures["tokens"] == 64
    assert figures["one_image_s"] > 0 and figures["batch16_s"] > figures["one_image_s"]
    assert figures["one_image"] in ("met", "missed") and figures["kv_cache_speedup"] > 1
