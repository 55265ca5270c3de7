"""What a recording's window scores say about the whole file: how present each sound is, and when it happens.

A long file is scored window by window (`Classifier`). A sound that fills a fraction of the file must keep its own
confidence, so a file's score for a class is its *presence*: the highest score any window gives it (a mean over
windows would dilute a 5-s sound in a minute of room tone twelve-fold). An *event* is a run of consecutive windows
whose score for a class reaches the decision threshold; it spans from the first window's start to the last
window's end, so its times are as fine as the hop between windows.
"""

from __future__ import annotations

import numpy as np

from soundtag.models.inference_config import AGGREGATES


def presence(scores: np.ndarray, how: str = "max") -> np.ndarray:
    """File scores `(classes,)` from window scores `(windows, classes)`: the max over windows, or their mean (the
    pre-0.2 behaviour, for single-label models whose window scores compete)."""
    if how not in AGGREGATES:
        raise ValueError(f"unknown aggregate {how!r}; choose from {', '.join(AGGREGATES)}")
    return scores.max(0) if how == "max" else scores.mean(0)


def find_events(starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, threshold: float,
                classes: list[str]) -> list[dict]:
    """Events `[{"label", "start", "end", "score"}]` (seconds; score = the peak window score), ordered by start.

    `starts`, `ends` `(windows,)` are window times in seconds and `scores` `(windows, classes)` their scores (0 for
    a silent window, which so ends any event). Windows next to each other that both reach `threshold` for a class
    are one event of that class.
    """
    events = []
    for c in np.flatnonzero((scores >= threshold).any(0)):
        above = np.concatenate([[False], scores[:, c] >= threshold, [False]])
        edges = np.flatnonzero(np.diff(above.astype(np.int8)))  # run starts and ends, alternating
        for first, stop in zip(edges[::2], edges[1::2]):
            events.append({"label": classes[c], "start": float(starts[first]), "end": float(ends[stop - 1]),
                           "score": float(scores[first:stop, c].max())})
    return sorted(events, key=lambda e: (e["start"], -e["score"]))
