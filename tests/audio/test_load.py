import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import dominant_hz, tone, write_bytes

from soundtag.audio.load import AudioConfig, AudioError, load, load_blocks, load_clip

CFG = AudioConfig()


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000, 96000])
def test_any_rate_becomes_32k_and_keeps_pitch(tmp_path: Path, sr: int) -> None:
    path = tmp_path / f"tone{sr}.wav"
    sf.write(path, tone(1000.0, sr, 2.0), sr)
    wave = load(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == 2 * CFG.sample_rate
    assert dominant_hz(wave, CFG.sample_rate) == pytest.approx(1000.0, abs=1.0)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left = tone(440.0, 16000, 1.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 16000, subtype="FLOAT")
    wave = load(path, target_rate=16000)
    np.testing.assert_allclose(wave, left / 2, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint8, np.float32, np.float64])
def test_arrays_of_any_dtype(dtype: type) -> None:
    x = tone(440.0, 16000, 1.0, amp=0.5)
    if dtype == np.uint8:
        data = (x * 128 + 128).astype(np.uint8)
    elif np.issubdtype(dtype, np.integer):
        data = (x * np.iinfo(dtype).max).astype(dtype)
    else:
        data = x.astype(dtype)
    wave = load(data, sample_rate=16000, target_rate=16000)
    np.testing.assert_allclose(wave, x, atol=1e-2)


@pytest.mark.parametrize("layout", ["frames_first", "channels_first"])
def test_arrays_of_either_channel_layout(layout: str) -> None:
    x = np.stack([tone(440.0, 16000, 1.0)] * 2, axis=1)
    data = x if layout == "frames_first" else x.T
    np.testing.assert_allclose(load(data, sample_rate=16000, target_rate=16000), x[:, 0], atol=1e-6)


def test_silence_and_noise_are_valid() -> None:
    assert not load(np.zeros(8000), sample_rate=8000).any()
    noise = np.random.default_rng(0).standard_normal(8000)
    assert np.isfinite(load(noise, sample_rate=8000)).all()


def test_clip_is_padded_or_trimmed_to_five_seconds() -> None:
    short = load_clip(tone(440.0, 32000, 1.0), sample_rate=32000)
    long = load_clip(tone(440.0, 32000, 7.0), sample_rate=32000)
    assert short.shape == long.shape == (CFG.num_samples,)
    assert not short[32000:].any()


def wav_bytes(tmp_path: Path, frames: int = 16000) -> bytes:
    path = tmp_path / "ok.wav"
    sf.write(path, tone(440.0, 16000, frames / 16000), 16000)
    return path.read_bytes()


@pytest.mark.parametrize(("make", "reason"), [
    (lambda d: d / "nope.wav", "not found"),
    (lambda d: d, "is a folder"),
    (lambda d: write_bytes(d / "empty.wav", b""), "empty"),
    (lambda d: write_bytes(d / "zero.wav", wav_bytes(d, 0)), "no samples"),
    (lambda d: write_bytes(d / "notes.wav", b"these are meeting notes, not audio\n" * 20), "not"),
    (lambda d: write_bytes(d / "cut.wav", wav_bytes(d)[:20000]), "truncated"),
    (lambda d: write_bytes(d / "header.wav", wav_bytes(d)[:30]), "corrupt"),
])
def test_bad_files_raise_audio_error_naming_the_file(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AudioError, match=reason) as info:
        load(path)
    assert str(path) in str(info.value)


def test_non_finite_samples_in_a_file(tmp_path: Path) -> None:
    x = tone(440.0, 16000, 0.5)
    x[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN") as info:
        load(path)
    assert "nan.wav" in str(info.value)


@pytest.mark.parametrize(("data", "sr", "reason"), [
    (np.full(100, np.inf), 16000, "NaN or infinite"),
    (tone(), 0, "impossible sample rate"),
    (tone(), 5_000_000, "impossible sample rate"),
    (np.zeros((300, 400)), 16000, "too many channels"),
    (np.zeros((2, 3, 4)), 16000, "1-D or 2-D"),
    (np.array([], dtype=np.float32), 16000, "no samples"),
    (np.array(["a", "b"]), 16000, "dtype"),
])
def test_bad_arrays(data: np.ndarray, sr: int, reason: str) -> None:
    with pytest.raises(AudioError, match=reason):
        load(data, sample_rate=sr)


def test_array_needs_its_rate() -> None:
    with pytest.raises(AudioError, match="sample_rate"):
        load(tone())


def test_absurd_but_finite_samples_are_refused() -> None:
    loud = np.zeros(16000, np.float32)
    loud[100] = 3.4e38
    with pytest.raises(AudioError, match="over full scale"):
        load(loud, 16000)
    assert np.abs(load(loud.clip(-2, 2), 16000)).max() <= 2.1  # a little over full scale is still audio


def test_a_list_is_not_one_input() -> None:
    with pytest.raises(AudioError, match="use predict_batch"):
        load([np.zeros(100), np.zeros(100)], 16000)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".m4a"])
def test_block_by_block_is_the_whole_in_pieces(tmp_path: Path, suffix: str) -> None:
    """What `load_blocks` streams (in bounded blocks) joins up to what `load` returns."""
    if suffix == ".m4a" and shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    stereo = np.stack([tone(440.0, 44100, 3.0), tone(660.0, 44100, 3.0)], axis=1)
    path = tmp_path / f"clip{suffix}"
    if suffix == ".m4a":
        sf.write(tmp_path / "src.wav", stereo, 44100)
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "src.wav"), "-c:a", "aac", str(path)], check=True)
    else:
        sf.write(path, stereo, 44100)
    blocks = list(load_blocks(path, 32000, samples=2 * 30000))  # 0.68 s of stereo
    assert len(blocks) >= 4 and max(map(len, blocks)) <= 0.8 * 32000
    np.testing.assert_allclose(np.concatenate(blocks), load(path, target_rate=32000), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_unsigned_samples_are_centred(dtype: type) -> None:
    top = np.iinfo(dtype).max
    wave = load(np.array([0, top // 2 + 1, top], dtype), sample_rate=16000, target_rate=16000)
    np.testing.assert_allclose(wave, [-1.0, 0.0, 1.0], atol=1e-2)
