"""How results are shown to people: one score format (percent), one time format (m:ss.s), and the rows of the
app's tables. Pure functions of an `Analysis` or catalog rows, so the app's look is tested without a browser."""

from __future__ import annotations

import numpy as np

from soundtag.inference.classifier import Analysis

BELOW_SHOWN = 5  # sounds listed under the threshold, after every sound above it
PRESENT, BELOW = "present", "below threshold"


def percent(score: float) -> str:
    """0.873 -> '87%'; every score the app shows."""
    return f"{100 * score:.0f}%"


def clock(seconds: float) -> str:
    """72.4 -> '1:12.4'; every time the app shows."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def sound_rows(scores: dict[str, float], threshold: float, below: int = BELOW_SHOWN) -> list[list[str]]:
    """Every sound at or above `threshold`, best first, then the `below` next best marked as below it:
    rows of [sound, score, present or below threshold]."""
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    present = [[label, percent(s), PRESENT] for label, s in ranked if s >= threshold]
    rest = [[label, percent(s), BELOW] for label, s in ranked if s < threshold][:below]
    return present + rest


def event_rows(events: list[dict]) -> list[list[str]]:
    """Rows of [sound, from, to, peak score], in time order."""
    return [[e["label"], clock(e["start"]), clock(e["end"]), percent(e["score"])] for e in events]


def unfamiliar_note(result: Analysis, limit: float | None) -> str:
    """A warning when some windows are unlike the training audio (their distance above `limit`), saying when; ''
    when none are, or when the model has no unfamiliar-audio statistics (`limit` None)."""
    if limit is None or not np.isfinite(result.ood) or result.ood <= limit:
        return ""
    far = [w for w, d in zip(result.windows, result.window_ood) if d > limit]
    spans = ", ".join(f"{clock(w.start)}-{clock(w.end)}" for w in far[:3]) + (" ..." if len(far) > 3 else "")
    return (f"Part of this audio ({spans}) is unlike anything the model was trained on: its tags there may be "
            "guesses, or the sound may be one it does not know.")
