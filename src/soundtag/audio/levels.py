"""Level checks on a file as it is stored (before mixing to mono or resampling), for QA: peak, RMS level, DC offset
and clipping, accumulated block by block so that hours of audio are measured in bounded memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

CLIP_LEVEL = 0.999  # |sample| at or above this counts as full scale (int16 full scale reads as 0.99997)


class LevelMeter:
    """Feed blocks `(samples, channels)` with their rate (`add`, or `tap` on the way to the model); `result` gives
    the sample rate, channels, peak, RMS in dBFS, the largest channel mean (DC offset, relative to full scale) and
    the share of samples at full scale (clipping)."""

    def __init__(self) -> None:
        self.rate = self.channels = None
        self.peak, self.squares, self.samples, self.clipped = 0.0, 0.0, 0, 0
        self.sums, self.frames = 0.0, 0

    def add(self, block: np.ndarray, rate: int) -> LevelMeter:
        flat = block.reshape(-1)
        self.rate, self.channels = rate, block.shape[1]
        if flat.size:
            self.peak = max(self.peak, float(max(flat.max(), -flat.min())))  # np.abs would copy the block
        self.squares += float(np.dot(flat, flat))
        self.samples += flat.size
        self.clipped += int(np.count_nonzero(np.abs(flat) >= CLIP_LEVEL))
        self.sums = self.sums + block.sum(0, dtype=np.float64)
        self.frames += len(block)
        return self

    def tap(self, blocks: Iterable[tuple[np.ndarray, int]]) -> Iterator[tuple[np.ndarray, int]]:
        """The same blocks, measured as they pass."""
        for block, rate in blocks:
            self.add(block, rate)
            yield block, rate

    def result(self) -> dict:
        n = max(self.samples, 1)
        return {"sample_rate": self.rate, "channels": self.channels, "peak": self.peak,
                "rms_dbfs": 20 * np.log10(max(np.sqrt(self.squares / n), 1e-10)),
                "dc_offset": float(np.abs(np.asarray(self.sums) / max(self.frames, 1)).max()),
                "clipped": self.clipped / n}
