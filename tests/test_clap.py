"""sounds-clap: the torch log-mel equals the analyzer's, the multi-positive target, a few
training steps exported and reloaded through the catalog's loader, embeddings and zero-shot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmstudio.catalog import ModelSpec
from mmstudio.loaders import load_open_clap
from mmstudio.pipelines import sound_align
from mmstudio.training import clap as train_clap
from mmstudio.worlds import audio, sounds


def clips(n: int = 4) -> np.ndarray:
    texts = ["one long note of a low sine wave", "three short beeps of high noise",
             "two short beeps of a mid square wave", "one long note of a high sawtooth wave"]
    return np.stack([sounds.render(sounds.parse(texts[i % 4]), np.random.default_rng(i))
                     for i in range(n)])


def test_torch_log_mel_equals_the_analyzers() -> None:
    x = clips(3)
    ours = sound_align.log_mel(x).numpy()
    ref = np.stack([audio.mel_spectrogram(c) for c in x])
    assert ours.shape == ref.shape == (3, 64, 65)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    tower = sound_align.clips_to_tensor(x)
    assert tower.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(tower[:, 0].numpy(), (ref[..., :64] + 6.0) / 4.0, atol=1e-4)


def test_positives_are_equal_captions() -> None:
    caps = ["a", "b", "a", "c"]
    pos = train_clap.positives(caps)
    assert pos.tolist() == [[True, False, True, False], [False, True, False, False],
                            [True, False, True, False], [False, False, False, True]]


def test_training_export_and_zero_shot(tmp_path: Path) -> None:
    argv = ["--steps", "2", "--batch", "8", "--run", str(tmp_path / "run"), "--eval-every", "0"]
    assert train_clap.main("sounds-clap", argv) == 0
    folder = tmp_path / "run" / "export"
    assert (folder / "open_clip_model.safetensors").stat().st_size < 10 * 2**20
    frontend = json.loads((folder / "audio_frontend.json").read_text())
    assert frontend["frames"] == 64 and frontend["n_mels"] == 64
    spec = ModelSpec(id="sounds-clap", tasks=("audio_similarity",), source="assets",
                     loader="open_clap")
    components = load_open_clap(folder, spec, torch.float32)
    model = sound_align.ClapModel("sounds-clap", components)
    assert model.kind == "open_clip" and model.sample_rate == 16_000
    a = model.embed_audio(clips(4))
    t = model.embed_texts(sound_align.sounds_captions())
    assert a.shape == (4, 64) and t.shape == (36, 64)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(4))
    np.testing.assert_array_equal(a.numpy(), model.embed_audio(clips(4)).numpy())
    best, probs = sound_align.zero_shot_captions(model, clips(4))
    assert len(best) == 4 and probs.shape == (4, 36)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # a short clip is padded with silence to the model's second; another rate is resampled
    short = model.embed_audio(clips(1)[:, :8000])
    assert short.shape == (1, 64)
    resampled = model.embed_audio(np.zeros((1, 22_050), np.float32) + clips(1)[:, :1], 22_050)
    assert resampled.shape == (1, 64) and torch.isfinite(resampled).all()


def test_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    from mmstudio.errors import UserError

    with pytest.raises(UserError, match="no checkpoint"):
        train_clap.main("sounds-clap", ["--run", str(tmp_path / "none"), "--resume"])


def test_hub_clap_htsat_unfused_layout(tmp_path: Path, offline_settings) -> None:
    from mmstudio.catalog import Catalog
    from mmstudio.devices import DeviceInfo
    from mmstudio.manager import ModelManager
    from tests import tiny_models

    folder = tiny_models.make_clap(tmp_path / "build" / "clap")
    tiny_models.install_in_hub_cache(folder, "laion/clap-htsat-unfused",
                                     offline_settings.hub_cache)
    manager = ModelManager(offline_settings, Catalog.load(offline_settings),
                           devices=[DeviceInfo("cpu", 8 * 10**9, 8 * 10**9)])
    with manager.use("laion/clap-htsat-unfused") as loaded:
        model = sound_align.ClapModel.from_loaded(loaded)
        assert model.kind == "transformers" and model.sample_rate == 48_000
        a = model.embed_audio(clips(3))  # 16 kHz clips, resampled to 48 kHz by the wrapper
        t = model.embed_texts(["one long note of a low sine wave", "three short beeps"])
        assert a.shape == (3, 16) and t.shape == (2, 16)
        torch.testing.assert_close(a.norm(dim=1), torch.ones(3))
        np.testing.assert_array_equal(a.numpy(), model.embed_audio(clips(3)).numpy())
        best, probs = sound_align.zero_shot_captions(model, clips(2))
        assert probs.shape == (2, 36) and len(best) == 2
