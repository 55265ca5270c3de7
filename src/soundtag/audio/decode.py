"""Reading audio files as they are stored: float32 samples `(frames, channels)` at the file's own rate, whole or a
block at a time (so hours of audio, or minutes of many channels at a high rate, never sit in memory at once).

soundfile (libsndfile) reads WAV, FLAC, OGG/Vorbis, Opus and MP3 from the open file; other containers (M4A/AAC,
WebM, ...) go through ffmpeg, which may open only the file it is given and streams its samples back on a pipe.
Every problem is an `AudioError` that names the file and the reason.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from soundtag.errors import AudioError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".aiff", ".aif"}
MAX_DECODED_BYTES = 2 << 30  # float32 samples of one file decoded whole (about 3 h of 48 kHz stereo)
STREAMED_SIZE = 0xFFFF_FFFF  # the data size of a WAV header written before its length was known
BLOCK_SAMPLES = 1 << 21  # samples (all channels together) decoded at a time block by block: 8 MB as float32
MIN_RATE, MAX_RATE = 1_000, 768_000  # Hz: what a file's header may state
MAX_FILE_CHANNELS = 255  # what a file's header may state (WAVE_FORMAT_EXTENSIBLE allows 65535: none records that)
# Containers ffmpeg may open for soundtag: audio and audio-in-video formats. Playlists and scripts (hls, concat,
# ffconcat, ...) are not among them: their entries name other files or URLs, which must never be read for an upload.
FFMPEG_DEMUXERS = ("mov,matroska,webm,aac,ac3,eac3,dts,mp3,ogg,wav,w64,flac,asf,aiff,caf,amr,amrnb,amrwb,ape,au,"
                   "avi,flv,mpeg,mpegts,tta,wv,voc,sox,mlp,truehd,rm,oma")


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """The whole file `(frames, channels)` float32 and its sample rate; refused (from the header where there is
    one) when it holds more than MAX_DECODED_BYTES of samples: read such files with `decode_blocks`."""
    blocks, rates, held = [], [], 0
    for block, rate in decode_blocks(path, samples=None):
        blocks.append(block)
        rates.append(rate)
        held += block.nbytes
        if held > MAX_DECODED_BYTES:
            raise AudioError(path, f"decodes to more than the {MAX_DECODED_BYTES >> 30} GiB of samples soundtag "
                                   "decodes at once; split it first")
    if not blocks:
        raise AudioError(path, "contains no samples")
    return (blocks[0] if len(blocks) == 1 else np.concatenate(blocks)), rates[0]


def decode_blocks(path: str | Path, samples: int | None = BLOCK_SAMPLES) -> Iterator[tuple[np.ndarray, int]]:
    """The file's samples a block of at most `samples` (all channels together; None: all at once) at a time, each
    with the sample rate."""
    path = _checked(Path(path))
    try:
        with path.open("rb") as file, sf.SoundFile(file) as sound:  # the open file: any name works, UTF-8 or not
            _check_header(path, sound, whole=samples is None)
            yield from _soundfile_blocks(sound, samples)
        return
    except PermissionError:
        raise AudioError(path, "cannot be read: permission denied") from None
    except MemoryError:
        raise AudioError(path, "not enough memory to decode it") from None
    except sf.LibsndfileError as err:
        if "format not recognised" not in str(err.error_string).lower():
            raise AudioError(path, f"truncated or corrupt audio ({err.error_string.strip()})") from None
    yield from _ffmpeg_blocks(path, samples)


def decoded_bytes(path: str | Path, target_rate: int, bytes_per_second: int = 2_000) -> int:
    """What decoding `path` whole would hold, from its header and without decoding: its float32 samples (frames x
    channels x 4 bytes) or, if more, its mono float32 samples resampled to `target_rate`. Where soundfile cannot read
    the header (M4A, WebM, ...), an upper estimate from the file's size: compressed audio at no less than
    `bytes_per_second` (16 kbit/s), decoded as 48-kHz stereo. 0 for a file that cannot be read, whose error comes
    when it is decoded."""
    try:
        with Path(path).open("rb") as file:
            info = sf.info(file)
        seconds, samples = info.frames / max(info.samplerate, 1), info.frames * info.channels
    except (OSError, RuntimeError):  # libsndfile's errors are RuntimeErrors
        try:
            seconds = Path(path).stat().st_size / bytes_per_second
        except OSError:
            return 0
        samples = seconds * 96_000
    return int(4 * max(samples, seconds * target_rate))


def _checked(path: Path) -> Path:
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    return path


def _check_header(path: Path, info: sf.SoundFile, whole: bool) -> None:
    """Refuse, before any sample is allocated, a header whose rate, channel count or length cannot be a recording."""
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(path, f"its header states an impossible sample rate, {info.samplerate:,} Hz (expected "
                               f"{MIN_RATE:,}-{MAX_RATE:,} Hz): a corrupt or foreign file")
    if not 1 <= info.channels <= MAX_FILE_CHANNELS:
        raise AudioError(path, f"its header states {info.channels:,} channels (expected 1-{MAX_FILE_CHANNELS}): a "
                               "corrupt or foreign file")
    if info.format in ("WAV", "WAVEX", "AIFF", "W64", "RF64", "CAF", "AU", "RAW") and info.subtype.startswith("PCM") \
            and info.frames * info.channels > path.stat().st_size:  # uncompressed: at least a byte a sample
        raise AudioError(path, f"its header claims {info.frames:,} frames of {info.channels} channels, more than "
                               f"its {path.stat().st_size:,} bytes can hold: truncated or corrupt")
    if _wav_is_truncated(info):
        raise AudioError(path, "truncated: the WAV header promises more samples than the file holds")
    if whole and info.frames * info.channels * 4 > MAX_DECODED_BYTES:
        hours = info.frames / max(info.samplerate, 1) / 3600
        raise AudioError(path, f"its header claims {info.frames:,} frames x {info.channels} channels "
                               f"({hours:,.1f} h at {info.samplerate} Hz), more than the "
                               f"{MAX_DECODED_BYTES >> 30} GiB soundtag decodes at once; split it first")


def _soundfile_blocks(sound: sf.SoundFile, samples: int | None) -> Iterator[tuple[np.ndarray, int]]:
    """16-bit PCM is read as stored and scaled here: the same floats, faster than libsndfile's conversion."""
    pcm16 = sound.subtype == "PCM_16"
    size = -1 if samples is None else max(1, samples // sound.channels)
    while True:
        block = sound.read(size, dtype="int16" if pcm16 else "float32", always_2d=True)
        if pcm16:
            block = block.astype(np.float32) * np.float32(1 / 32768)
        if len(block) or sound.tell() == 0:  # an empty file still yields its one empty block
            yield block, sound.samplerate
        if size < 0 or len(block) < size:
            return


def _wav_is_truncated(info: sf.SoundFile) -> bool:
    """libsndfile reads a cut-off WAV without complaint; its header report shows the shortfall. A size of
    0xFFFFFFFF is not a promise: it is what a WAV written to a pipe (`ffmpeg ... -f wav -`) carries, whose length
    was unknown when the header was written; libsndfile reads all it holds."""
    if info.format != "WAV":
        return False
    match = re.search(r"^data : (\d+) \(should be (\d+)\)", info.extra_info, re.MULTILINE)
    return match is not None and int(match[2]) < int(match[1]) != STREAMED_SIZE


def _ffmpeg_blocks(path: Path, samples: int | None) -> Iterator[tuple[np.ndarray, int]]:
    """Decode a container soundfile does not know through ffmpeg, as a float WAV streamed on a pipe (no temporary
    file to fill a disk or pass 4 GiB). ffmpeg may open only `path` itself, as a file (no URL or protocol prefix),
    with the demuxers of FFMPEG_DEMUXERS."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(path, "not a format soundfile reads (WAV, FLAC, OGG, Opus, MP3); "
                               "install ffmpeg to read other containers such as M4A or WebM")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-format_whitelist", FFMPEG_DEMUXERS,
           "-i", f"file:{path.resolve()}", "-vn", "-c:a", "pcm_f32le", "-f", "wav", "pipe:1"]
    with tempfile.TemporaryFile() as errors, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors) as proc:
        try:
            header = _wav_header(proc.stdout)
            if header is not None:
                channels, rate = header
                frames = max(1, (samples or BLOCK_SAMPLES) // channels)  # whole files too: `decode` joins them
                while chunk := proc.stdout.read(frames * channels * 4):
                    usable = len(chunk) - len(chunk) % (channels * 4)
                    yield np.frombuffer(chunk[:usable], np.float32).reshape(-1, channels), rate
        finally:
            proc.kill()  # done, or the consumer stopped early: ffmpeg has nothing more to do
            proc.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip()
    if header is None:
        detail = (message.splitlines() or ["no audio stream"])[-1].replace(f"file:{path.resolve()}: ", "")
        raise AudioError(path, f"not audio, or a container ffmpeg cannot decode ({detail})")


def _wav_header(pipe: BinaryIO) -> tuple[int, int] | None:
    """(channels, sample rate) from the head of the WAV ffmpeg streams, read up to its data chunk; None when ffmpeg
    wrote nothing (it could not decode the file)."""
    if pipe.read(12)[:4] != b"RIFF":
        return None
    fmt = None
    while len(head := pipe.read(8)) == 8:
        kind, size = head[:4], struct.unpack("<I", head[4:])[0]
        if kind == b"data":
            return fmt
        body = pipe.read(size + size % 2)
        if kind == b"fmt ":
            channels, rate = struct.unpack("<HI", body[2:8])
            fmt = (channels, rate)
    return None
