"""YAMNet's frontend in numpy, as YAMNet was trained: 16 kHz mono, 25-ms periodic Hann window, 10-ms hop,
512-point FFT magnitude, 64 HTK mel bands from 125 to 7500 Hz, log(mel + 0.001), cut into 96-frame (0.96 s) patches
every 48 frames (0.48 s). The model that reads them is `soundtag.models.yamnet`."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
WINDOW, HOP, N_FFT, N_MELS = 400, 160, 512, 64
F_MIN, F_MAX, LOG_OFFSET = 125.0, 7500.0, 0.001
PATCH_FRAMES, PATCH_HOP = 96, 48
PATCH_SECONDS, PATCH_HOP_SECONDS = 0.96, 0.48


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """The HTK mel scale YAMNet was trained with."""
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """`(257, 64)` weights from FFT bins to mel bands, as TensorFlow's `linear_to_mel_weight_matrix` builds them
    (triangles on the mel scale, the DC bin left out)."""
    bins = hz_to_mel(np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1))[1:, None]
    edges = np.linspace(hz_to_mel(F_MIN), hz_to_mel(F_MAX), N_MELS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))
    return np.vstack([np.zeros((1, N_MELS)), weights]).astype(np.float32)


_MELS = mel_matrix()
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)  # periodic


def log_mel(wave: np.ndarray) -> np.ndarray:
    """16-kHz audio `(..., samples)` -> log-mel frames `(..., frames, 64)`; frames = 1 + (samples - 400) // 160."""
    frames = np.lib.stride_tricks.sliding_window_view(wave, WINDOW, axis=-1)[..., ::HOP, :]
    spectrum = np.abs(np.fft.rfft(frames * _HANN, N_FFT, axis=-1)).astype(np.float32)
    return np.log(spectrum @ _MELS + LOG_OFFSET)


def patches(wave: np.ndarray) -> np.ndarray:
    """16-kHz audio `(samples,)` -> YAMNet's patches `(n, 96, 64)`, one every 0.48 s; the end is zero-padded, as
    YAMNet does, so every sample is in a patch (n = 1 for anything up to 0.975 s)."""
    need = PATCH_SECONDS * SAMPLE_RATE + WINDOW - HOP
    hops = max(0, int(np.ceil((len(wave) - need) / (PATCH_HOP_SECONDS * SAMPLE_RATE))))
    padded = np.zeros(round(need + hops * PATCH_HOP_SECONDS * SAMPLE_RATE), np.float32)
    padded[:len(wave)] = wave[:len(padded)]
    mels = log_mel(padded)
    return np.lib.stride_tricks.sliding_window_view(mels, PATCH_FRAMES, axis=0)[::PATCH_HOP].transpose(0, 2, 1)
