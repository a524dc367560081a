"""Audio conventions: mel spectrogram shapes, Griffin-Lim round trip, analyzer after it."""

from __future__ import annotations

import numpy as np

from mmstudio.worlds import audio, sounds
from mmstudio.worlds.check import analyzer_accuracy, griffin_lim_roundtrip


def test_mel_shapes_and_constants() -> None:
    assert audio.SAMPLE_RATE == 16000 and audio.N_MELS == 64
    assert audio.FRAMES_PER_SECOND == 64
    clip = sounds.render(sounds.SoundAttrs(), np.random.default_rng(0))
    mel = audio.mel_spectrogram(clip)
    assert mel.shape == (64, 65) == (audio.N_MELS, audio.n_frames())
    assert mel.dtype == np.float32
    assert mel.min() >= audio.LOG_MEL_MIN - 1e-4
    assert audio.mel_frequencies().shape == (64,)


def test_mel_round_trip() -> None:
    clip = sounds.render(
        sounds.parse("one long note of a mid square wave"), np.random.default_rng(1)
    )
    mel = audio.mel_spectrogram(clip)
    rebuilt = audio.mel_to_audio(mel)
    assert rebuilt.shape == (16000,) and rebuilt.dtype == np.float32
    assert np.array_equal(rebuilt, audio.mel_to_audio(mel))  # seeded Griffin-Lim
    again = audio.mel_spectrogram(rebuilt)
    assert again.shape == mel.shape
    loud = mel > mel.max() - np.log(1e3)  # within 30 dB of the peak: the sounding part comes back
    assert np.abs(again[loud] - mel[loud]).mean() < 0.5
    assert sounds.describe(rebuilt) == sounds.describe(clip)


def test_analyzer_after_griffin_lim() -> None:
    table = analyzer_accuracy(
        "sounds", 20, seed=7, transform=griffin_lim_roundtrip, condition="griffin-lim"
    )
    for field in sounds.FIELDS:
        assert table.accuracy(field) >= 0.95, table.format()
