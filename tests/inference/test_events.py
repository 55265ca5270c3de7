import numpy as np
import pytest

from soundtag.inference.events import PIECE_STEP, find_events, narrow_events, presence

CLASSES = ["dog", "rain"]


def test_presence_is_the_best_window_or_the_mean() -> None:
    scores = np.array([[0.9, 0.1], [0.1, 0.1], [0.2, 0.4]])
    np.testing.assert_allclose(presence(scores), [0.9, 0.4])
    np.testing.assert_allclose(presence(scores, "mean"), [0.4, 0.2])
    with pytest.raises(ValueError, match="aggregate"):
        presence(scores, "median")


def test_neighbouring_windows_merge_into_one_event_with_its_peak() -> None:
    starts = np.array([0.0, 2.5, 5.0, 7.5, 10.0])
    ends = starts + 5.0
    scores = np.array([[0.1, 0.6], [0.7, 0.6], [0.9, 0.0], [0.2, 0.0], [0.8, 0.7]])
    events = find_events(starts, ends, scores, 0.5, CLASSES)
    assert events == [
        {"label": "rain", "start": 0.0, "end": 7.5, "score": pytest.approx(0.6)},
        {"label": "dog", "start": 2.5, "end": 10.0, "score": pytest.approx(0.9)},
        {"label": "dog", "start": 10.0, "end": 15.0, "score": pytest.approx(0.8)},
        {"label": "rain", "start": 10.0, "end": 15.0, "score": pytest.approx(0.7)},
    ]


def test_no_window_above_threshold_no_event() -> None:
    assert find_events(np.array([0.0]), np.array([5.0]), np.array([[0.3, 0.49]]), 0.5, CLASSES) == []


def loud(windows: np.ndarray) -> np.ndarray:
    """A stand-in model: "dog" scores 1 where a window is loud, "rain" never."""
    level = np.sqrt((windows ** 2).mean(1))
    return np.stack([(level > 0.1).astype(np.float32), np.zeros(len(windows), np.float32)], 1)


def test_event_edges_move_in_to_where_the_sound_alone_is_heard() -> None:
    rate = 1000
    wave = np.full(20 * rate, 1e-3, np.float32)  # quiet room tone, above the silence gate
    wave[round(2.2 * rate):round(2.6 * rate)] = 0.5  # a 0.4-s bark
    wave[10 * rate:] = 0.5  # a sound from 10 s to the end
    events = [{"label": "dog", "start": 0.0, "end": 5.0, "score": 0.9},
              {"label": "dog", "start": 7.5, "end": 20.0, "score": 0.9},
              {"label": "rain", "start": 0.0, "end": 5.0, "score": 0.5}]
    rain, dog, late = narrow_events(events, wave, rate, 5.0, loud, CLASSES, 0.5, -80.0)  # by start
    assert 1.4 <= dog["start"] <= 2.2 and 2.6 <= dog["end"] <= 3.6  # the bark, at 0.48-s steps
    assert dog["end"] - dog["start"] <= 0.96 + 2 * PIECE_STEP
    assert late["start"] == pytest.approx(9.42) and late["end"] == 20.0  # never past the audio
    assert (rain["start"], rain["end"]) == (0.0, 5.0)  # no piece is heard as rain alone: the window edges stay
    assert [e["score"] for e in (dog, rain, late)] == [0.9, 0.5, 0.9]


def test_silent_pieces_are_not_scored_and_no_event_grows() -> None:
    seen = []

    def score(windows: np.ndarray) -> np.ndarray:
        seen.append(len(windows))
        return loud(windows)

    wave = np.zeros(8000, np.float32)
    events = [{"label": "dog", "start": 0.0, "end": 5.0, "score": 0.9}]
    assert narrow_events(events, wave, 1000, 5.0, score, CLASSES, 0.5, -60.0) == events and not seen
