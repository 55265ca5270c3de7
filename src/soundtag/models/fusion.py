"""AudioSet knowledge on ESC-50's classes: YAMNet's 521 AudioSet scores mapped onto a model's classes (zero-shot)
and fused with the CNN's scores. The mapping (`audioset/esc50_mapping.json`, beside this module) was written from
the AudioSet ontology before any result was measured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from soundtag.errors import ModelError

MAPPING = Path(__file__).resolve().parent / "audioset" / "esc50_mapping.json"


def load_mapping(classes: list[str], audioset_classes: list[str], path: str | Path = MAPPING) -> list[np.ndarray]:
    """For each of `classes`, the indices of its AudioSet classes (empty where AudioSet has none)."""
    table = json.loads(Path(path).read_text())["classes"]
    index = {name: i for i, name in enumerate(audioset_classes)}
    missing = [c for c in classes if c not in table]
    if missing:
        raise ModelError(f"{path}: no AudioSet mapping for {', '.join(missing)}")
    return [np.array([index[n] for n in table[c]["audioset"]], np.int64) for c in classes]


def zero_shot(probs: np.ndarray, mapping: list[np.ndarray]) -> np.ndarray:
    """AudioSet probabilities `(n, 521)` -> a score per mapped class `(n, classes)`: the best of its AudioSet
    classes; NaN for classes AudioSet has no name for."""
    return np.stack([probs[:, m].max(1) if len(m) else np.full(len(probs), np.nan, np.float32) for m in mapping], 1)


def fuse(cnn: np.ndarray, audioset: np.ndarray, weight: float) -> np.ndarray:
    """Weighted geometric mean `cnn^(1-w) * audioset^w` of two score arrays `(n, classes)`; where `audioset` is NaN
    (a class AudioSet has no name for) the CNN's score stands alone."""
    fused = np.exp((1 - weight) * np.log(np.maximum(cnn, 1e-7)) + weight * np.log(np.maximum(audioset, 1e-7)))
    return np.where(np.isnan(audioset), cnn, fused).astype(np.float32)
