"""The sounds world (WORLDS.md section 2): one-second clips of beeps and notes.

A clip is a carrier (a band-limited periodic wave, or band-passed noise) times an envelope of one
long note or two or three short beeps, each with 10 ms raised-cosine fades, scaled to a random peak
in [0.5, 0.9]. Square and sawtooth waves are summed from their harmonics below Nyquist, so they do
not alias. Noise is white noise shaped by a Gaussian in log-frequency centred on the pitch.

The analyzer works on the log-mel spectrogram of ``mmstudio.worlds.audio`` (the representation
audio models use), so it reads generated and Griffin-Lim audio the same way as renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np

from mmstudio.worlds import audio
from mmstudio.worlds.common import (
    CaptionError,
    alternation,
    check_words,
    fill_attrs,
    grammar_error,
    normalize_caption,
    vocabulary_of,
)

NAME = "sounds"
KIND = "audio"
SAMPLE_RATE = audio.SAMPLE_RATE
CLIP_SAMPLES = audio.CLIP_SAMPLES
SAMPLE_SHAPE = (CLIP_SAMPLES,)

TIMBRES = ("sine", "square", "sawtooth", "noise")
PITCHES: dict[str, float] = {"low": 220.0, "mid": 440.0, "high": 880.0}
PATTERNS = ("one long note", "two short beeps", "three short beeps")
PATTERN_NOTES = {"one long note": 1, "two short beeps": 2, "three short beeps": 3}
HELD_OUT: frozenset[tuple[str, str]] = frozenset({("high", "sawtooth"), ("low", "noise")})
PAIR_FIELDS = ("pitch", "timbre")

PEAK_RANGE = (0.5, 0.9)
LONG_NOTE_S = (0.75, 0.85)
BEEP_S = (0.13, 0.17)
GAP_S = (0.10, 0.15)
EDGE_S = 0.03  # minimum silence before the first and after the last note
FADE_S = 0.01
NOISE_OCTAVES = 0.35  # standard deviation of the noise band (power), in octaves


@dataclass(frozen=True)
class SoundAttrs:
    """Attributes of a sounds sample; ``None`` = left out (caption) or undecided (analyzer)."""

    timbre: str | None = None
    pitch: str | None = None
    pattern: str | None = None


ATTRS = SoundAttrs
FIELDS = ("timbre", "pitch", "pattern")
VALUES: dict[str, tuple[str, ...]] = {
    "timbre": TIMBRES,
    "pitch": tuple(PITCHES),
    "pattern": PATTERNS,
}
#: WORLDS.md defines no shortened sounds captions: a caption names all three or nothing.
OPTIONAL_FIELDS: tuple[str, ...] = ()
GRAMMAR = "pattern of a pitch timbre wave | pattern of pitch noise"

# ---------------------------------------------------------------------------------------- captions

_TONES = tuple(t for t in TIMBRES if t != "noise")
_VOCAB = vocabulary_of(["of a an wave noise"], TIMBRES, PITCHES, PATTERNS)
#: Every word of the caption grammar: all a text encoder trained on this world ever read.
VOCABULARY: frozenset[str] = frozenset(_VOCAB)
_CAPTION_RE = re.compile(
    rf"^(?P<pattern>{alternation(PATTERNS)}) of "
    rf"(?:an? (?P<pitch>{alternation(PITCHES)}) (?P<timbre>{alternation(_TONES)}) wave"
    rf"|(?P<npitch>{alternation(PITCHES)}) noise)$"
)


def caption(attrs: SoundAttrs) -> str:
    """``{pattern} of a {pitch} {timbre} wave`` (``{pattern} of {pitch} noise``); ``""`` when
    nothing is set. A sounds caption names all three attributes or none."""
    if all(getattr(attrs, f) is None for f in FIELDS):
        return ""
    if any(getattr(attrs, f) is None for f in FIELDS):
        raise CaptionError("a sounds caption names the pattern, the pitch and the timbre")
    if attrs.timbre == "noise":
        return f"{attrs.pattern} of {attrs.pitch} noise"
    return f"{attrs.pattern} of a {attrs.pitch} {attrs.timbre} wave"


def parse(text: str) -> SoundAttrs:
    """Read a caption back (case/whitespace tolerant, trailing period allowed); ``""`` gives
    all-``None``. Raises ``CaptionError`` naming unknown words, or saying the order is off."""
    norm = normalize_caption(text)
    if not norm:
        return SoundAttrs()
    check_words(norm, _VOCAB, NAME, GRAMMAR)
    m = _CAPTION_RE.match(norm)
    if m is None:
        raise grammar_error(norm, NAME, GRAMMAR)
    if m["npitch"] is not None:
        return SoundAttrs(timbre="noise", pitch=m["npitch"], pattern=m["pattern"])
    return SoundAttrs(timbre=m["timbre"], pitch=m["pitch"], pattern=m["pattern"])


def is_held_out(attrs: SoundAttrs) -> bool:
    """True for the pitch/timbre pairs no training data contains."""
    return (attrs.pitch, attrs.timbre) in HELD_OUT


def sample_attrs(rng: np.random.Generator, split: str = "train") -> SoundAttrs:
    """Draw complete attributes uniformly; ``train`` excludes held-out pairs."""
    return fill_attrs(SoundAttrs(), rng, VALUES, HELD_OUT, PAIR_FIELDS, split)


def random_caption_form(attrs: SoundAttrs, rng: np.random.Generator, p_shorten: float) -> str:
    """The caption of ``attrs``: the grammar has no shortened forms, so ``p_shorten`` is unused
    (kept for a uniform interface across worlds)."""
    del rng, p_shorten
    return caption(attrs)


# ---------------------------------------------------------------------------------------- renderer


@cache
def _tone_table(timbre: str, freq: float) -> np.ndarray:
    """One second plus one period of a band-limited wave at ``freq``, peak 1, float32."""
    n = CLIP_SAMPLES + int(np.ceil(SAMPLE_RATE / freq)) + 1
    t = np.arange(n) / SAMPLE_RATE
    if timbre == "sine":
        harmonics = [(1, 1.0)]
    else:
        top = int((SAMPLE_RATE / 2 - 1) // freq)
        step = 2 if timbre == "square" else 1
        harmonics = [(k, 1.0 / k) for k in range(1, top + 1, step)]
    wave = np.zeros(n)
    for k, amp in harmonics:
        wave += amp * np.sin(2 * np.pi * k * freq * t)
    wave /= np.abs(wave).max()
    table = wave.astype(np.float32)
    table.setflags(write=False)
    return table


def _noise(freq: float, rng: np.random.Generator) -> np.ndarray:
    """One second of white noise shaped to a Gaussian band around ``freq`` (log-frequency)."""
    spec = np.fft.rfft(rng.standard_normal(CLIP_SAMPLES))
    f = np.fft.rfftfreq(CLIP_SAMPLES, 1 / SAMPLE_RATE)
    octaves = np.log2(np.maximum(f, 1.0) / freq)
    gain = np.exp(-0.25 * (octaves / NOISE_OCTAVES) ** 2)  # amplitude; power is exp(-x^2/2)
    gain[0] = 0.0
    return np.fft.irfft(spec * gain, n=CLIP_SAMPLES)


def note_times(pattern: str, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Random ``(start, duration)`` in seconds for each note of ``pattern``."""
    count = PATTERN_NOTES[pattern]
    if count == 1:
        durations = [rng.uniform(*LONG_NOTE_S)]
    else:
        durations = list(rng.uniform(*BEEP_S, size=count))
    gaps = list(rng.uniform(*GAP_S, size=count - 1))
    total = sum(durations) + sum(gaps)
    t = rng.uniform(EDGE_S, 1.0 - EDGE_S - total)
    times = []
    for i, d in enumerate(durations):
        times.append((float(t), float(d)))
        t += d + (gaps[i] if i < len(gaps) else 0.0)
    return times


