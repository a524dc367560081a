"""`python -m mmstudio worlds ...`, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmstudio.cli import main
from mmstudio.worlds import shapes, sounds
from mmstudio.worlds.media import read_wav


def test_render_shapes_with_caption(tmp_path: Path) -> None:
    out = tmp_path / "shapes"
    argv = f"worlds render shapes --n 3 --seed 1 --out {out}".split()
    assert main([*argv, "--caption", "A large purple triangle."]) == 0
    lines = [json.loads(s) for s in (out / "captions.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    from PIL import Image

    for rec in lines:
        img = np.asarray(Image.open(out / rec["file"]))
        assert img.shape == (32, 32, 3)
        attrs = shapes.ShapeAttrs(**rec["attributes"])
        assert shapes.describe(img) == attrs
        assert rec["caption"] == shapes.caption(attrs)
        assert attrs.color == "purple" and attrs.size == "large" and rec["held_out"]
        assert rec["prompt"] == "a large purple triangle"


def test_render_is_seeded(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(f"worlds render sounds --n 2 --seed 5 --out {tmp_path / name}".split()) == 0
    a = (tmp_path / "a" / "captions.jsonl").read_text()
    assert a == (tmp_path / "b" / "captions.jsonl").read_text()
    rec = json.loads(a.splitlines()[0])
    clip, rate = read_wav(tmp_path / "a" / rec["file"])
    assert rate == 16000 and clip.shape == (16000,)
    assert sounds.describe(clip) == sounds.SoundAttrs(**rec["attributes"])


def test_render_motion_writes_mp4_and_frames(tmp_path: Path) -> None:
    assert main(["worlds", "render", "motion", "--n", "2", "--out", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "captions.jsonl").read_text().splitlines()[1])
    assert rec["file"] == "00001.mp4" and rec["frames"] == "00001.npy"
    frames = np.load(tmp_path / rec["frames"])
    assert frames.shape == (16, 32, 32, 3) and frames.dtype == np.uint8
    head = (tmp_path / rec["file"]).read_bytes()[:64]
    assert b"ftyp" in head


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["worlds", "render", "shapes", "--caption", "a pink hexagon"], "'pink', 'hexagon'"),
        (["worlds", "render", "sounds", "--caption", "a red circle"], "'red', 'circle'"),
        (["worlds", "render", "motion", "--caption", "a red circle"], "does not follow"),
        (["worlds", "render", "shapes", "--n", "0"], "--n"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and needle in err


def test_check_and_bench(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worlds", "check", "--n", "20", "--world", "shapes", "--json"]) == 0
    tables = json.loads(capsys.readouterr().out)
    assert tables[0]["world"] == "shapes" and tables[0]["passed"]
    assert main(["worlds", "check", "--n", "5", "--world", "sounds", "--griffin-lim-n", "2"]) == 0
    text = capsys.readouterr().out
    assert "griffin-lim" in text and "timbre" in text
    assert main(["worlds", "bench", "--seconds", "0.1", "--world", "shapes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples_per_second"]["shapes"] > 0
