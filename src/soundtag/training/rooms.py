"""Synthetic room impulse responses for training: a direct path, a few early reflections and a diffuse tail.

The tail is Gaussian noise decaying exponentially in four frequency bands, each with its own reverberation time
(high frequencies die faster: air and soft surfaces absorb them); the early reflections are sparse echoes in the
first 30 ms, which colour the sound (comb filtering) the way walls near a phone do. The direct-to-reverberant ratio
(DRR) sets how far the microphone is from the source: +10 dB close up, -15 dB across a large, bare room. This
stochastic model is cheap and independent of the geometric (image source) rooms `bench/robustness.py` tests with.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

BAND_EDGES_HZ = (0.0, 500.0, 2_000.0, 6_000.0)  # lower edges of the four decay bands
BAND_RT60_SCALE = (1.0, 0.9, 0.7, 0.5)  # each band's reverberation time relative to the lowest band's
RT60_S = (0.2, 1.3)
DRR_DB = (-15.0, 10.0)


def room_impulse(rng: np.random.Generator, sample_rate: int, rt60: float | None = None,
                 drr_db: float | None = None) -> np.ndarray:
    """One impulse response `(samples,)`, direct sound at sample 0 with gain 1; `rt60` (s, lowest band) and
    `drr_db` drawn from RT60_S and DRR_DB when not given."""
    rt60 = rng.uniform(*RT60_S) if rt60 is None else rt60
    drr_db = rng.uniform(*DRR_DB) if drr_db is None else drr_db
    n = int(rt60 * sample_rate)  # 60 dB down at the end of the lowest band, more in the others
    t = np.arange(n) / sample_rate
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    edges = [*BAND_EDGES_HZ, np.inf]
    tail = sum(np.fft.irfft(spectrum * ((freqs >= lo) & (freqs < hi)), n) * np.exp(-6.9 * t / (rt60 * scale))
               for lo, hi, scale in zip(edges[:-1], edges[1:], BAND_RT60_SCALE))
    tail[: int(0.002 * sample_rate)] = 0.0  # the diffuse field starts after the first reflections
    for _ in range(rng.integers(4, 12)):  # early reflections: 1-30 ms, weaker with distance
        delay = int(rng.uniform(0.001, 0.03) * sample_rate)
        tail[delay] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.8) * np.exp(-6.9 * delay / sample_rate / rt60)
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail ** 2)), 1e-20))
    tail[0] = 1.0
    return tail


def reverberate(wave: np.ndarray, impulse: np.ndarray) -> np.ndarray:
    """`wave` heard in the room of `impulse`, same length and same RMS level (the room changes the sound, not how
    loud the recording was made)."""
    wet = fftconvolve(wave, impulse)[: len(wave)]
    scale = np.sqrt(np.mean(wave.astype(np.float64) ** 2) / max(float(np.mean(wet ** 2)), 1e-20))
    return (wet * scale).astype(np.float32)
