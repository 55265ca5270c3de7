from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from soundtag.audio.load import load_clip
from soundtag.features.logmel import FrontendConfig, LogMel, mel_filterbank

CFG = FrontendConfig()


def librosa_mel(wave: np.ndarray, c: FrontendConfig = CFG) -> np.ndarray:
    return librosa.feature.melspectrogram(y=wave, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length,
                                          n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max, center=True,
                                          pad_mode="constant", power=2.0)


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def test_filterbank_equals_librosa() -> None:
    ref = librosa.filters.mel(sr=CFG.sample_rate, n_fft=CFG.n_fft, n_mels=CFG.n_mels, fmin=CFG.f_min, fmax=CFG.f_max)
    np.testing.assert_allclose(mel_filterbank(CFG).numpy().T, ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dft_as_conv", [False, True])
def test_mel_power_equals_librosa_on_generated_audio(dft_as_conv: bool) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(CFG.sample_rate * 5) / CFG.sample_rate
    waves = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(len(t)),
                      np.sin(2 * np.pi * (100 + 2000 * t) * t) * np.exp(-t)]).astype(np.float32)
    ours = LogMel(CFG, dft_as_conv).power_mel(torch.from_numpy(waves)).numpy()
    assert relative_error(ours, librosa_mel(waves)) <= 1e-4


def test_mel_power_equals_librosa_on_real_clips(real_esc50: Path) -> None:
    paths = sorted((real_esc50 / "audio").glob("*.wav"))[::250]
    waves = np.stack([load_clip(p) for p in paths])
    ours = LogMel(CFG).power_mel(torch.from_numpy(waves)).numpy()
    for o, w in zip(ours, waves):
        assert relative_error(o, librosa_mel(w)) <= 1e-4


def test_shapes_and_batch_dimensions() -> None:
    x = torch.randn(2, 3, 32000 * 5)
    out = LogMel(CFG)(x)
    assert out.shape == (2, 3, CFG.n_mels, CFG.num_frames(32000 * 5)) == (2, 3, 64, 501)
    torch.testing.assert_close(out[1, 2], LogMel(CFG)(x[1, 2]))  # batching does not mix clips


def test_per_clip_normalisation_removes_gain() -> None:
    x = torch.randn(1, 32000)
    quiet, loud = LogMel(CFG)(0.01 * x), LogMel(CFG)(x)
    assert quiet.mean().abs() < 1e-4 and (quiet.std() - 1).abs() < 1e-3
    torch.testing.assert_close(quiet, loud, atol=1e-3, rtol=1e-3)


def test_silence_gives_finite_features() -> None:
    assert torch.isfinite(LogMel(CFG)(torch.zeros(2, 32000))).all()


def test_top_db_floor_and_unnormalised_output() -> None:
    c = replace(CFG, normalize=False)
    db = LogMel(c)(torch.randn(1, 32000) * torch.linspace(0, 1, 32000) ** 8)
    assert (db.amax() - db.amin()) <= c.top_db + 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_runs_on_gpu() -> None:
    x = torch.randn(2, 32000)
    torch.testing.assert_close(LogMel(CFG).cuda()(x.cuda()).cpu(), LogMel(CFG)(x), atol=1e-3, rtol=1e-3)
