"""Cutting audio into the model's windows, from one array or from blocks as they arrive (a long file is never held
whole): windows of `size` samples every `step`, the last one aligned to the end of the audio.

Audio shorter than a window is one zero-padded window (its level is that of the audio, not of the padding). The
end-aligned window is left out when less than TAIL of a window is left after the last step: encoders pad (an M4A of a
5.000-s clip decodes to 5.016 s), and such a window would repeat the one before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

TAIL = 0.02  # share of a window left after the last step that counts as padding, not audio to score


class Windows:
    """`cut` yields `(offset in samples, window (size,), level in dBFS)`; afterwards `length` is the audio's length in
    samples. Windows are views into the audio where they can be (no copies of hours of audio)."""

    def __init__(self, size: int, step: int):
        if not 0 < step <= size:
            raise ValueError(f"need 0 < step <= size, got step={step}, size={size}")
        self.size, self.step, self.length = size, step, 0

    def cut(self, blocks: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray, float]]:
        size, step = self.size, self.step
        held, held_from, offset, last = np.zeros(0, np.float32), 0, 0, None  # held: audio from sample held_from on
        for block in blocks:
            held = block if not len(held) else np.concatenate([held, block])
            while offset + size <= held_from + len(held):
                window = held[offset - held_from:offset - held_from + size]
                yield offset, window, dbfs(window)
                last, offset = offset, offset + step
            drop = max(0, min(offset - held_from, len(held) - size))  # keep a window's worth for the last one
            held, held_from = held[drop:], held_from + drop
        self.length = held_from + len(held)
        if last is None:
            yield 0, np.pad(held, (0, size - len(held))), dbfs(held)
        elif self.length - last - size > TAIL * size:
            window = held[len(held) - size:]
            yield self.length - size, window, dbfs(window)


def dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-200 for digital silence)."""
    return float(10 * np.log10(max(np.dot(samples, samples) / max(len(samples), 1), 1e-20)))
