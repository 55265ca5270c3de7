import numpy as np
import pytest

from soundtag.training.rooms import reverberate, room_impulse

RATE = 16_000


@pytest.mark.parametrize(("rt60", "drr_db"), [(0.3, 8.0), (1.0, -12.0)])
def test_impulse_has_the_drawn_ratio_and_decay(rt60: float, drr_db: float) -> None:
    h = room_impulse(np.random.default_rng(0), RATE, rt60, drr_db)
    assert h[0] == 1.0 and len(h) == int(rt60 * RATE)
    assert 10 * np.log10(h[0] ** 2 / np.sum(h[1:] ** 2)) == pytest.approx(drr_db, abs=1e-6)
    remaining = np.cumsum(h[::-1] ** 2)[::-1]  # Schroeder's backward integral
    half = int(rt60 / 2 * RATE)
    assert 10 * np.log10(remaining[half] / remaining[1]) < -25  # 30 dB down at half the RT60, or more (highs)


def test_random_rooms_differ_and_repeat_with_their_seed() -> None:
    a, b = (room_impulse(np.random.default_rng(s), RATE) for s in (1, 2))
    assert len(a) != len(b) or not np.allclose(a, b)
    np.testing.assert_array_equal(room_impulse(np.random.default_rng(1), RATE), a)


def test_reverberate_keeps_length_and_level_and_smears_in_time() -> None:
    click = np.zeros(RATE, np.float32)
    click[100] = 0.5
    wet = reverberate(click, room_impulse(np.random.default_rng(0), RATE, 0.5, 0.0))
    assert wet.shape == click.shape and wet.dtype == np.float32
    assert np.sqrt(np.mean(wet ** 2)) == pytest.approx(np.sqrt(np.mean(click ** 2)), rel=1e-4)
    assert np.abs(wet[:100]).max() < 1e-8 and np.abs(wet[2000:]).max() > 1e-3  # nothing before (FFT rounding), a tail
