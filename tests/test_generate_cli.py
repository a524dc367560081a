"""`python -m mmstudio generate` end to end on tiny models in a temporary assets folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmstudio.cli import main
from tests import tiny_models


@pytest.fixture
def tiny_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assets = tmp_path / "assets"
    tiny_models.make_open_clip(assets / "models" / "shapes-clip")
    tiny_models.make_pixel_unet(assets / "models" / "shapes-unet", "shapes-clip")
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))
    return assets


def test_generate_many_prompts_batched_with_trace(tiny_assets: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n\na blue cross on a gray background\n")
    out = tmp_path / "out"
    code = main(["generate", "--model", "shapes-unet", "--prompt", "a green square",
                 "--prompts", str(prompts), "--steps", "3", "--guidance", "2", "--seed", "5",
                 "--n", "2", "--batch", "4", "--out", str(out), "--trace"])
    assert code == 0
    record = json.loads((out / "generate.json").read_text())
    assert record["resolution"] == 32 and record["steps"] == 3
    images = record["images"]
    assert [(r["prompt"], r["seed"]) for r in images] == [
        ("a green square", 5), ("a green square", 6), ("a red circle", 5), ("a red circle", 6),
        ("a blue cross on a gray background", 5), ("a blue cross on a gray background", 6)]
    for r in images:
        assert Image.open(out / r["file"]).size == (32, 32)
        assert len(list((out / r["trace"]).glob("*_x0.png"))) == 3
    # The same prompt and seed alone gives the same image as inside the batch, up to one level of
    # 255 (the kernels sum in another order at another batch size).
    alone = tmp_path / "alone"
    assert main(["generate", "--model", "shapes-unet", "--prompt", "a red circle", "--steps",
                 "3", "--guidance", "2", "--seed", "6", "--out", str(alone)]) == 0
    a = np.asarray(Image.open(alone / "p000_s6.png")).astype(int)
    b = np.asarray(Image.open(out / "p001_s6.png")).astype(int)
    assert np.abs(a - b).max() <= 1 and np.abs(a - b).mean() < 0.01


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "steps must be a whole number"),
        (["--guidance", "-5"], "guidance must be between 0 and 30"),
        (["--guidance", "nan"], "guidance must be a finite number"),
        (["--prompt", "x" * 10_000], "characters long"),
    ],
)
def test_generate_bad_input_is_one_line(tiny_assets: Path, tmp_path: Path, argv: list[str],
                                        message: str, capsys: pytest.CaptureFixture) -> None:
    base = ["generate", "--model", "shapes-unet", "--out", str(tmp_path / "o")]
    if "--prompt" not in argv:
        base += ["--prompt", "a red circle"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("error: ")


def test_generate_chunks_any_number_of_prompts(tiny_assets: Path, tmp_path: Path) -> None:
    """112 prompts (more than one forward pass holds) run in chunks of --batch, not refused."""
    prompts = tmp_path / "prompts.txt"
    captions = [f"a {c} circle" for c in ("red", "blue", "green", "white")] * 28
    prompts.write_text("\n".join(captions) + "\n")
    out = tmp_path / "out"
    assert main(["generate", "--model", "shapes-unet", "--prompts", str(prompts), "--steps", "1",
                 "--guidance", "0", "--seed", "3", "--out", str(out)]) == 0
    images = json.loads((out / "generate.json").read_text())["images"]
    assert len(images) == 112 and [r["prompt"] for r in images] == captions
    assert len(list(out.glob("p*_s3.png"))) == 112
    # the last chunk's image is the one that prompt and seed give alone
    alone = tmp_path / "alone"
    assert main(["generate", "--model", "shapes-unet", "--prompt", captions[111], "--steps", "1",
                 "--guidance", "0", "--seed", "3", "--out", str(alone)]) == 0
    assert np.array_equal(np.asarray(Image.open(alone / "p000_s3.png")),
                          np.asarray(Image.open(out / "p111_s3.png")))


def test_generate_out_file_is_refused_before_loading(tiny_assets: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    # the model's weights are broken: if it loaded first, the error would say so instead
    (tiny_assets / "models" / "shapes-unet" / "unet" /
     "diffusion_pytorch_model.safetensors").write_bytes(b"broken")
    target = tmp_path / "picture.png"
    target.write_bytes(b"")
    assert main(["generate", "--model", "shapes-unet", "--prompt", "a red circle",
                 "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --out {target} is a file; give a folder (it is created if missing)"


def test_generate_clips_writes_mp4_and_frames(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assets = tmp_path / "assets"
    tiny_models.make_vae(assets / "models" / "shapes-vae")
    tiny_models.make_latte(assets / "models" / "motion-dit", "shapes-vae", frames=4)
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))
    out = tmp_path / "clips"
    code = main(["generate", "--model", "motion-dit", "--prompt",
                 "a red circle moving left on a black background", "--prompt", "",
                 "--steps", "2", "--seed", "3", "--out", str(out), "--trace"])
    assert code == 0
    record = json.loads((out / "generate.json").read_text())
    assert record["frames"] == 4 and record["fps"] == 8
    assert [(c["prompt"], c["seed"]) for c in record["clips"]] == [
        ("a red circle moving left on a black background", 3), ("", 3)]
    for clip in record["clips"]:
        frames = np.load(out / clip["frames"])
        assert frames.shape == (4, 8, 8, 3) and frames.dtype == np.uint8
        assert (out / clip["file"]).stat().st_size > 0
        assert Path(clip["file"]).stem == Path(clip["frames"]).stem
        assert len(list((out / clip["trace"]).glob("*_x0.png"))) == 2
    again = tmp_path / "again"
    assert main(["generate", "--model", "motion-dit", "--prompt",
                 "a red circle moving left on a black background", "--steps", "2", "--seed", "3",
                 "--out", str(again)]) == 0
    assert np.array_equal(np.load(again / "p000_s3.npy"), np.load(out / "p000_s3.npy"))
