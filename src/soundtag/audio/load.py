"""Audio for the model: any file (see `soundtag.audio.decode`) or array to mono float32 at one sample rate, whole
or a block at a time, then fixed to a clip's length.

Every problem with a user's input is raised as `AudioError`, whose message names the source and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from soundtag.audio.decode import BLOCK_SAMPLES, decode, decode_blocks
from soundtag.audio.decode import MAX_FILE_CHANNELS as MAX_CHANNELS
from soundtag.audio.decode import MAX_RATE as MAX_SAMPLE_RATE
from soundtag.audio.decode import MIN_RATE as MIN_SAMPLE_RATE
from soundtag.errors import AudioError

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


def to_float(data: np.ndarray, source: object = "array") -> np.ndarray:
    """Scale integer PCM to [-1, 1) float32; float input keeps its values."""
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.unsignedinteger):  # unsigned PCM (8-bit WAV) is centred on half its range
        half = (float(np.iinfo(data.dtype).max) + 1) / 2
        return ((data - half) / half).astype(np.float32)
    if np.issubdtype(data.dtype, np.integer):
        return (data / float(-np.iinfo(data.dtype).min)).astype(np.float32)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    raise AudioError(source, f"samples must be integers or floats, got dtype {data.dtype}")


def to_mono(data: np.ndarray, source: object = "array", channel_axis: int | None = None) -> np.ndarray:
    """Average the channels of a 1-D or 2-D array; unless `channel_axis` says, the shorter axis of a 2-D array is
    taken as channels."""
    if data.ndim == 1:
        return data
    if data.ndim != 2:
        raise AudioError(source, f"expected a 1-D or 2-D array of samples, got shape {data.shape}")
    channel_axis = int(np.argmin(data.shape)) if channel_axis is None else channel_axis
    if data.shape[channel_axis] > MAX_CHANNELS:
        raise AudioError(source, f"too many channels ({data.shape[channel_axis]}; at most {MAX_CHANNELS})")
    return data.mean(axis=channel_axis)


def prepare(data: np.ndarray, sample_rate: int, target_rate: int, source: object = "array") -> np.ndarray:
    """Validate decoded samples and return mono float32 at `target_rate`, any length."""
    _check_rate(sample_rate, source)
    mono = _checked_mono(data, source)
    if not len(mono):
        raise AudioError(source, "contains no samples")
    if sample_rate != target_rate:  # one call: faster than the stream of prepare_blocks for a short clip
        mono = soxr.resample(mono, sample_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def prepare_blocks(blocks: Iterable[tuple[np.ndarray, int]], target_rate: int,
                   source: object = "array") -> Iterator[np.ndarray]:
    """`prepare` for audio that comes a block `(samples[, channels])` at a time, with its rate: each block checked,
    mixed to mono and resampled as it comes (soxr's stream gives the same samples as resampling the whole). Blocks
    are channels-last, so a last block shorter than the channel count is still read right."""
    resampler, total = None, 0
    for data, sample_rate in blocks:
        if resampler is None:
            _check_rate(sample_rate, source)
            resampler = soxr.ResampleStream(sample_rate, target_rate, 1, dtype="float32", quality="HQ") \
                if sample_rate != target_rate else False
        mono = _checked_mono(data, source, channel_axis=1)
        total += len(mono)
        if resampler:
            mono = resampler.resample_chunk(mono)
        yield np.ascontiguousarray(mono, dtype=np.float32)
    if total == 0:
        raise AudioError(source, "contains no samples")
    if resampler:
        yield resampler.resample_chunk(np.zeros(0, np.float32), last=True)


def _check_rate(sample_rate: int, source: object) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(source, f"impossible sample rate {sample_rate} Hz "
                                 f"(expected {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")


def _checked_mono(data: np.ndarray, source: object, channel_axis: int | None = None) -> np.ndarray:
    if np.size(data) == 0:
        return np.zeros(0, np.float32)
    mono = to_mono(to_float(data, source), source, channel_axis if np.ndim(data) == 2 else None)
    if not np.isfinite(mono).all():
        raise AudioError(source, "contains NaN or infinite samples")
    peak = float(max(mono.max(), -mono.min())) if mono.size else 0.0  # np.abs would copy hours of audio
    if peak > MAX_PEAK:
        raise AudioError(source, f"samples reach {peak:.3g}, {20 * np.log10(peak):.0f} dB over full scale (1.0): "
                                 "not audio levels")
    return mono


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


def array_blocks(data: np.ndarray, sample_rate: int, samples: int = BLOCK_SAMPLES) -> Iterator[tuple[np.ndarray, int]]:
    """An array `(samples[, channels])`, either axis order as `to_mono` reads it, as channels-last views of at most
    `samples` (all channels together) at a time, with its rate: nothing of the whole is copied or converted."""
    data = np.asarray(data)
    if data.ndim == 2 and np.argmin(data.shape) == 0:
        data = data.T  # a view
    step = max(1, samples // (data.shape[1] if data.ndim == 2 else 1))
    for start in range(0, len(data), step):
        yield data[start:start + step], sample_rate


def load_blocks(path: str | Path, target_rate: int = AudioConfig.sample_rate,
                samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """A file as mono float32 at `target_rate`, decoded `samples` (all channels together) at a time: what `load`
    gives, in pieces, in bounded memory."""
    return prepare_blocks(decode_blocks(path, samples), target_rate, path)


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
