"""Sounds as the studio's audio models see them (mmstudio.pipelines.sound and sound_pictures):
loading and converting any sound to 16 kHz mono with notes, clear refusals, the representations'
arithmetic, Griffin-Lim's determinism, and the pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmstudio.config import Settings
from mmstudio.errors import UserError
from mmstudio.pipelines import sound as snd
from mmstudio.pipelines import sound_pictures as pics
from mmstudio.worlds import audio, sounds
from mmstudio.worlds.common import CaptionError


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(y: np.ndarray, rate: int = audio.SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(y))
    return float(np.fft.rfftfreq(y.size, 1 / rate)[np.argmax(spectrum)])


# ------------------------------------------------------------------------------ arithmetic


def test_arithmetic_of_one_second() -> None:
    lines = snd.arithmetic(16_000)
    assert len(lines) == 4
    assert "16,000 samples per second x 1.00 s = 16,000 numbers" in lines[0]
    assert "1 + 16,000 // 250 = 65 frames x 513 bins" in lines[1]
    assert "= 33,345 numbers" in lines[1]
    assert "65 frames x 64 bands = 4,160 numbers" in lines[2]
    assert "3.8x fewer than the waveform" in lines[2]
    assert "32 rounds" in lines[3] and "16,000 samples again" in lines[3]


def test_arithmetic_matches_the_arrays() -> None:
    sound = snd.render_sound("two short beeps of a mid sine wave", 0)
    reps = snd.representations(sound)
    frames = 1 + sound.n_samples // audio.HOP_LENGTH
    assert reps.stft_magnitude.shape == (513, frames) == (513, 65)
    assert reps.logmel.shape == (64, frames)
    assert reps.stft_db.max() == 0.0 and reps.stft_db.min() >= -snd.STFT_DB_RANGE
    line = snd.arithmetic(37_600)[0]
    assert "x 2.35 s = 37,600 numbers" in line
    assert "(rounded)" in snd.arithmetic(37_601)[0]


# ------------------------------------------------------------------------------ conversions


def test_stereo_44k_int16_becomes_mono_16k_with_notes() -> None:
    left = tone(440.0, 1.0, 44_100, 0.6)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # (N, 2): only the left sounds
    pcm = (stereo * 32767).round().astype(np.int16)
    sound = snd.load_sound((44_100, pcm))
    assert sound.notes == ["int16 -> float (divided by 32,768)", "stereo -> mono by averaging",
                           "44,100 Hz -> 16,000 Hz (librosa soxr resampling)"]
    assert sound.audio.dtype == np.float32 and sound.audio.shape == (16_000,)
    assert sound.sample_rate == 16_000 and sound.seconds == 1.0
    assert abs(peak_hz(sound.audio) - 440.0) <= 1.0  # the pitch survives resampling
    assert np.abs(sound.audio).max() == pytest.approx(0.3, abs=0.01)  # the average of 0.6 and 0


@pytest.mark.parametrize("samples, note", [
    ((np.ones(800, np.int32) * 2**30), "int32 -> float (divided by 2,147,483,648)"),
    ((np.full(800, 200, np.uint8)), "uint8 -> float (centred on 128, divided by 128)"),
    ((np.full(800, 0.25, np.float64)), "float64 -> float32"),
])
def test_sample_types(samples: np.ndarray, note: str) -> None:
    sound = snd.load_sound((16_000, samples))
    assert sound.notes == [note]
    assert 0.2 < float(sound.audio[400]) < 0.6


def test_channels_first_and_over_full_scale() -> None:
    y = tone(1000.0, 0.5, 16_000, 2.0)
    sound = snd.load_sound((16_000, np.stack([y, y])))  # (2, N), as some libraries give it
    assert sound.n_samples == 8_000
    assert sound.notes == ["stereo -> mono by averaging",
                           "peak 2.00 above full scale -> scaled down to 1.0"]
    assert np.abs(sound.audio).max() == pytest.approx(1.0)


def test_long_sounds_are_cut_to_the_working_length() -> None:
    y = tone(300.0, 15.0, 8_000)
    sound = snd.load_sound((8_000, y))
    assert sound.notes[0] == "cut to the first 10.0 s (of 15.00 s)"
    assert sound.n_samples == 160_000


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg", "mp3"])
def test_files_of_every_format(tmp_path: Path, suffix: str) -> None:
    y = tone(660.0, 1.5, 22_050)
    path = tmp_path / f"tone.{suffix}"
    sf.write(str(path), np.stack([y, y], axis=1), 22_050)
    sound = snd.load_sound(path)
    assert sound.label == path.name
    assert sound.origin.startswith(("WAV", "FLAC", "OGG", "MP3")) and "2 channels" in sound.origin
    assert "stereo -> mono by averaging" in sound.notes
    assert "22,050 Hz -> 16,000 Hz (librosa soxr resampling)" in sound.notes
    assert abs(sound.n_samples - 24_000) <= 2_400  # MP3 and Vorbis pad a little
    assert abs(peak_hz(sound.audio) - 660.0) <= 2.0


def test_file_cut_reads_only_the_working_length(tmp_path: Path) -> None:
    path = tmp_path / "long.flac"
    sf.write(str(path), tone(200.0, 20.0, 8_000), 8_000, subtype="PCM_16")
    sound = snd.load_sound(path)
    assert sound.notes == ["16-bit integer samples -> float in [-1, 1]",
                           "cut to the first 10.0 s (of 20.00 s)",
                           "8,000 Hz -> 16,000 Hz (librosa soxr resampling)"]
    assert sound.n_samples == 160_000


def test_other_containers_through_ffmpeg(tmp_path: Path) -> None:
    import subprocess

    import imageio_ffmpeg

    wav = tmp_path / "tone.wav"
    sf.write(str(wav), tone(500.0, 1.0, 48_000), 48_000)
    m4a = tmp_path / "tone.m4a"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(wav), "-c:a", "aac",
                    str(m4a)], check=True, timeout=60)
    sound = snd.load_sound(m4a)
    assert "decoded by ffmpeg" in sound.notes[0] and sound.origin.startswith("M4A")
    assert abs(sound.n_samples - 16_000) <= 1_600
    assert abs(peak_hz(sound.audio) - 500.0) <= 2.0


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda d: _write(d / "noise.wav", b"RIFF\x10\x00\x00\x00WAVEgarbage" * 20),
     "noise.wav is not a sound file that can be read, or it is corrupt"),
    (lambda d: _write(d / "notes.txt", b"this is not a sound"),
     "notes.txt is not a sound file that can be read"),
    (lambda d: _write(d / "empty.wav", b""), "empty.wav is empty (0 bytes)"),
    (lambda d: d / "missing.wav", "no such file: missing.wav"),
])
def test_bad_files(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        snd.load_sound(make(tmp_path))


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(str(path), tone(440.0, 2.0, 16_000), 16_000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] + b"\x00" * 50)
    with pytest.raises(UserError, match="cut.flac"):
        snd.load_sound(path)


def test_too_long_file_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(str(path), np.zeros(61 * 1_000, np.float32) + 0.1, 1_000)
    with pytest.raises(UserError, match=r"long.wav is 61.0 s long; sounds up to 60 s"):
        snd.load_sound(path)


@pytest.mark.parametrize("rate, samples, message", [
    (16_000, np.zeros(0, np.float32), "the sound is empty (0 samples)"),
    (16_000, np.zeros(16_000, np.int16), "the sound is silent: every sample is 0"),
    (16_000, np.full(16_000, 3e-5, np.float32),
     "the sound is silent: its loudest sample is 3.0e-05, below 0.0001 (-80 dBFS)"),
    (500, np.ones(1_000, np.float32), "the sample rate 500 Hz is outside the accepted 1,000 to "
                                      "384,000 Hz"),
    (400_000, np.ones(400_000, np.float32), "the sample rate 400,000 Hz is outside"),
    (16_000, np.ones(16_000 * 61, np.float32) * 0.1,
     "the sound is 61.0 s long; sounds up to 60 s are accepted"),
    (16_000, np.ones(100, np.float32), "the sound is 6.2 ms long; at least 50 ms is needed"),
    (16_000, np.array([0.1, np.nan] * 800, np.float32), "NaN or infinite"),
    (16_000, np.ones((4, 4, 4), np.float32), "expected samples of shape (N,) or (N, channels)"),
    (16_000, np.ones((1_000, 40), np.float32), "at most 16 channels"),
    (16_000, np.array(["a"] * 1_000), "are not a sound"),
    (16_000.5, np.ones(16_000, np.float32), "a whole number of Hz"),
    ("fast", np.ones(16_000, np.float32), "a number of Hz, not 'fast'"),
])
def test_bad_arrays(rate, samples: np.ndarray, message: str) -> None:
    with pytest.raises(UserError) as info:
        snd.load_sound((rate, samples))
    assert message in str(info.value)


# ------------------------------------------------------------------------------ renders, rebuild


def test_render_from_a_caption() -> None:
    sound = snd.render_sound("three short beeps of a high sawtooth wave", 4)
    assert sound.label == "three short beeps of a high sawtooth wave (held out)"
    assert sound.attrs == sounds.SoundAttrs("sawtooth", "high", "three short beeps")
    assert sound.n_samples == 16_000 and sound.notes == []
    random_one = snd.render_sound("", 7)
    assert random_one.attrs is not None and random_one.attrs.timbre in sounds.TIMBRES
    assert np.array_equal(snd.render_sound("", 7).audio, random_one.audio)
    with pytest.raises(CaptionError, match="'purple'"):
        snd.render_sound("one long note of a purple wave", 0)


def test_griffin_lim_is_deterministic_and_keeps_the_mel() -> None:
    sound = snd.render_sound("one long note of a mid square wave", 2)
    reps = snd.representations(sound)
    first = snd.rebuild(reps.logmel, sound.n_samples)
    assert first.shape == (16_000,) and first.dtype == np.float32
    assert np.array_equal(first, snd.rebuild(reps.logmel, sound.n_samples))
    assert not np.array_equal(first, snd.rebuild(reps.logmel, sound.n_samples, seed=1))
    lines = snd.rebuild_figures(sound, reps, first)
    assert "dB off on average" in lines[0] and "correlation" in lines[0]
    assert ("reads the original as *one long note of a mid square wave* and the rebuild as "
            "*one long note of a mid square wave*") in lines[1]


def test_example_files_are_shipped_and_reproducible(tmp_path: Path) -> None:
    shipped = Settings.from_env().examples_dir
    for path in snd.write_examples(tmp_path):
        again, rate = sf.read(str(path), dtype="int16")
        ours, rate_shipped = sf.read(str(shipped / path.name), dtype="int16")
        assert rate == rate_shipped and again.shape == ours.shape
        assert np.abs(again.astype(np.int32) - ours).max() <= 1
    chord = snd.load_sound(shipped / "chord-stereo-44k.flac")
    assert "stereo -> mono by averaging" in chord.notes and chord.n_samples == 32_000


# ------------------------------------------------------------------------------ pictures


def test_picture_shapes() -> None:
    sound = snd.render_sound("two short beeps of a low square wave", 1)
    reps = snd.representations(sound)
    pictures = {
        "waveform": pics.waveform_picture(sound.audio, window=(0.3, 0.01)),
        "zoom": pics.zoom_picture(sound.audio, 0.3, 0.01),
        "stft": pics.stft_picture(reps.stft_db, sound.seconds),
        "mel": pics.mel_picture(reps.logmel, sound.seconds),
    }
    assert pictures["waveform"].shape == pictures["zoom"].shape == (190, 960, 3)
    assert pictures["stft"].shape == pictures["mel"].shape == (270, 960, 3)
    for image in pictures.values():
        assert image.dtype == np.uint8 and image.std() > 10  # drawn, not blank


def test_waveform_highlights_the_zoom_window() -> None:
    y = tone(300.0, 1.0, 16_000)
    plain = pics.waveform_picture(y)
    marked = pics.waveform_picture(y, window=(0.5, 0.05))
    changed = np.flatnonzero(np.any(plain != marked, axis=(0, 2)))
    x0 = pics.LEFT
    plot_w = 960 - pics.RIGHT - pics.LEFT
    assert abs(changed.min() - (x0 + 0.5 * plot_w)) <= 3
    assert abs(changed.max() - (x0 + 0.55 * plot_w)) <= 4


def test_zoom_draws_one_dot_per_sample() -> None:
    y = tone(500.0, 0.1, 16_000)
    image = pics.zoom_picture(y, 0.02, 0.001)  # 16 samples
    stem = np.all(image == np.array(pics.STEM, np.uint8), axis=2)
    columns = np.flatnonzero(stem.any(axis=0))
    groups = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
    assert len(groups) == 16


def test_spectrogram_has_frequency_up() -> None:
    y = tone(4_000.0, 1.0, 16_000)
    reps = snd.representations(snd.load_sound((16_000, y)))
    image = pics.stft_picture(reps.stft_db, 1.0)
    plot_h = 270 - pics.TOP - pics.BOTTOM
    column = image[pics.TOP:pics.TOP + plot_h, pics.LEFT + 300].astype(int).sum(axis=1)
    brightest = int(np.argmax(column))
    assert abs(brightest - plot_h * 0.5) <= 3  # 4 kHz is halfway up the 0..8 kHz axis
    mel = pics.mel_picture(reps.logmel, 1.0)
    column = mel[pics.TOP:pics.TOP + plot_h, pics.LEFT + 300].astype(int).sum(axis=1)
    band = int(np.argmin(np.abs(audio.mel_frequencies() - 4_000.0)))
    assert abs(int(np.argmax(column)) - plot_h * (1 - (band + 0.5) / audio.N_MELS)) <= 5


def test_colormap_is_magma() -> None:
    lut = pics.colormap_lut()
    assert lut.shape == (256, 3) and tuple(lut[0]) == (0, 0, 4) and tuple(lut[-1]) == (252, 253,
                                                                                        191)
    brightness = lut.astype(int) @ np.array([299, 587, 114])
    assert np.all(np.diff(brightness) >= 0)  # perceptually ordered: dark to light
    matplotlib = pytest.importorskip("matplotlib")
    reference = matplotlib.colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255
    assert np.abs(lut - reference).max() < 12
