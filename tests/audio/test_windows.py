import itertools

import numpy as np
import pytest

from soundtag.audio.windows import TAIL, Windows


def cut(blocks: list[np.ndarray], size: int = 10, step: int = 4) -> tuple[list, int]:
    windows = Windows(size, step)
    return [(o, w.copy(), level) for o, w, level in windows.cut(blocks)], windows.length


@pytest.mark.parametrize("n", [3, 10, 11, 30, 33, 37])
def test_blocks_of_any_size_give_the_windows_of_the_whole(n: int) -> None:
    audio = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    whole, length = cut([audio])
    assert length == n
    for sizes in ([1] * n, [7, 1, 20, n], [n]):
        edges = np.cumsum([0, *sizes])
        pieces, piece_length = cut([audio[a:b] for a, b in itertools.pairwise(edges) if a < n])
        assert piece_length == n and [o for o, _, _ in pieces] == [o for o, _, _ in whole]
        for (_, a, la), (_, b, lb) in zip(pieces, whole):
            np.testing.assert_array_equal(a, b)
            assert la == pytest.approx(lb)


def test_offsets_step_then_the_last_window_meets_the_end() -> None:
    offsets = [o for o, _, _ in cut([np.ones(33, np.float32)])[0]]
    assert offsets == [0, 4, 8, 12, 16, 20, 23]
    assert [o for o, _, _ in cut([np.ones(10 + int(TAIL * 10), np.float32)])[0]] == [0]  # padding: no second


def test_short_audio_is_one_padded_window_at_the_audio_level() -> None:
    ((offset, window, level),), length = cut([np.full(5, 0.5, np.float32)])
    assert offset == 0 and length == 5 and len(window) == 10 and not window[5:].any()
    assert level == pytest.approx(20 * np.log10(0.5))
