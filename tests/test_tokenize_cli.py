"""`python -m mmstudio tokenize --model ID IMAGE... --out DIR [--json]` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmstudio.cli import main
from mmstudio.config import REPO_ROOT, Settings

EXAMPLES = Settings.from_env().examples_dir


def test_json_output_and_reconstructions(tmp_path: Path, capsys) -> None:
    images = [EXAMPLES / "shapes-red-circle.png", EXAMPLES / "grayscale-rings.png"]
    code = main(["tokenize", "--model", "shapes-vqvae", *map(str, images), "--out",
                 str(tmp_path / "out"), "--json"])
    assert code == 0
    records = json.loads(capsys.readouterr().out)
    assert [Path(r["image"]).name for r in records] == [p.name for p in images]
    for record in records:
        grid = record["tokens"]
        assert len(grid) == 8 and all(len(row) == 8 for row in grid)
        assert all(0 <= t < 512 for row in grid for t in row)
        assert record["psnr_db"] > 0 and record["usage"]["num_codes"] == 512
        assert 1 <= record["usage"]["used"] <= 64 and record["usage"]["perplexity"] >= 1
        recon = np.asarray(Image.open(record["reconstruction"]))
        assert recon.shape == (32, 32, 3)
    assert records[0]["psnr_db"] > 24  # a shapes render comes back well
    assert any("mode L" in n for n in records[1]["notes"])


def test_text_output_and_a_bad_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"")
    code = main(["tokenize", str(EXAMPLES / "checkerboard.png"), str(bad), "--out",
                 str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2  # the good image is still written
    assert "broken.png is empty (0 bytes)" in captured.err
    assert "checkerboard.png ->" in captured.out and "PSNR" in captured.out
    assert "tokens: [[" in captured.out and "resized from 256 x 256" in captured.out
    assert (tmp_path / "out" / "checkerboard.recon.png").is_file()


def test_unknown_model_and_wrong_task(tmp_path: Path, capsys) -> None:
    image = str(EXAMPLES / "gradient.png")
    assert main(["tokenize", "--model", "nope", image, "--out", str(tmp_path)]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["tokenize", "--model", "shapes-clip", image, "--out", str(tmp_path)]) == 2
    assert "not a tokenize model" in capsys.readouterr().err


def test_as_a_subprocess(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mmstudio", "tokenize", "--model", "shapes-vqgan",
         str(EXAMPLES / "shapes-white-cross.png"), "--out", str(tmp_path), "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)[0]
    assert record["model"] == "shapes-vqgan" and record["compression"] > 40


def test_many_images_run_in_batches(tmp_path: Path, capsys) -> None:
    """150 images (more than one forward pass holds), one of them broken: every good one is
    tokenized exactly as it is alone, in order."""
    from mmstudio.worlds import shapes
    from mmstudio.worlds.datasets import eval_set

    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for i, item in enumerate(eval_set(shapes, 150)):
        paths.append(folder / f"r{i:03d}.png")
        Image.fromarray(item.sample).save(paths[-1])
    paths[70].write_bytes(b"")  # a broken one in the middle of the second batch
    code = main(["tokenize", "--model", "shapes-vqvae", *map(str, paths), "--out",
                 str(tmp_path / "out"), "--json"])
    captured = capsys.readouterr()
    assert code == 2 and "r070.png is empty" in captured.err
    records = json.loads(captured.out)
    assert [Path(r["image"]).name for r in records] == [p.name for k, p in enumerate(paths)
                                                         if k != 70]
    for k in (0, 69, 71, 149):
        assert main(["tokenize", "--model", "shapes-vqvae", str(paths[k]), "--out",
                     str(tmp_path / "alone"), "--json"]) == 0
        alone = json.loads(capsys.readouterr().out)[0]
        batched = next(r for r in records if r["image"] == str(paths[k]))
        assert alone["tokens"] == batched["tokens"]
        assert alone["psnr_db"] == pytest.approx(batched["psnr_db"], abs=0.05)
