"""Mutated audio files (260, seeded): whatever the bytes, decoding either gives finite samples or an AudioError that
names the file; never another exception, a hang, or a crash of the process."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import tone

from soundtag.audio.load import load
from soundtag.errors import AudioError

FORMATS = [(".wav", "PCM_16"), (".flac", "PCM_16"), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")]


def mutants(data: bytes, rng: np.random.Generator, n: int) -> list[bytes]:
    """Flipped bytes, cut tails, a repeated block and a header with random bytes in it."""
    out = []
    for _ in range(n):
        b = bytearray(data)
        kind = rng.integers(4)
        if kind == 0:
            for i in rng.integers(0, len(b), size=rng.integers(1, 20)):
                b[i] = int(rng.integers(256))
        elif kind == 1:
            b = b[:rng.integers(1, len(b))]
        elif kind == 2:
            i = int(rng.integers(0, len(b) - 64))
            b = b[:i] + b[i:i + 64] * int(rng.integers(2, 50)) + b[i:]
        else:
            b[4:64] = rng.integers(0, 256, size=60, dtype=np.uint8).tobytes()
        out.append(bytes(b))
    return out


@pytest.mark.parametrize(("suffix", "subtype"), FORMATS)
def test_mutated_files_decode_or_say_why(tmp_path: Path, suffix: str, subtype: str) -> None:
    clean = tmp_path / f"clean{suffix}"
    try:
        sf.write(clean, tone(440.0, 16000, 1.0), 16000, subtype=subtype)
    except (sf.LibsndfileError, TypeError, ValueError):
        pytest.skip(f"this libsndfile cannot write {subtype}")
    rng = np.random.default_rng(len(suffix))
    for i, data in enumerate(mutants(clean.read_bytes(), rng, 60)):
        path = tmp_path / f"mutant{i}{suffix}"
        path.write_bytes(data)
        try:
            wave = load(path)
        except AudioError as err:
            assert str(path) in str(err)
        else:
            assert wave.dtype == np.float32 and np.isfinite(wave).all()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_mutated_m4a_through_ffmpeg(tmp_path: Path) -> None:
    clean = tmp_path / "clean.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac",
                    str(clean)], check=True)
    for i, data in enumerate(mutants(clean.read_bytes(), np.random.default_rng(7), 20)):
        path = tmp_path / f"mutant{i}.m4a"
        path.write_bytes(data)
        try:
            assert np.isfinite(load(path)).all()
        except AudioError as err:
            assert str(path) in str(err)


def wav_bytes(channels: int, rate: int, bits: int = 16, frames: int = 1600, data_size: int | None = None,
              fmt: int = 1) -> bytes:
    """A WAV file written field by field, so that each header field can be made absurd on its own."""
    import struct

    block = max(1, channels * bits // 8)
    data = bytes(frames * block) if channels else bytes(frames * 2)
    size = len(data) if data_size is None else data_size
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(("fields", "reason"), [
    ({"rate": 0}, ""),  # libsndfile refuses these two itself: "corrupt", in the same one line
    ({"rate": 3_000_000_000}, ""),
    ({"rate": 10}, "sample rate"),
    ({"channels": 0}, ""),
    ({"channels": 65535, "frames": 2}, "channels"),
    ({"channels": 300, "frames": 4}, "channels"),
    ({"data_size": 0x7FFF_FFF0}, ""),
    ({"bits": 0}, ""),
    ({"fmt": 0x55}, ""),
])
def test_absurd_header_fields_are_one_line_naming_the_file(tmp_path: Path, fields: dict, reason: str) -> None:
    from soundtag.audio.decode import decoded_bytes

    path = tmp_path / "absurd.wav"
    path.write_bytes(wav_bytes(**{"channels": 1, "rate": 16000, **fields}))
    assert decoded_bytes(path, 32_000) < 1 << 40  # the streaming decision never trusts a size it cannot hold
    with pytest.raises(AudioError) as caught:
        load(path)
    assert str(path) in str(caught.value) and reason in str(caught.value) and "\n" not in str(caught.value)


def test_a_sane_handmade_header_decodes(tmp_path: Path) -> None:
    path = tmp_path / "sane.wav"
    path.write_bytes(wav_bytes(channels=2, rate=16000))
    assert load(path, target_rate=16000).shape == (1600,)
