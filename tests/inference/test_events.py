import numpy as np
import pytest

from soundtag.inference.events import find_events, presence

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
