"""Calibrating a model from its cross-validation run: the decision threshold (chosen out-of-fold by `evaluate`) and
the statistics behind the unfamiliar-audio score (Mahalanobis distance of a window's embedding from the training
clips', Lee et al., 2018), with a threshold from out-of-fold distances, so "unfamiliar" means what it meant on audio
the model had not seen."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from soundtag.errors import ConfigError
from soundtag.inference.classifier import OOD_FILE, Classifier
from soundtag.models.cnn import load_model, set_inference
from soundtag.training.dataset import load_dataset


def calibrate_model(data: str | Path, cv: str | Path, model: str | Path, quantile: float = 95.0) -> dict:
    """Give `model` (trained on all of `data`) the decision threshold of the cross-validation run `cv` on the same
    data (its summary.json) and unfamiliar-audio statistics whose threshold is the `quantile` of the run's
    out-of-fold distances. Returns {"threshold", "ood_threshold", "held_out"} (the last: clips behind it)."""
    if not 0 < quantile < 100:
        raise ConfigError(f"quantile must be between 0 and 100, got {quantile}")
    load_model(model)  # a wrong folder fails now, not after the cross-validation models have run
    summary = Path(cv) / "summary.json"
    decision = json.loads(summary.read_text()).get("threshold") if summary.is_file() else None
    if decision is None:
        raise ConfigError(f"{summary}: no out-of-fold decision threshold; run `soundtag evaluate {cv}` first")
    held_out = np.concatenate([d for _, _, d in out_of_fold(data, cv)])
    ood_threshold = calibrate(data, model, held_out, quantile)
    set_inference(model, threshold=decision)
    return {"threshold": decision, "ood_threshold": ood_threshold, "held_out": len(held_out)}


def embeddings(clf: Classifier, paths: list[Path], batch: int = 64) -> np.ndarray:
    """The model's embeddings of the files that are not silent `(files, channels)`, a batch of files at a time."""
    return np.stack([a.embedding for i in range(0, len(paths), batch)
                     for a in clf.analyze_batch(paths[i:i + batch], top_k=1) if not a.silent])


def out_of_fold(data: str | Path, cv: str | Path) -> Iterator[tuple[int, Classifier, np.ndarray]]:
    """For each fold model `cv/fold{k}` (those trained so far): k, the model with OOD statistics fitted on its
    training folds, and the distances of its held-out fold's files: what it would say of new audio of known
    classes."""
    dataset = load_dataset(data)
    trained = [k for k in sorted(set(dataset.folds.tolist())) if (Path(cv) / f"fold{k}" / "model.json").is_file()]
    if not trained:
        raise FileNotFoundError(f"{cv}: no fold models (fold*/model.json); is it a cross-validation run?")
    for k in trained:
        train, test = dataset.split(k)
        clf = Classifier.load(Path(cv) / f"fold{k}")
        clf.ood_stats = fit_ood(embeddings(clf, [dataset.paths[i] for i in train]), threshold=np.inf)
        yield k, clf, clf.ood(embeddings(clf, [dataset.paths[i] for i in test]))


def calibrate(data: str | Path, model: str | Path, held_out: np.ndarray, quantile: float = 95.0) -> float:
    """Give `model` (trained on all of `data`) its unfamiliar-audio statistics, fitted on every clip, and a
    threshold: the `quantile` of `held_out`, the out-of-fold distances of a cross-validation on the same data
    (`out_of_fold`), so that about 100 - quantile % of new in-distribution files get flagged. Writes
    `model/ood.safetensors` and returns the threshold."""
    threshold = float(np.percentile(held_out, quantile))
    fit_ood(embeddings(Classifier.load(model), load_dataset(data).paths), threshold, folder=model)
    return threshold



def fit_ood(embeddings: np.ndarray, threshold: float, folder: str | Path | None = None) -> dict[str, np.ndarray]:
    """Mean and (ridge-regularised) precision of training embeddings `(n, channels)`, and the distance above which
    audio counts as unfamiliar; written to `folder/ood.safetensors` when a folder is given."""
    embeddings = embeddings.astype(np.float64)
    cov = np.cov(embeddings, rowvar=False)
    cov += 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov))
    stats = {"mean": embeddings.mean(0), "precision": np.linalg.inv(cov), "threshold": np.array(threshold)}
    if folder is not None:
        save_file({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in stats.items()}, Path(folder) / OOD_FILE)
    return stats
