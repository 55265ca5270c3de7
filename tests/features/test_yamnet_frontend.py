"""YAMNet's frontend: the mel filterbank, log-mel frames and patches."""


import numpy as np
import pytest
from conftest import tone

from soundtag.features import yamnet as frontend


def test_mel_matrix_is_tensorflows_triangles_without_dc() -> None:
    mels = frontend.mel_matrix()
    assert mels.shape == (257, 64)
    assert not mels[0].any()  # the DC bin feeds no band
    assert mels.max() <= 1 and (mels.max(0) > 0.5).all()  # every band reaches near its peak on some bin
    centres = mels.argmax(0)
    assert (np.diff(centres) >= 0).all()
    hz = np.linspace(0, 8000, 257)
    assert hz[np.flatnonzero(mels.any(1))].min() > 125 - 32 and hz[np.flatnonzero(mels.any(1))].max() < 7500 + 32


def test_log_mel_frames_and_a_tone_in_its_band() -> None:
    wave = tone(1000.0, frontend.SAMPLE_RATE, 1.0)
    frames = frontend.log_mel(wave)
    assert frames.shape == (1 + (16_000 - 400) // 160, 64)
    band = int(frames.mean(0).argmax())
    assert frontend.mel_matrix()[round(1000 / 8000 * 256), band] > 0  # the loudest band holds 1 kHz
    assert frames.min() >= np.log(frontend.LOG_OFFSET) - 1e-6  # silence floors at log(0.001)


@pytest.mark.parametrize(("seconds", "count"), [(0.1, 1), (0.975, 1), (1.0, 2), (5.0, 10), (10.0, 20)])
def test_patches_cover_every_sample(seconds: float, count: int) -> None:
    cut = frontend.patches(np.zeros(round(seconds * 16_000), np.float32))
    assert cut.shape == (count, 96, 64)
