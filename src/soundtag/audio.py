"""Audio I/O: decode any common format or array to mono float32 at one sample rate, then fix its length.

Every problem with a user's input is raised as `AudioError`, whose message names the source and the reason.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from soundtag.errors import AudioError

MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
MAX_DECODED_BYTES = 2 << 30  # float32 samples of one file held at once (about 3 h of 48 kHz stereo)
STREAMED_SIZE = 0xFFFF_FFFF  # the data size of a WAV header written before its length was known
MAX_PEAK = 1e4  # float audio may overshoot full scale a little; 80 dB over it is not a recording


@dataclass(frozen=True)
class AudioConfig:
    """How every clip is presented to the model: mono, `sample_rate` Hz, `duration` seconds."""

    sample_rate: int = 32_000
    duration: float = 5.0

    def __post_init__(self) -> None:
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ValueError(f"sample_rate must lie in {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz, got {self.sample_rate}")
        if not 0.1 <= self.duration <= 600:
            raise ValueError(f"duration must lie in 0.1-600 s, got {self.duration}")

    @property
    def num_samples(self) -> int:
        return round(self.sample_rate * self.duration)


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a file as it is stored: `(samples, channels)` float32 and its sample rate.

    soundfile covers WAV, FLAC, OGG/Vorbis, Opus and MP3; other containers (M4A/AAC, WebM) go through ffmpeg.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "file is empty (0 bytes)")
    try:
        with path.open("rb") as file:  # libsndfile gets the open file: any name works, UTF-8 or not
            info = sf.info(file)
            if _wav_is_truncated(info):
                raise AudioError(path, "truncated: the WAV header promises more samples than the file holds")
            if info.frames * info.channels * 4 > MAX_DECODED_BYTES:  # checked from the header, before decoding
                hours = info.frames / max(info.samplerate, 1) / 3600
                raise AudioError(path, f"its header claims {info.frames:,} frames x {info.channels} channels "
                                       f"({hours:,.1f} h at {info.samplerate} Hz), more than the "
                                       f"{MAX_DECODED_BYTES >> 30} GiB soundtag decodes at once; split it first")
            file.seek(0)
            if info.subtype == "PCM_16":  # read as stored and scale here: the same floats, faster than libsndfile's
                data, sr = sf.read(file, dtype="int16", always_2d=True)
                data = data.astype(np.float32) * np.float32(1 / 32768)
            else:
                data, sr = sf.read(file, dtype="float32", always_2d=True)
    except PermissionError:
        raise AudioError(path, "cannot be read: permission denied") from None
    except sf.LibsndfileError as err:
        if "format not recognised" not in str(err.error_string).lower():
            raise AudioError(path, f"truncated or corrupt audio ({err.error_string.strip()})") from None
        data, sr = _decode_with_ffmpeg(path)
    except MemoryError:
        raise AudioError(path, "not enough memory to decode it") from None
    return data, sr


def _wav_is_truncated(info: sf._SoundFileInfo) -> bool:
    """libsndfile reads a cut-off WAV without complaint; its header report shows the shortfall. A size of
    0xFFFFFFFF is not a promise: it is what a WAV written to a pipe (`ffmpeg ... -f wav -`) carries, whose length
    was unknown when the header was written; libsndfile reads all it holds."""
    if info.format != "WAV":
        return False
    match = re.search(r"^data : (\d+) \(should be (\d+)\)", info.extra_info, re.MULTILINE)
    return match is not None and int(match[2]) < int(match[1]) != STREAMED_SIZE


# Containers ffmpeg may open for soundtag: audio and audio-in-video formats. Playlists and scripts (hls, concat,
# ffconcat, ...) are not among them: their entries name other files or URLs, which must never be read for an upload.
FFMPEG_DEMUXERS = ("mov,matroska,webm,aac,ac3,eac3,dts,mp3,ogg,wav,w64,flac,asf,aiff,caf,amr,amrnb,amrwb,ape,au,"
                   "avi,flv,mpeg,mpegts,tta,wv,voc,sox,mlp,truehd,rm,oma")


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decode a container soundfile does not know through ffmpeg, read back as a streamed float WAV on a pipe (no
    temporary file to fill a disk or pass 4 GiB). ffmpeg may open only `path` itself, as a file (no URL or protocol
    prefix), with the demuxers of FFMPEG_DEMUXERS; at most MAX_DECODED_BYTES of samples are taken."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(path, "not a format soundfile reads (WAV, FLAC, OGG, Opus, MP3); "
                               "install ffmpeg to read other containers such as M4A or WebM")
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-protocol_whitelist", "file", "-format_whitelist", FFMPEG_DEMUXERS,
           "-i", f"file:{path.resolve()}", "-vn", "-c:a", "pcm_f32le", "-f", "wav", "pipe:1"]
    with tempfile.TemporaryFile() as errors, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors) as proc:
        data = proc.stdout.read(MAX_DECODED_BYTES + 1)
        if len(data) > MAX_DECODED_BYTES:
            proc.kill()
            raise AudioError(path, f"decodes to more than the {MAX_DECODED_BYTES >> 30} GiB of samples soundtag "
                                   "decodes at once; split it first")
        proc.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip()
    if proc.returncode != 0 or not data:
        detail = (message.splitlines() or ["unknown error"])[-1].replace(f"file:{path.resolve()}: ", "")
        raise AudioError(path, f"not audio, or a container ffmpeg cannot decode ({detail})")
    try:
        return sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except sf.LibsndfileError as err:
        raise AudioError(path, f"ffmpeg found no audio stream ({err.error_string})") from None


def to_float(data: np.ndarray, source: object = "array") -> np.ndarray:
    """Scale integer PCM to [-1, 1) float32; float input keeps its values."""
    data = np.asarray(data)
    if data.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return (data / float(-np.iinfo(data.dtype).min)).astype(np.float32)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    raise AudioError(source, f"samples must be integers or floats, got dtype {data.dtype}")


def to_mono(data: np.ndarray, source: object = "array") -> np.ndarray:
    """Average the channels of a 1-D or 2-D array; the shorter axis of a 2-D array is taken as channels."""
    if data.ndim == 1:
        return data
    if data.ndim != 2:
        raise AudioError(source, f"expected a 1-D or 2-D array of samples, got shape {data.shape}")
    channel_axis = int(np.argmin(data.shape))
    if data.shape[channel_axis] > MAX_CHANNELS:
        raise AudioError(source, f"too many channels ({data.shape[channel_axis]}; at most {MAX_CHANNELS})")
    return data.mean(axis=channel_axis)


def prepare(data: np.ndarray, sample_rate: int, target_rate: int, source: object = "array") -> np.ndarray:
    """Validate decoded samples and return mono float32 at `target_rate`, any length."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(source, f"impossible sample rate {sample_rate} Hz "
                                 f"(expected {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
    if data.size == 0:
        raise AudioError(source, "contains no samples")
    mono = to_mono(to_float(data, source), source)
    if not np.isfinite(mono).all():
        raise AudioError(source, "contains NaN or infinite samples")
    peak = float(max(mono.max(), -mono.min()))  # np.abs would copy hours of audio
    if peak > MAX_PEAK:
        raise AudioError(source, f"samples reach {peak:.3g}, {20 * np.log10(peak):.0f} dB over full scale (1.0): "
                                 "not audio levels")
    if sample_rate != target_rate:
        mono = soxr.resample(mono, sample_rate, target_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def load(source: str | Path | np.ndarray, sample_rate: int | None = None,
         target_rate: int = AudioConfig.sample_rate) -> np.ndarray:
    """Read a path, or take an array with its `sample_rate`, as mono float32 at `target_rate`, any length."""
    if isinstance(source, (str, Path)):
        data, sample_rate = decode(source)
        return prepare(data, sample_rate, target_rate, source)
    if isinstance(source, (list, tuple)):
        raise AudioError("list", "one file or array at a time; for several, use predict_batch or analyze_batch")
    if sample_rate is None:
        raise AudioError("array", "an array needs its sample_rate")
    return prepare(np.asarray(source), int(sample_rate), target_rate)


def fix_length(wave: np.ndarray, num_samples: int) -> np.ndarray:
    """Zero-pad at the end or trim to exactly `num_samples`."""
    if wave.shape[-1] >= num_samples:
        return wave[..., :num_samples]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, num_samples - wave.shape[-1])]
    return np.pad(wave, pad)


def load_clip(source: str | Path | np.ndarray, config: AudioConfig = AudioConfig(),
              sample_rate: int | None = None) -> np.ndarray:
    """One model-ready clip: mono float32, `config.sample_rate` Hz, exactly `config.num_samples` long."""
    return fix_length(load(source, sample_rate, config.sample_rate), config.num_samples)
