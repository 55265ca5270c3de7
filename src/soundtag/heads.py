"""Few-shot heads: your own classes from a handful of examples each, as a linear classifier on YAMNet's 1024-d
AudioSet embedding (`soundtag.audioset`), trained in seconds (`soundtag train --data my_sounds/ --head`).

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
import torch
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from soundtag.audio import AudioConfig, load_clip
from soundtag.audioset import SAMPLE_RATE, Yamnet
from soundtag.data import Dataset
from soundtag.errors import ModelError
from soundtag.features import FrontendConfig
from soundtag.inference_config import InferenceConfig

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


def embed_clips(dataset: Dataset, indices: np.ndarray, yamnet: Yamnet) -> np.ndarray:
    """YAMNet's embedding `(len(indices), 1024)` of each clip's first 5 s, as the Classifier embeds a window."""
    out = []
    for start in tqdm(range(0, len(indices), 64), desc="AudioSet embeddings", unit="64 clips"):
        waves = np.stack([load_clip(dataset.paths[i], AUDIO) for i in indices[start:start + 64]])
        out.append(yamnet.windows(waves, SAMPLE_RATE)[1])
    return np.concatenate(out) if out else np.zeros((0, 1024), np.float32)


def fit_head(embeddings: np.ndarray, labels: np.ndarray, classes: list[str], c: float = 1.0) -> HeadModel:
    """A multinomial logistic regression (L2, inverse strength `c`) on embeddings `(n, 1024)`."""
    from sklearn.linear_model import LogisticRegression

    if len(set(labels.tolist())) < 2:
        raise ModelError("a head needs examples of at least two classes")
    fit = LogisticRegression(C=c, max_iter=2000).fit(embeddings, labels)
    coef, intercept = fit.coef_, fit.intercept_
    if len(fit.classes_) == 2:  # sklearn keeps one row for two classes, p(second) = sigmoid(row): softmax of [0, row]
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weight = np.zeros((len(classes), embeddings.shape[1]), np.float32)
    bias = np.full(len(classes), -1e4, np.float32)  # a class without examples is never chosen
    weight[fit.classes_], bias[fit.classes_] = coef, intercept
    return HeadModel(list(classes), weight, bias)


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


def cross_validate(embeddings: np.ndarray, dataset: Dataset, c: float = 1.0) -> dict[int, float]:
    """Accuracy of a head on each fold of `dataset`, fitted on the other folds' embeddings `(clips, 1024)`; folds
    whose other folds hold fewer than two classes are skipped."""
    scores = {}
    for k in sorted(set(dataset.folds.tolist())):
        train, test = dataset.split(k)
        if len(set(dataset.labels[train].tolist())) < 2:
            continue
        head = fit_head(embeddings[train], dataset.labels[train], dataset.classes, c)
        scores[k] = float((head.scores(embeddings[test]).argmax(1) == dataset.labels[test]).mean())
    return scores


def train_head(dataset: Dataset, out: str | Path, c: float = 1.0) -> dict[int, float]:
    """Embed every clip of `dataset` with YAMNet, fit a head on all of them into `out`, and return its
    cross-validated accuracy per fold (empty where no fold can be held out)."""
    yamnet = Yamnet.load(threads=torch.get_num_threads())
    embeddings = embed_clips(dataset, np.arange(len(dataset)), yamnet)
    save_head(out, fit_head(embeddings, dataset.labels, dataset.classes, c))
    return cross_validate(embeddings, dataset, c)
