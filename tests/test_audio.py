import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

import soundtag.decode as decoder
from soundtag.audio import AudioConfig, AudioError, load, load_blocks, load_clip

CFG = AudioConfig()


def dominant_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.argmax(spectrum) * sr / len(wave))


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000, 96000])
def test_any_rate_becomes_32k_and_keeps_pitch(tmp_path: Path, sr: int) -> None:
    path = tmp_path / f"tone{sr}.wav"
    sf.write(path, tone(1000.0, sr, 2.0), sr)
    wave = load(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == 2 * CFG.sample_rate
    assert dominant_hz(wave, CFG.sample_rate) == pytest.approx(1000.0, abs=1.0)


@pytest.mark.parametrize(("suffix", "kwargs"), [
    (".wav", {"subtype": "PCM_16"}), (".wav", {"subtype": "PCM_24"}), (".wav", {"subtype": "FLOAT"}),
    (".flac", {}), (".ogg", {}), (".mp3", {}), (".opus", {"format": "OGG", "subtype": "OPUS"}),
])
def test_formats_soundfile_reads(tmp_path: Path, suffix: str, kwargs: dict) -> None:
    sr = 48000
    path = tmp_path / f"clip{suffix}"
    sf.write(path, tone(660.0, sr, 1.0), sr, **kwargs)
    wave = load(path)
    assert abs(len(wave) - CFG.sample_rate) < 0.05 * CFG.sample_rate  # lossy codecs add a little padding
    assert dominant_hz(wave, CFG.sample_rate) == pytest.approx(660.0, abs=3.0)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
@pytest.mark.parametrize(("suffix", "codec"), [(".m4a", "aac"), (".webm", "libopus")])
def test_containers_through_ffmpeg(tmp_path: Path, suffix: str, codec: str) -> None:
    src = tmp_path / "src.wav"
    sf.write(src, tone(440.0, 48000, 1.0), 48000)
    path = tmp_path / f"clip{suffix}"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c:a", codec, str(path)], check=True)
    wave = load(path)
    assert dominant_hz(wave, CFG.sample_rate) == pytest.approx(440.0, abs=3.0)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
@pytest.mark.parametrize(("name", "text"), [
    ("playlist.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{secret}\n#EXT-X-ENDLIST\n"),
    ("list.ffconcat", "ffconcat version 1.0\nfile '{secret.name}'\n"),
])
def test_the_decoder_reads_only_the_file_it_was_given(tmp_path: Path, name: str, text: str) -> None:
    """An upload that names another file (a playlist, a concat script, a protocol prefix) must not decode it."""
    secret = tmp_path / "secret.aac"  # a file on the server that an upload must not be able to read
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=6", "-c:a", "aac",
                    str(secret)], check=True)
    assert len(load(secret)) > 5 * CFG.sample_rate  # readable when named directly (unrestricted ffmpeg decodes
    path = tmp_path / name  # it through either of these files too)
    path.write_text(text.format(secret=secret))
    with pytest.raises(AudioError, match="not audio"):
        load(path)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_ffmpeg_output_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "60", "-c:a", "aac",
                    str(path)], check=True)
    monkeypatch.setattr(decoder, "MAX_DECODED_BYTES", 8000 * 4 * 10)  # 10 s of mono float samples
    with pytest.raises(AudioError, match="decodes to more than"):
        load(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 file anyway")
def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    sf.write(path, tone(440.0, 16000, 1.0), 16000)
    path.chmod(0)
    with pytest.raises(AudioError, match="permission denied"):
        load(path)


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


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


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


def test_corrupt_flac(tmp_path: Path) -> None:
    good = tmp_path / "good.flac"
    sf.write(good, np.random.default_rng(0).standard_normal(48000).astype("float32") * 0.1, 48000)
    bad = write_bytes(tmp_path / "bad.flac", good.read_bytes()[:3000])
    with pytest.raises(AudioError, match="corrupt") as info:
        load(bad)
    assert "bad.flac" in str(info.value)


def test_unsupported_container_without_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoder.shutil, "which", lambda _: None)
    path = write_bytes(tmp_path / "clip.m4a", b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    with pytest.raises(AudioError, match="install ffmpeg") as info:
        load(path)
    assert "clip.m4a" in str(info.value)


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


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to write a streamed WAV")
def test_a_wav_written_to_a_pipe_is_read_whole(tmp_path: Path) -> None:
    cmd = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ar", "16000", "-f", "wav",
           "-"]
    (tmp_path / "streamed.wav").write_bytes(subprocess.run(cmd, capture_output=True, check=True).stdout)
    data, sr = decoder.decode(tmp_path / "streamed.wav")  # its header says 0xFFFFFFFF bytes: length unknown
    assert sr == 16000 and data.shape == (32000, 1)


def test_the_header_is_checked_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sf.write(tmp_path / "long.wav", tone(440.0, 16000, 3.0), 16000)
    monkeypatch.setattr(decoder, "MAX_DECODED_BYTES", 100_000)  # stands in for hours of audio
    with pytest.raises(AudioError, match=r"claims 48,000 frames x 1 channels .* split it first"):
        decoder.decode(tmp_path / "long.wav")


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
