"""A two-minute take of the six example sounds, each followed by 15 s of room tone (pink noise at -55 dBFS
throughout): the kind of long recording where a sound fills a fraction of the file. `make demo` tags it, and
tests/test_shipped_model.py checks that every sound comes back where it is.

    python examples/take.py runs/demo/take.flac
"""

import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

HERE = Path(__file__).resolve().parent
EXAMPLES = ("dog", "rain", "crying_baby", "clock_tick", "rooster", "sea_waves")
RATE = 32_000
GAP_S = 15.0


def room_tone(seconds: float, rng: np.random.Generator, dbfs: float = -55.0) -> np.ndarray:
    """Pink noise (power falling as 1/f) at `dbfs` RMS: the hiss of a quiet room through a microphone."""
    n = int(seconds * RATE)
    shape = 1 / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20.0))
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * shape, n)
    return (x * 10 ** (dbfs / 20) / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def two_minute_take() -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """The take at RATE, and where each sound is: `[(name, start s, end s)]`."""
    rng = np.random.default_rng(0)
    parts, placed, at = [], [], 0.0
    for name in EXAMPLES:
        clip, sr = sf.read(HERE / f"{name}.flac", dtype="float32")
        clip = soxr.resample(clip, sr, RATE)
        parts += [clip, np.zeros(int(GAP_S * RATE), np.float32)]
        placed.append((name, at, at + len(clip) / RATE))
        at += len(clip) / RATE + GAP_S
    take = np.concatenate(parts)
    return take + room_tone(len(take) / RATE, rng), placed


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "take.flac")
    out.parent.mkdir(parents=True, exist_ok=True)
    take, placed = two_minute_take()
    sf.write(out, take, RATE)
    print(f"wrote {out}: {len(take) / RATE:.0f} s; " + ", ".join(f"{n} at {s:.0f} s" for n, s, _ in placed))
