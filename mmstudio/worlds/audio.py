"""Audio conventions shared by every audio model and analyzer: one place for the numbers.

Audio is 16 kHz mono float32. The representation audio models work in is a natural-log power
mel spectrogram (librosa, Slaney mel scale and normalisation) with 64 mel bands and a hop of 250
samples, i.e. 64 frames per second (65 frames for a 1 s clip, frames centred). Its inverse
rebuilds the linear magnitude spectrogram by non-negative least squares
(``librosa.feature.inverse.mel_to_stft``) and the phase with Griffin-Lim (Griffin & Lim, "Signal
estimation from modified short-time Fourier transform", 1984), seeded so that the same
spectrogram always gives the same audio.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 16_000  # 1.0 s
N_MELS = 64
HOP_LENGTH = 250  # 64 frames per second
N_FFT = 1024
WIN_LENGTH = 1024
FMIN = 20.0
FMAX = 8_000.0
MEL_FLOOR = 1e-5  # power floor before the log: log-mel values are >= log(1e-5) ~ -11.5
LOG_MEL_MIN = float(np.log(MEL_FLOOR))
GRIFFIN_LIM_ITERS = 32
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH


def n_frames(n_samples: int = CLIP_SAMPLES) -> int:
    """Number of spectrogram frames for a clip of ``n_samples`` (centred frames)."""
    return 1 + n_samples // HOP_LENGTH


def one_blas_thread() -> Any:
    """Context limiting BLAS to one thread: the products here are small, and multi-threaded BLAS
    made them 7x (mel) to 20x (NNLS) slower on a busy 2-core machine."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _mel_kwargs() -> dict:
    return dict(
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH,
        n_mels=N_MELS,
        fmin=FMIN,
        fmax=FMAX,
        power=2.0,
    )


def mel_spectrogram(audio: np.ndarray) -> np.ndarray:
    """Log-mel power spectrogram of a mono clip: (64, T) float32, T = 1 + len // 250."""
    import librosa

    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"expected mono audio of shape (N,), got {y.shape}")
    with one_blas_thread():
        mel = librosa.feature.melspectrogram(y=y, **_mel_kwargs())  # (64, T)
    return np.log(np.maximum(mel, MEL_FLOOR)).astype(np.float32)


def mel_frequencies() -> np.ndarray:
    """Centre frequency in Hz of each mel band, (64,)."""
    import librosa

    return librosa.mel_frequencies(N_MELS + 2, fmin=FMIN, fmax=FMAX)[1:-1]


def mel_to_audio(
    logmel: np.ndarray,
    n_iter: int = GRIFFIN_LIM_ITERS,
    length: int = CLIP_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """Invert ``mel_spectrogram``: NNLS back to a linear spectrogram, then Griffin-Lim.

    ``logmel`` is (64, T); returns float32 audio of ``length`` samples (16,000 by default).
    """
    import librosa

    logmel = np.asarray(logmel, dtype=np.float32)
    if logmel.ndim != 2 or logmel.shape[0] != N_MELS:
        raise ValueError(f"expected a ({N_MELS}, T) log-mel spectrogram, got {logmel.shape}")
    mel = np.exp(logmel.astype(np.float64))
    with one_blas_thread():
        magnitude = librosa.feature.inverse.mel_to_stft(
            mel, sr=SAMPLE_RATE, n_fft=N_FFT, power=2.0, fmin=FMIN, fmax=FMAX
        )  # (1 + n_fft / 2, T)
        audio = librosa.griffinlim(
            magnitude,
            n_iter=n_iter,
            hop_length=HOP_LENGTH,
            win_length=WIN_LENGTH,
            n_fft=N_FFT,
            length=length,
            random_state=seed,
        )
    return np.asarray(audio, dtype=np.float32)
