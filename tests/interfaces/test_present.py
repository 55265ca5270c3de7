"""How results are shown: one score format, one time format, every sound present before the best of the rest."""

import numpy as np

from soundtag.inference.classifier import Analysis, WindowTags
from soundtag.interfaces.present import BELOW, PRESENT, clock, event_rows, percent, sound_rows, unfamiliar_note


def test_one_score_format_and_one_time_format() -> None:
    assert [percent(s) for s in (0.996, 1.0, 0.11, 0.004)] == ["100%", "100%", "11%", "0%"]
    assert [clock(s) for s in (0.0, 2.48, 72.4, 600.0, -0.01)] == ["0:00.0", "0:02.5", "1:12.4", "10:00.0", "0:00.0"]


def test_every_sound_present_comes_first_then_the_next_best_below() -> None:
    scores = {f"s{i}": 0.9 - 0.05 * i for i in range(15)}  # s0 0.90 ... s14 0.20
    rows = sound_rows(scores, threshold=0.5, below=3)
    assert [r[0] for r in rows if r[2] == PRESENT] == [f"s{i}" for i in range(9)]  # all nine, none cut off
    assert [r[0] for r in rows if r[2] == BELOW] == ["s9", "s10", "s11"]
    assert rows[0] == ["s0", "90%", PRESENT]


def test_events_read_in_the_same_formats() -> None:
    assert event_rows([{"label": "dog", "start": 61.44, "end": 62.4, "score": 0.49}]) == [
        ["dog", "1:01.4", "1:02.4", "49%"]]


def test_unfamiliar_audio_is_named_with_its_times() -> None:
    windows = [WindowTags(s, s + 5.0, [], False) for s in (0.0, 2.5, 5.0)]
    result = Analysis([], windows, 10.0, False, np.zeros(4), 9.0, [], np.array([1.0, 9.0, 2.0]))
    assert "(0:02.5-0:07.5) is unlike anything" in unfamiliar_note(result, 5.0)
    assert unfamiliar_note(result, 10.0) == "" and unfamiliar_note(result, None) == ""
