"""What a recording's window scores say about the whole file: how present each sound is, and when it happens.

A long file is scored window by window (`Classifier`). A sound that fills a fraction of the file must keep its own
confidence, so a file's score for a class is its *presence*: the highest score any window gives it (a mean over
windows would dilute a 5-s sound in a minute of room tone twelve-fold). An *event* is a run of consecutive windows
whose score for a class reaches the decision threshold; it spans from the first window's start to the last
window's end, so its times are as fine as the hop between windows. `narrow_events` then moves each event's edges in
to the pieces of its first and last windows where the sound alone is still heard, at 0.48-s steps.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from soundtag.audio.windows import dbfs
from soundtag.models.inference_config import AGGREGATES

PIECE_SECONDS, PIECE_STEP = 0.96, 0.48  # YAMNet's patch and hop: the finest the default model's AudioSet side scores
PIECES_PER_CALL = 64  # pieces copied out of the audio at a time


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


def narrow_events(events: list[dict], wave: np.ndarray, rate: int, window: float,
                  score: Callable[[np.ndarray], np.ndarray], classes: list[str], threshold: float,
                  silence_dbfs: float) -> list[dict]:
    """`events` of `wave` (mono, `rate` Hz) with their edges moved in, at PIECE_STEP-s steps.

    An event's start lies somewhere in its first window and its end in its last. Each window is cut into pieces of
    PIECE_SECONDS every PIECE_STEP; a piece is scored alone, as a short window of its own, by `score`
    (`(n, samples) -> (n, classes)`; both models pool over time, so a piece needs no padding, which would dilute the
    means they take, and costs a fifth of a window; a piece cut short by the end of the audio is looped to its
    length). The event then starts at the first piece of its first window whose score for its class reaches
    `threshold`, and ends with the last such piece of its last window. An edge whose window has no such piece stays
    where it was (that sound needs more than a piece to be heard), so an event never grows. Near-silent pieces (below
    `silence_dbfs`) are not scored; pieces are scored PIECES_PER_CALL at a time, each once whatever events share it.
    """
    size, length, step = round(window * rate), round(PIECE_SECONDS * rate), round(PIECE_STEP * rate)
    uses: dict[int, list[tuple[int, str]]] = {}  # offset in samples -> (event, edge) its piece may move
    for i, e in enumerate(events):
        start, end = round(e["start"] * rate), min(round(e["end"] * rate), len(wave))
        for edge, (a, b) in (("start", (start, min(start + size, end))), ("end", (max(end - size, start), end))):
            for o in {*range(a, max(a, b - length) + 1, step), max(a, b - length)}:  # the last piece ends at b
                uses.setdefault(o, []).append((i, edge))
    heard = [o for o in sorted(uses) if dbfs(wave[o:o + length]) >= silence_dbfs]  # each piece scored once
    if not heard:
        return events
    scores = np.concatenate([score(np.stack([np.resize(wave[o:o + length], length) for o in part]))
                             for part in (heard[k:k + PIECES_PER_CALL] for k in range(0, len(heard), PIECES_PER_CALL))])
    firsts, lasts = [np.inf] * len(events), [-np.inf] * len(events)
    for o, s in zip(heard, scores):
        for i, edge in uses[o]:
            if s[classes.index(events[i]["label"])] < threshold:
                continue
            if edge == "start":
                firsts[i] = min(firsts[i], o / rate)
            else:
                lasts[i] = max(lasts[i], min(o + length, len(wave)) / rate)
    narrowed = []
    for e, first, last in zip(events, firsts, lasts):
        start, end = (first if first < np.inf else e["start"]), (last if last > -np.inf else e["end"])
        narrowed.append({**e, "start": float(start), "end": float(end)} if start < end else dict(e))
    return sorted(narrowed, key=lambda e: (e["start"], -e["score"]))
