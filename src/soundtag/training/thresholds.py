"""Decision thresholds chosen out-of-fold: a score at or above the threshold means "this sound is present".

The threshold is the one that maximises micro-F1 over held-out predictions: every clip of a test fold scored by the
model that never trained on it, alone and mixed with another held-out clip of a different class at -10 to +10 dB
(mixed as mel power, like the training mixtures). One global threshold, not one per class: ESC-50 has 40 clips a
class, too few to place 50 thresholds without fitting noise. For a benchmark on fold k, `nested` gives the
threshold chosen on the other folds only, so the test fold never sets its own threshold.
"""

from __future__ import annotations

import numpy as np

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
MIX_DB = 10.0
SEED = 0


def choose_threshold(scores: np.ndarray, targets: np.ndarray) -> float:
    """The threshold on the grid 0.05-0.95 that maximises micro-F1 of `scores >= t` against binary `targets`,
    both `(items, classes)`."""
    positive = targets > 0.5
    best, best_f1 = 0.5, -1.0
    for t in GRID:
        hit = scores >= t
        tp = np.count_nonzero(hit & positive)
        wrong = np.count_nonzero(hit ^ positive)  # false positives + false negatives
        f1 = 2 * tp / max(2 * tp + wrong, 1)
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return best


def nested(parts: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[int, float]:
    """For each fold k of `{k: (scores, targets)}`, the threshold chosen on every other fold's held-out items."""
    return {k: choose_threshold(np.concatenate([s for j, (s, _) in parts.items() if j != k]),
                                np.concatenate([t for j, (_, t) in parts.items() if j != k]))
            for k in parts if len(parts) > 1}


def mixture_pairs(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each clip, a partner index of another class and the partner's level in dB relative to the clip."""
    partners = np.array([rng.choice(np.flatnonzero(labels != y)) for y in labels])
    return partners, rng.uniform(-MIX_DB, MIX_DB, len(labels))
