"""Decoding files as stored: formats, ffmpeg containers and its limits, header checks, bad files."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import dominant_hz, tone, write_bytes

import soundtag.audio.decode as decoder
from soundtag.audio.load import AudioConfig, AudioError, load

CFG = AudioConfig()


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