def envelope(times: list[tuple[float, float]]) -> np.ndarray:
    """Gate with raised-cosine fades for the given notes, (16000,) float64 in [0, 1]."""
    env = np.zeros(CLIP_SAMPLES)
    fade = int(FADE_S * SAMPLE_RATE)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    for start, dur in times:
        a, n = int(round(start * SAMPLE_RATE)), int(round(dur * SAMPLE_RATE))
        gate = np.ones(n)
        gate[:fade] = ramp
        gate[-fade:] = ramp[::-1]
        env[a : a + n] = gate
    return env


def render(attrs: SoundAttrs, rng: np.random.Generator, split: str = "all") -> np.ndarray:
    """Synthesize the clip; left-out attributes are drawn at random. Returns (16000,) float32."""
    return render_with_attrs(attrs, rng, split)[0]


def render_with_attrs(
    attrs: SoundAttrs, rng: np.random.Generator, split: str = "all"
) -> tuple[np.ndarray, SoundAttrs]:
    """``render`` that also returns the complete attributes it drew."""
    a = fill_attrs(attrs, rng, VALUES, HELD_OUT, PAIR_FIELDS, split)
    freq = PITCHES[a.pitch]
    peak = rng.uniform(*PEAK_RANGE)
    env = envelope(note_times(a.pattern, rng))
    if a.timbre == "noise":
        carrier = _noise(freq, rng)
    else:
        table = _tone_table(a.timbre, freq)
        offset = int(rng.integers(int(SAMPLE_RATE / freq)))
        carrier = table[offset : offset + CLIP_SAMPLES]
    clip = carrier * env
    clip *= peak / np.abs(clip).max()
    return clip.astype(np.float32), a  # (16000,)


