from pathlib import Path

import numpy as np
import pytest
from conftest import make_folder_dataset

from soundtag.audio.load import AudioConfig
from soundtag.features.logmel import FrontendConfig
from soundtag.training import feature_cache
from soundtag.training.dataset import DatasetError, load_dataset
from soundtag.training.feature_cache import build_features, cache_key

AUDIO, FRONTEND = AudioConfig(duration=0.5), FrontendConfig()


def test_cache_hits_and_invalidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_dataset(make_folder_dataset(tmp_path / "mine"))
    first = build_features(ds, AUDIO, FRONTEND, tmp_path / "cache", workers=1)
    assert first.shape == (12, 64, FRONTEND.num_frames(AUDIO.num_samples))

    def fail(*_args: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(feature_cache, "_compute_features", fail)
    np.testing.assert_array_equal(build_features(ds, AUDIO, FRONTEND, tmp_path / "cache"), first)
    changed = FrontendConfig(n_mels=32)
    assert cache_key(ds, AUDIO, changed) != cache_key(ds, AUDIO, FRONTEND)
    with pytest.raises(AssertionError, match="cache should have been used"):
        build_features(ds, AUDIO, changed, tmp_path / "cache")


def test_parallel_build_equals_serial(tmp_path: Path) -> None:
    ds = load_dataset(make_folder_dataset(tmp_path / "mine"))
    serial = build_features(ds, AUDIO, FRONTEND, workers=1)
    np.testing.assert_allclose(build_features(ds, AUDIO, FRONTEND, workers=2), serial, atol=1e-5)


def test_unreadable_clip_is_named(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "mine")
    (root / "hum" / "3.wav").write_bytes(b"not audio at all" * 10)
    with pytest.raises(DatasetError, match=r"(?s)1 clips could not be read.*hum/3\.wav: not audio"):
        build_features(load_dataset(root), AUDIO, FRONTEND, workers=1)
