"""Sounds as the studio's audio models see them: any sound -> 16 kHz mono, and its representations.

``load_sound`` reads a file (WAV, FLAC, MP3, OGG through libsndfile; other containers such as M4A
or WebM through ffmpeg) or a ``(sample_rate, array)`` pair as gradio's Audio component gives it,
and converts it to the studio's audio convention (``mmstudio.worlds.audio``: 16 kHz mono float32),
saying what it did in plain notes. ``representations`` computes what models work on: the STFT
magnitude spectrogram and the log-mel spectrogram; ``rebuild`` turns the log-mel back into audio
with Griffin-Lim (Griffin & Lim, "Signal estimation from modified short-time Fourier transform",
1984), so one can hear what the mel keeps. ``arithmetic`` spells out how many numbers each
representation is. No gradio here: the Audio tab and tests call these directly.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmstudio.errors import UserError
from mmstudio.worlds import audio, sounds

SAMPLE_RATE = audio.SAMPLE_RATE
#: The studio shows and rebuilds at most this much of a sound (a 10 s Griffin-Lim takes about a
#: second on one core); longer sounds are cut, with a note. Models later take their own length.
WORK_SECONDS = 10.0
#: Longer sounds are refused rather than cut: an upload this long is probably not meant for here.
MAX_SECONDS = 60.0
MIN_SECONDS = 0.05  # shorter than this there is not one STFT frame of signal to look at
MIN_RATE, MAX_RATE = 1_000, 384_000
SILENCE_PEAK = 1e-4  # -80 dBFS: a sound whose loudest sample is below this is refused as silent
MAX_FILE_BYTES = 100 * 2**20
MAX_CHANNELS = 16
FFMPEG_TIMEOUT_S = 30.0
STFT_WINDOW = "hann"
STFT_DB_RANGE = 80.0  # the STFT picture shows the top 80 dB
LOUD_DB = 40.0  # the rebuild is compared where the log-mel is within this of its loudest
LIBSNDFILE_FORMATS = "WAV, FLAC, MP3 or OGG"


@dataclass(eq=False)  # eq=False: hashable by identity, so a gr.State holding one sees each new one
class Sound:
    """A sound ready for the studio: mono float32 at 16 kHz, at most ``WORK_SECONDS`` long."""

    audio: np.ndarray  # (N,) float32 in [-1, 1]
    label: str  # what it is: a caption, or the file's name
    origin: str  # what came in, e.g. "WAV (PCM_16), 2 channels, 44,100 Hz, 3.20 s"
    notes: list[str] = field(default_factory=list)  # what was done to it, in order
    attrs: sounds.SoundAttrs | None = None  # the sounds-world attributes of a render
    sample_rate: int = SAMPLE_RATE

    @property
    def n_samples(self) -> int:
        return int(self.audio.shape[0])

    @property
    def seconds(self) -> float:
        return self.n_samples / self.sample_rate


@dataclass(eq=False)
class Representations:
    """The STFT and log-mel spectrograms of a ``Sound`` (frames centred, hop 250 samples)."""

    stft_magnitude: np.ndarray  # (513, T) float32, |STFT|
    logmel: np.ndarray  # (64, T) float32, natural log of mel power (mmstudio.worlds.audio)

    @property
    def stft_db(self) -> np.ndarray:
        """(513, T) magnitude in dB relative to the loudest bin, floored at -80 dB."""
        mag = np.maximum(self.stft_magnitude, 1e-10)
        db = 20.0 * np.log10(mag / mag.max())
        return np.maximum(db, -STFT_DB_RANGE).astype(np.float32)


# ------------------------------------------------------------------------------ loading


def _hz(rate: float) -> str:
    return f"{rate:,.0f} Hz"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def load_sound(source: str | Path | tuple[int, np.ndarray], label: str | None = None) -> Sound:
    """``source`` (a file path, or a ``(sample_rate, samples)`` pair with samples ``(N,)`` or
    ``(N, channels)``, integer or float) as a ``Sound``, with notes on every conversion.

    Raises ``UserError`` with one sentence for anything that is not a usable sound: not audio or
    corrupt, empty, silent, too short or too long, or a sample rate out of range.
    """
    if isinstance(source, tuple):
        if len(source) != 2:
            raise UserError("expected a (sample_rate, samples) pair")
        rate, samples = source
        return _convert(np.asarray(samples), rate, label or "recording",
                        "samples from the browser", [])
    path = Path(source)
    samples, rate, origin, notes = _read_file(path)
    return _convert(samples, rate, label or path.name, origin, notes)


def _read_file(path: Path) -> tuple[np.ndarray, int, str, list[str]]:
    """Decode ``path`` to (samples (N, C) float32, rate, origin, notes)."""
    import soundfile as sf

    if not path.is_file():
        raise UserError(f"no such file: {path.name}")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path.name} is empty (0 bytes), not a sound")
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path.name} is {size / 2**20:.0f} MB; sound files up to "
                        f"{MAX_FILE_BYTES // 2**20} MB are accepted")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError):
        return _read_with_ffmpeg(path)
    _check_rate(info.samplerate)
    _check_length(info.frames / info.samplerate if info.samplerate else 0.0, path.name)
    keep = min(info.frames, int(round(WORK_SECONDS * info.samplerate)))
    try:
        samples, rate = sf.read(str(path), frames=keep, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError):
        raise UserError(f"{path.name} could not be decoded: the file is corrupt or truncated"
                        ) from None
    channels = "1 channel" if info.channels == 1 else f"{info.channels} channels"
    origin = (f"{info.format} ({info.subtype}), {channels}, {_hz(info.samplerate)}, "
              f"{_s(info.frames / info.samplerate)}")
    notes = []
    if info.subtype.startswith("PCM_"):
        notes.append(f"{info.subtype[4:]}-bit integer samples -> float in [-1, 1]")
    if keep < info.frames:
        whole = _s(info.frames / info.samplerate)
        notes.append(f"cut to the first {WORK_SECONDS:.1f} s (of {whole})")
    return samples, int(rate), origin, notes


def _read_with_ffmpeg(path: Path) -> tuple[np.ndarray, int, str, list[str]]:
    """Formats libsndfile does not read (M4A, AAC, WebM, ...): ffmpeg decodes, downmixes and
    resamples to 16 kHz mono itself."""
    not_audio = UserError(f"{path.name} is not a sound file that can be read, or it is corrupt; "
                          f"use {LIBSNDFILE_FORMATS}")
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        raise not_audio from None
    cmd = [exe, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-t", str(MAX_SECONDS + 1),
           "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        raise not_audio from None
    samples = np.frombuffer(done.stdout, "<f4")
    if done.returncode != 0 or samples.size == 0:
        raise not_audio
    _check_length(samples.size / SAMPLE_RATE, path.name)
    keep = int(WORK_SECONDS * SAMPLE_RATE)
    notes = [f"decoded by ffmpeg, which also mixed it to mono and resampled it to "
             f"{_hz(SAMPLE_RATE)}"]
    if samples.size > keep:
        notes.append(f"cut to the first {WORK_SECONDS:.1f} s (of {_s(samples.size / SAMPLE_RATE)})")
    origin = f"{path.suffix.lstrip('.').upper() or 'audio'} file decoded by ffmpeg"
    return samples[:keep, None].copy(), SAMPLE_RATE, origin, notes


def _check_rate(rate: float) -> None:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UserError(f"the sample rate {rate:,.0f} Hz is outside the accepted {MIN_RATE:,} to "
                        f"{MAX_RATE:,} Hz")


def _check_length(seconds: float, name: str) -> None:
    if seconds > MAX_SECONDS:
        raise UserError(f"{name} is {seconds:.1f} s long; sounds up to {MAX_SECONDS:.0f} s are "
                        f"accepted (the studio shows the first {WORK_SECONDS:.0f} s)")


def _to_float(samples: np.ndarray, notes: list[str]) -> np.ndarray:
    kind = samples.dtype
    if np.issubdtype(kind, np.signedinteger):
        full = float(2 ** (8 * kind.itemsize - 1))
        notes.append(f"{kind.name} -> float (divided by {full:,.0f})")
        return (samples.astype(np.float64) / full).astype(np.float32)
    if np.issubdtype(kind, np.unsignedinteger):
        half = float(2 ** (8 * kind.itemsize - 1))
        notes.append(f"{kind.name} -> float (centred on {half:,.0f}, divided by {half:,.0f})")
        return ((samples.astype(np.float64) - half) / half).astype(np.float32)
    if np.issubdtype(kind, np.floating):
        if kind != np.float32:
            notes.append(f"{kind.name} -> float32")
        return samples.astype(np.float32)
    raise UserError(f"samples of type {kind} are not a sound (expected integers or floats)")


def _convert(samples: np.ndarray, rate: object, label: str, origin: str,
             notes: list[str]) -> Sound:
    """Checks and conversions shared by files and arrays: to float, to mono, cut, resample."""
    try:
        rate_f = float(rate)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"the sample rate must be a number of Hz, not {rate!r}") from None
    if not np.isfinite(rate_f):
        raise UserError(f"the sample rate must be a number of Hz, not {rate!r}")
    _check_rate(rate_f)
    if rate_f != int(rate_f):
        raise UserError(f"the sample rate must be a whole number of Hz, not {rate_f}")
    sr = int(rate_f)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2:
        raise UserError(f"expected samples of shape (N,) or (N, channels), got {samples.shape}")
    if samples.shape[1] > MAX_CHANNELS and samples.shape[0] <= MAX_CHANNELS:
        samples = samples.T  # (channels, N) as some libraries give it
    if samples.shape[1] > MAX_CHANNELS:
        raise UserError(f"expected samples of shape (N,) or (N, channels) with at most "
                        f"{MAX_CHANNELS} channels, got {samples.shape}")
    if samples.shape[0] == 0:
        raise UserError("the sound is empty (0 samples)")
    _check_length(samples.shape[0] / sr, "the sound")
    if samples.shape[0] / sr < MIN_SECONDS:
        raise UserError(f"the sound is {1000 * samples.shape[0] / sr:.1f} ms long; at least "
                        f"{1000 * MIN_SECONDS:.0f} ms is needed")
    keep = int(round(WORK_SECONDS * sr))
    if samples.shape[0] > keep:  # cut before converting: never copy more than is shown
        notes = [*notes, f"cut to the first {WORK_SECONDS:.1f} s (of {_s(samples.shape[0] / sr)})"]
        samples = samples[:keep]
    notes = list(notes)
    x = _to_float(samples, notes)  # (N, C) float32
    if not np.isfinite(x).all():
        raise UserError("the sound has NaN or infinite samples")
    channels = x.shape[1]
    if channels > 1:
        what = "stereo" if channels == 2 else f"{channels} channels"
        notes.append(f"{what} -> mono by averaging")
    y = x.mean(axis=1, dtype=np.float64).astype(np.float32)  # (N,)
    peak = float(np.abs(y).max())
    if peak == 0.0:
        raise UserError("the sound is silent: every sample is 0")
    if peak < SILENCE_PEAK:
        raise UserError(f"the sound is silent: its loudest sample is {peak:.1e}, below "
                        f"{SILENCE_PEAK:g} (-80 dBFS)")
    if sr != SAMPLE_RATE:
        import librosa

        with audio.one_blas_thread():
            y = librosa.resample(y, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
        notes.append(f"{_hz(sr)} -> {_hz(SAMPLE_RATE)} (librosa soxr resampling)")
    peak = float(np.abs(y).max())
    if peak > 1.0:
        y = y / peak
        notes.append(f"peak {peak:.2f} above full scale -> scaled down to 1.0")
    return Sound(np.ascontiguousarray(y, dtype=np.float32), label, origin, notes)


def render_sound(caption: str, seed: int) -> Sound:
    """A sounds-world render (WORLDS.md section 2) of ``caption`` ("" = random attributes) with
    ``seed``; raises ``CaptionError`` (a ``UserError``) for a caption outside the grammar."""
    attrs = sounds.parse(caption or "")
    clip, full = sounds.render_with_attrs(attrs, np.random.default_rng(seed))
    label = sounds.caption(full) + (" (held out)" if sounds.is_held_out(full) else "")
    return Sound(clip, label, f"sounds-world render, seed {seed}: 16,000 Hz mono, 1.00 s",
                 [], attrs=full)


# ------------------------------------------------------------------------------ representations


def stft_magnitude(y: np.ndarray) -> np.ndarray:
    """|STFT| of a 16 kHz clip with the log-mel's frame grid: (513, 1 + N // 250) float32."""
    import librosa

    with audio.one_blas_thread():
        spec = librosa.stft(np.asarray(y, np.float32), n_fft=audio.N_FFT,
                            hop_length=audio.HOP_LENGTH, win_length=audio.WIN_LENGTH,
                            window=STFT_WINDOW, center=True)
    return np.abs(spec).astype(np.float32)