# ---------------------------------------------------------------------------------------- analyzer

ACTIVE_DB = 20.0  # a frame is sounding when within this many dB of the loudest frame
CENTROID_DB = 10.0  # bands within this many dB of the peak enter the noise-band centroid
NOISE_GAP_DB = -10.0  # noise: below f0 and between harmonics at least this loud (vs f0)
TONE_GAP_DB = -11.5  # tones: both at most this loud
SILENCE_LOG = audio.LOG_MEL_MIN + np.log(10.0)  # below: treat the whole clip as silent


@dataclass(frozen=True)
class SoundFeatures:
    """Intermediate readings of the analyzer (exposed for tests and tuning)."""

    segments: list[tuple[int, int]]  # sounding runs of frames [start, stop)
    peak_hz: float  # frequency of the strongest mel band (interpolated)
    centroid_hz: float  # power-weighted mean log-frequency of the bands near the peak
    levels_db: dict[str, float]  # band levels relative to the fundamental's band


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as ``[start, stop)`` pairs."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _level_at(spec_db: np.ndarray, mel_hz: np.ndarray, freq: float) -> float:
    """Level of the spectrum at ``freq``: the louder of the two bands around it."""
    if freq <= mel_hz[0] or freq >= mel_hz[-1]:
        return float(spec_db.min())
    i = int(np.searchsorted(mel_hz, freq))
    return float(max(spec_db[i - 1], spec_db[i]))


