"""Log-mel frontend on plain torch: STFT, Slaney mel filterbank, dB with a floor, per-clip normalisation.

Batched and device-agnostic; the filterbank and window are buffers, so `.to(device)` moves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class FrontendConfig:
    """Every frontend parameter; defaults follow common ESC-50 practice for 32 kHz audio (10 ms hop)."""

    sample_rate: int = 32_000
    n_fft: int = 1024
    hop_length: int = 320
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 14_000.0
    top_db: float = 80.0  # dynamic range kept below each clip's loudest bin
    normalize: bool = True  # per-clip zero mean, unit variance

    def __post_init__(self) -> None:
        if not 1_000 <= self.sample_rate <= 768_000:
            raise ValueError(f"sample_rate must lie in 1000-768000 Hz, got {self.sample_rate}")
        if not 16 <= self.n_fft <= 16_384 or not 1 <= self.hop_length <= self.n_fft or not 1 <= self.n_mels <= 512:
            raise ValueError(f"need 16 <= n_fft <= 16384, 1 <= hop_length <= n_fft and 1 <= n_mels <= 512; got "
                             f"n_fft {self.n_fft}, hop_length {self.hop_length}, n_mels {self.n_mels}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2 ({self.sample_rate / 2:g} Hz); got f_min "
                             f"{self.f_min}, f_max {self.f_max}")
        if not 0 < self.top_db < 200:
            raise ValueError(f"top_db must lie in (0, 200) dB, got {self.top_db}")

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_length


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3.0 / 200.0
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * 200.0 / 3.0
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, linear)


def mel_filterbank(config: FrontendConfig) -> torch.Tensor:
    """Triangular, area-normalised (Slaney) filters, shape `(n_fft // 2 + 1, n_mels)`."""
    fft_hz = np.linspace(0.0, config.sample_rate / 2, config.n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(config.f_min), hz_to_mel(config.f_max), config.n_mels + 2))
    width = np.diff(edges_hz)
    slopes = edges_hz[:, None] - fft_hz[None, :]
    rising = -slopes[:-2] / width[:-1, None]
    falling = slopes[2:] / width[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return torch.from_numpy(weights.T.astype(np.float32))


def dft_basis(config: FrontendConfig, window: torch.Tensor, bins: int) -> torch.Tensor:
    """Windowed cosine and negated sine rows for the first `bins` FFT frequencies, `(2 * bins, 1, n_fft)`: with a
    stride of `hop_length`, a convolution with them is the STFT's real and imaginary parts."""
    angle = 2 * np.pi * np.outer(np.arange(bins), np.arange(config.n_fft)) / config.n_fft
    basis = np.concatenate([np.cos(angle), -np.sin(angle)]) * window.double().numpy()
    return torch.from_numpy(basis[:, None, :].astype(np.float32))


class LogMel(nn.Module):
    """Waveforms `(..., time)` at `config.sample_rate` -> log-mel features `(..., n_mels, frames)`.

    With `config.normalize`, each clip has zero mean and unit variance over all its bins, which removes
    loudness differences between recordings. `dft_as_conv` computes the spectrum as a strided convolution with a
    DFT basis over the bins the mel filters use, instead of an FFT: more arithmetic, but onnxruntime runs it about
    2x faster than its own STFT kernel, so the ONNX export uses it (the two agree to float rounding).
    """

    def __init__(self, config: FrontendConfig = FrontendConfig(), dft_as_conv: bool = False):
        super().__init__()
        self.config = config
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        self.register_buffer("filterbank", mel_filterbank(config), persistent=False)
        bins = int(self.filterbank.abs().sum(1).nonzero().max()) + 1  # above f_max every filter is zero
        basis = dft_basis(config, self.window, bins) if dft_as_conv else None
        self.register_buffer("dft", basis, persistent=False)

    def power_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram `(..., n_mels, frames)` before the log (what librosa.feature.melspectrogram gives)."""
        c = self.config
        batch_shape = wave.shape[:-1]
        flat = wave.reshape(-1, wave.shape[-1]).float()
        if self.dft is None:
            spec = torch.stft(flat, c.n_fft, c.hop_length, window=self.window, center=True, pad_mode="constant",
                              return_complex=True)
            power = spec.real.square() + spec.imag.square()
        else:
            half = len(self.dft) // 2
            spec = F.conv1d(F.pad(flat[:, None], (c.n_fft // 2, c.n_fft // 2)), self.dft, stride=c.hop_length)
            power = spec[:, :half].square() + spec[:, half:].square()
        mel = torch.matmul(power.transpose(-1, -2), self.filterbank[:power.shape[-2]]).transpose(-1, -2)
        return mel.reshape(*batch_shape, c.n_mels, -1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.compress(self.power_mel(wave))

    def compress(self, power: torch.Tensor) -> torch.Tensor:
        """Mel power `(..., n_mels, frames)` -> dB, floored `top_db` below the clip's peak, normalised per clip."""
        db = 10.0 * torch.log10(power.clamp_min(1e-10))
        db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - self.config.top_db)
        if self.config.normalize:
            centred = db - _mean(db)
            bins = db.shape[-2] * db.shape[-1]
            std = (_mean(centred.square()) * bins / (bins - 1)).sqrt()  # unbiased, like torch.std
            db = centred / (std + 1e-5)
        return db


def _mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over (mels, frames), one axis at a time: onnxruntime sums a single 32k-element run in fp32 and lost
    ~1e-5 of relative precision, enough to move exported probabilities by 2e-4; shorter sums keep it below 1e-6."""
    return x.mean(dim=-2, keepdim=True).mean(dim=-1, keepdim=True)
