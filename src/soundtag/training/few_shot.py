"""Fitting few-shot heads (`soundtag.models.heads`): embed each example clip with YAMNet, fit a multinomial logistic
regression on the embeddings, and cross-validate it over the dataset's folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from soundtag.audio.load import load_clip
from soundtag.errors import ModelError
from soundtag.features.yamnet import SAMPLE_RATE
from soundtag.models.heads import AUDIO, HeadModel, save_head
from soundtag.models.yamnet import Yamnet
from soundtag.training.dataset import Dataset


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
