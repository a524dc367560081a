"""`python -m mmstudio tokenize --model sounds-codec a.wav b.wav --out DIR --json` end to end
(on the shipped codec, or a stand-in of its architecture where it is not shipped yet)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmstudio.cli import main
from mmstudio.worlds import sounds
from mmstudio.worlds.media import write_wav
from tests.test_audio_codec_ui import _assets
from tests.test_audio_ui import stereo_wav


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _assets(tmp_path_factory.mktemp("cli-assets"))


def test_tokenize_sounds_json(assets: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))
    render = sounds.render(sounds.parse("two short beeps of a low square wave"),
                           np.random.default_rng(0))
    a = write_wav(render, tmp_path / "beeps.wav", 16_000)
    b = stereo_wav(tmp_path / "chord.wav", seconds=0.5)
    out = tmp_path / "out"
    assert main(["tokenize", "--model", "sounds-codec", str(a), str(b), "--out", str(out),
                 "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [Path(r["audio"]).name for r in records] == ["beeps.wav", "chord.wav"]
    first, second = records
    assert np.array(first["codes"]).shape == (4, 50) and first["frame_rate"] == 50.0
    assert sf.info(first["reconstruction"]).frames == 16_000
    assert [row["levels"] for row in first["ladder"]] == [1, 2, 3, 4]
    assert [row["bitrate"] for row in first["ladder"]] == [500.0, 1000.0, 1500.0, 2000.0]
    for row in first["ladder"]:
        assert Path(row["file"]).name == f"beeps.recon-k{row['levels']}.wav"
        assert sf.info(row["file"]).frames == 16_000
    assert np.array(second["codes"]).shape == (4, 25)
    assert any("mono" in note for note in second["notes"])


def test_a_bad_sound_file_is_named_and_exit_is_2(assets: Path, tmp_path: Path, monkeypatch,
                                                 capsys) -> None:
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(assets))
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    good = write_wav(np.sin(np.arange(8000) / 5).astype(np.float32) * 0.5, tmp_path / "ok.wav",
                     16_000)
    assert main(["tokenize", "--model", "sounds-codec", str(bad), str(good), "--out",
                 str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert "error:" in captured.err and "broken.wav" in captured.err
    assert "ok.wav ->" in captured.out and "k=4: 2 kbit/s" in captured.out
