"""Few-shot heads: your own classes from a handful of examples each, as a linear classifier on YAMNet's 1024-d
AudioSet embedding (`soundtag.models.yamnet`), fitted in seconds by `soundtag.training.few_shot`
(`soundtag train --data my_sounds/ --head`).

YAMNet's embedding already separates the sounds of AudioSet's two million clips, so a logistic regression on it
needs far fewer examples than a network trained from scratch (`bench/few_shot.py` measures both on ESC-50's folds).
A head's folder holds `head.safetensors` (the weights, `(classes, 1024)`, and biases) and `model.json` (class names
and the inference settings); `Classifier.load(folder)` applies it like any model: windows, silence gate, events.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from soundtag.audio.load import AudioConfig
from soundtag.errors import ModelError
from soundtag.features.logmel import FrontendConfig
from soundtag.features.yamnet import SAMPLE_RATE
from soundtag.models.inference_config import InferenceConfig

HEAD_FILE = "head.safetensors"
KIND = "audioset-head"
AUDIO = AudioConfig(sample_rate=SAMPLE_RATE, duration=5.0)  # YAMNet's rate: windows need no resampling
PICTURES = FrontendConfig(sample_rate=SAMPLE_RATE, f_max=SAMPLE_RATE / 2)


@dataclass(frozen=True)
class HeadModel:
    """Class names, weights `(classes, 1024)` and biases `(classes,)` over YAMNet's embedding; softmax scores (one
    class per clip, as few-shot examples are labelled)."""

    classes: list[str]
    weight: np.ndarray
    bias: np.ndarray
    inference: InferenceConfig = field(default_factory=lambda: InferenceConfig(threshold=0.5, aggregate="mean"))
    audio: AudioConfig = AUDIO
    frontend: FrontendConfig = PICTURES  # for timeline pictures only: the head reads YAMNet's own frontend

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings `(n, 1024)` -> class probabilities `(n, classes)`."""
        logits = embeddings @ self.weight.T + self.bias
        logits -= logits.max(1, keepdims=True)
        return (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)


def save_head(folder: str | Path, head: HeadModel) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"weight": head.weight, "bias": head.bias}, folder / HEAD_FILE)
    meta = {"kind": KIND, "classes": head.classes, "audio": asdict(head.audio), "inference": asdict(head.inference)}
    (folder / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def is_head(folder: str | Path) -> bool:
    return (Path(folder) / HEAD_FILE).is_file()


def load_head(folder: str | Path) -> HeadModel:
    """Read what `save_head` wrote, checked: weights that fit the class list, all finite."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "model.json").read_text())
        tensors = load_file(folder / HEAD_FILE)
        head = HeadModel(list(meta["classes"]), tensors["weight"], tensors["bias"],
                         InferenceConfig(**meta["inference"]))
    except Exception as err:  # safetensors' own error types too, for truncated or foreign files
        raise ModelError(f"{folder}: not a soundtag head ({err!r})") from None
    if head.weight.shape != (len(head.classes), 1024) or head.bias.shape != (len(head.classes),):
        raise ModelError(f"{folder / HEAD_FILE}: weights of shape {head.weight.shape} do not fit "
                         f"{len(head.classes)} classes over YAMNet's 1024-d embedding")
    if not (np.isfinite(head.weight).all() and np.isfinite(head.bias).all()):
        raise ModelError(f"{folder / HEAD_FILE}: holds NaN or infinite weights")
    return head