def features(logmel: np.ndarray) -> SoundFeatures | None:
    """Segments and spectral levels from a (64, T) log-mel spectrogram; None when silent."""
    power = np.exp(logmel.astype(np.float64))  # (64, T)
    frame_db = 10 * np.log10(power.sum(axis=0) + 1e-12)  # (T,)
    if logmel.max() < SILENCE_LOG:
        return None
    active = frame_db >= frame_db.max() - ACTIVE_DB
    segments = [(a, b) for a, b in _runs(active) if b - a >= 2]
    if not segments:
        return None
    spec = power[:, active].mean(axis=1)  # (64,) mean power over sounding frames
    spec_db = 10 * np.log10(spec + 1e-12)
    mel_hz = audio.mel_frequencies()
    k = int(np.argmax(spec_db))
    peak_hz = float(mel_hz[k])
    if 0 < k < len(spec_db) - 1:  # parabolic interpolation in log-frequency
        a, b, c = spec_db[k - 1 : k + 2]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
        lo, hi = np.log2(mel_hz[k - 1]), np.log2(mel_hz[k + 1])
        mid = np.log2(mel_hz[k])
        peak_hz = float(2 ** (mid + shift * ((hi - lo) / 2)))
    top = spec_db >= spec_db.max() - CENTROID_DB
    weights = spec[top]
    centroid_hz = float(2 ** (np.sum(weights * np.log2(mel_hz[top])) / weights.sum()))
    return SoundFeatures(segments, peak_hz, centroid_hz, _levels(spec_db, mel_hz, peak_hz))


def _levels(spec_db: np.ndarray, mel_hz: np.ndarray, peak_hz: float) -> dict[str, float]:
    """Levels (dB, relative to the fundamental) at harmonics and between/below them."""
    names = list(PITCHES)
    f0 = PITCHES[names[int(np.argmin([abs(np.log2(peak_hz / PITCHES[n])) for n in names]))]]
    ref = _level_at(spec_db, mel_hz, f0)
    probes = {"h2": 2.0, "h3": 3.0, "mid": 1.5, "below": 1 / 1.5}
    return {k: _level_at(spec_db, mel_hz, f0 * m) - ref for k, m in probes.items()}


def classify_pattern(segments: list[tuple[int, int]]) -> str | None:
    """One long sounding run, or two/three short ones."""
    fps = audio.FRAMES_PER_SECOND
    lengths = [(b - a) / fps for a, b in segments]
    if len(lengths) == 1 and lengths[0] >= 0.5:
        return "one long note"
    if len(lengths) in (2, 3) and all(0.08 <= s <= 0.35 for s in lengths):
        return "two short beeps" if len(lengths) == 2 else "three short beeps"
    return None


def classify_pitch(peak_hz: float) -> str | None:
    """Nearest pitch in octaves, within a third of an octave."""
    dist = {n: abs(np.log2(peak_hz / f)) for n, f in PITCHES.items()}
    best = min(dist, key=dist.get)
    return best if dist[best] <= 1 / 3 else None


def classify_timbre(levels: dict[str, float]) -> str | None:
    """Noise fills the spectrum below and between the harmonics; tones leave it empty. Among
    tones: sine has no harmonics, square odd ones (h3 ~ -9.5 dB), sawtooth all (h2 ~ -6 dB)."""
    gaps = (levels["below"], levels["mid"])
    if min(gaps) > NOISE_GAP_DB:
        return "noise"
    if max(gaps) > TONE_GAP_DB:
        return None
    h2, h3 = levels["h2"], levels["h3"]
    if h2 < -25 and h3 < -25:
        return "sine"
    if h2 < -18 and -16 <= h3 <= -4:
        return "square"
    if -12 <= h2 <= -2 and -16 <= h3 <= -4:
        return "sawtooth"
    return None


def describe_logmel(logmel: np.ndarray) -> SoundAttrs:
    """The analyzer on a (64, T) log-mel spectrogram."""
    feats = features(logmel)
    if feats is None:
        return SoundAttrs()
    timbre = classify_timbre(feats.levels_db)
    # a tone's pitch is its fundamental, the strongest band; a noise band's is its centre
    return SoundAttrs(
        timbre=timbre,
        pitch=classify_pitch(feats.centroid_hz if timbre == "noise" else feats.peak_hz),
        pattern=classify_pattern(feats.segments),
    )


def describe(clip: np.ndarray) -> SoundAttrs:
    """The analyzer: read timbre, pitch and pattern off a 16 kHz mono clip (``None`` where it
    cannot decide). Needs no model."""
    return describe_logmel(audio.mel_spectrogram(np.asarray(clip, np.float32)))
