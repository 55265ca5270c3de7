"""The shipped model on the kind of recording users have: a two-minute take of the six example sounds, each followed
by 15 s of room tone. Every sound must come back as a tag, with an event where it happens."""

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import REPO

from soundtag.infer import Classifier

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
    """The six example clips, each followed by GAP_S of room tone, over room tone throughout; and where each is."""
    rng = np.random.default_rng(0)
    parts, placed, at = [], [], 0.0
    for name in EXAMPLES:
        clip, sr = sf.read(REPO / "examples" / f"{name}.flac", dtype="float32")
        clip = soxr.resample(clip, sr, RATE)
        parts += [clip, np.zeros(int(GAP_S * RATE), np.float32)]
        placed.append((name, at, at + len(clip) / RATE))
        at += len(clip) / RATE + GAP_S
    take = np.concatenate(parts)
    return take + room_tone(len(take) / RATE, rng), placed


@pytest.fixture(scope="module")
def analysis() -> tuple:
    take, placed = two_minute_take()
    return Classifier.load().analyze(take, RATE, top_k=10), placed


def test_every_sound_is_a_tag(analysis: tuple) -> None:
    result, _ = analysis
    assert result.duration == pytest.approx(120.0, abs=0.1)
    scores = {t["label"]: t["score"] for t in result.tags}
    assert all(scores.get(name, 0.0) >= 0.5 for name in EXAMPLES), scores


def test_every_sound_has_its_event_where_it_happens_and_room_tone_has_none(analysis: tuple) -> None:
    result, placed = analysis
    for name, start, end in placed:
        assert any(e["label"] == name and e["start"] < end and e["end"] > start for e in result.events), name
    window = Classifier.load().window
    for e in result.events:  # every event lies on one of the sounds (rain may be heard in the sea's waves)
        assert any(e["start"] > start - window and e["end"] < end + window for _, start, end in placed), e