def representations(sound: Sound) -> Representations:
    return Representations(stft_magnitude(sound.audio), audio.mel_spectrogram(sound.audio))


def rebuild(logmel: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
    """Audio back from a (64, T) log-mel: NNLS to a linear spectrogram, then Griffin-Lim
    (``worlds.audio.GRIFFIN_LIM_ITERS`` iterations, seeded: the same mel gives the same audio)."""
    return audio.mel_to_audio(logmel, length=n_samples, seed=seed)


def n_bins() -> int:
    return 1 + audio.N_FFT // 2


def bin_frequencies() -> np.ndarray:
    """Centre frequency in Hz of each STFT bin, (513,)."""
    return np.arange(n_bins()) * SAMPLE_RATE / audio.N_FFT


def _duration(n: int, rate: int) -> str:
    """``n / rate`` seconds, with as many decimals as it takes to be exact (at most 4)."""
    for decimals in (2, 3, 4):
        if abs(round(n / rate, decimals) * rate - n) < 1e-6:
            return f"{n / rate:.{decimals}f} s"
    return f"{n / rate:.4f} s (rounded)"


def arithmetic(n_samples: int) -> list[str]:
    """How many numbers each representation of an ``n_samples`` clip at 16 kHz is, as short
    markdown lines with the arithmetic written out."""
    sr, hop, fft = SAMPLE_RATE, audio.HOP_LENGTH, audio.N_FFT
    frames, bins, mels = audio.n_frames(n_samples), n_bins(), audio.N_MELS
    return [
        f"**Waveform:** {sr:,} samples per second x {_duration(n_samples, sr)} = "
        f"{n_samples:,} numbers (one sample every {1e6 / sr:.1f} µs).",
        f"**STFT:** a {fft:,}-sample {STFT_WINDOW.title()} window ({1000 * fft / sr:.0f} ms) moved "
        f"{hop} samples ({1000 * hop / sr:.1f} ms) at a time: 1 + {n_samples:,} // {hop} = "
        f"{frames:,} frames x {bins} bins (1 + {fft:,} / 2, from 0 to {sr // 2:,} Hz every "
        f"{sr / fft:.1f} Hz) = {frames * bins:,} numbers (magnitudes: the phase is dropped).",
        f"**log-mel:** {frames:,} frames x {mels} bands = {frames * mels:,} numbers, "
        f"{n_samples / (frames * mels):.1f}x fewer than the waveform: the {bins} bins are pooled "
        f"into {mels} bands spaced like pitch ({audio.FMIN:.0f} to {audio.FMAX:,.0f} Hz, Slaney "
        f"mel scale), and the log of the power compresses loudness as ears do.",
        f"**Griffin-Lim:** the {mels} bands are spread back over {bins} bins (non-negative least "
        f"squares), then {audio.GRIFFIN_LIM_ITERS} rounds of STFT / inverse STFT guess a phase "
        f"that fits the magnitudes: {n_samples:,} samples again.",
    ]


def rebuild_figures(sound: Sound, reps: Representations, rebuilt: np.ndarray) -> list[str]:
    """How close the Griffin-Lim rebuild is: mel distance, waveform correlation and, for a
    sounds-world render, what the analyzer reads in each."""
    mel_back = audio.mel_spectrogram(rebuilt)
    diff_db = np.abs(mel_back - reps.logmel) * (10.0 / np.log(10.0))  # ln power -> dB
    loud = reps.logmel >= reps.logmel.max() - LOUD_DB * np.log(10.0) / 10.0
    a, b = sound.audio.astype(np.float64), rebuilt.astype(np.float64)
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    corr = float(a @ b / denom) if denom > 0 else 0.0
    lines = [
        f"**The rebuild** keeps the log-mel where the sound is: in the {loud.mean():.0%} of its "
        f"{reps.logmel.size:,} numbers within {LOUD_DB:.0f} dB of the loudest, the rebuild's "
        f"log-mel is {diff_db[loud].mean():.1f} dB off on average ({diff_db.mean():.1f} dB over "
        f"all, as Griffin-Lim leaves a faint noise in the quiet parts). It does not keep the "
        f"waveform: sample-by-sample correlation {corr:+.2f}, because the phase is new.",
    ]
    if sound.attrs is not None:
        heard = [sounds.describe_logmel(reps.logmel), sounds.describe_logmel(mel_back)]
        words = [_attrs_words(h) for h in heard]
        lines.append(f"**The analyzer** (WORLDS.md) reads the original as *{words[0]}* and the "
                     f"rebuild as *{words[1]}*.")
    return lines


def _attrs_words(attrs: sounds.SoundAttrs) -> str:
    try:
        text = sounds.caption(attrs)
    except UserError:
        text = ""
    if text:
        return text
    parts = [f"{f} {getattr(attrs, f) or 'undecided'}" for f in sounds.FIELDS]
    return ", ".join(parts)


# ------------------------------------------------------------------------------ example files

#: Example uploads shipped in assets/examples: each needs conversions that a render does not.
EXAMPLE_FILES = ("chord-stereo-44k.flac", "sweep-22k.wav")


def example_sounds() -> dict[str, tuple[int, np.ndarray]]:
    """The example uploads as (sample rate, int16 samples (N,) or (N, 2)), computed:
    a C major arpeggio (C4 E4 G4 C5, plucked, each note panned) in 44.1 kHz stereo, and an
    exponential sine sweep from 60 Hz to 8 kHz in 22.05 kHz mono (its mel picture bends
    where the STFT's is straight)."""
    rate = 44_100
    t = np.arange(int(2.0 * rate)) / rate
    chord = np.zeros((t.size, 2))
    for k, (freq, pan) in enumerate(((261.63, 0.2), (329.63, 0.8), (392.0, 0.35), (523.25, 0.65))):
        onset = 0.25 * k
        local = np.maximum(t - onset, 0.0)
        tone = sum(np.sin(2 * np.pi * h * freq * local) / h**1.5 for h in (1, 2, 3, 4))
        note = np.where(t >= onset, tone * np.exp(-3.0 * local) * np.minimum(local / 0.005, 1), 0)
        chord[:, 0] += (1 - pan) * note
        chord[:, 1] += pan * note
    chord *= 0.8 / np.abs(chord).max()
    sweep_rate, seconds, f0, f1 = 22_050, 3.0, 60.0, 8_000.0
    ts = np.arange(int(seconds * sweep_rate)) / sweep_rate
    k = np.log(f1 / f0)
    sweep = np.sin(2 * np.pi * f0 * seconds / k * (np.exp(ts / seconds * k) - 1))
    fade = np.minimum(1.0, np.minimum(ts, seconds - ts) / 0.02)
    sweep *= 0.5 * fade

    def pcm(x: np.ndarray) -> np.ndarray:
        return (np.clip(x, -1, 1) * 32767).round().astype(np.int16)

    return {EXAMPLE_FILES[0]: (rate, pcm(chord)), EXAMPLE_FILES[1]: (sweep_rate, pcm(sweep))}


def write_examples(folder: str | Path) -> list[Path]:
    """Write ``example_sounds`` as 16-bit FLAC / WAV files into ``folder``."""
    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (rate, samples) in example_sounds().items():
        path = folder / name
        sf.write(str(path), samples, rate, subtype="PCM_16")
        paths.append(path)
    return paths
