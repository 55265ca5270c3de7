"""Fusion designs tried on the real recordings' dev split (never the test split), side by side: how the CNN's scores
and AudioSet's (YAMNet) are combined. Every recording is cut into the Classifier's windows (5 s every 2.5 s, silent
windows dropped); per window the CNN's scores, embedding and unfamiliarity (Mahalanobis distance) and YAMNet's patch
probabilities and embedding are computed once, then each design scores the windows and the file takes each class's
best window, as the Classifier does. Designs:
  geometric w    cnn^(1-w) * zero_shot^w, YAMNet's patch probabilities averaged over the window (the shipped design)
  max-patch w    the same with the window's best patch instead of the mean
  arithmetic w   (1-w) * cnn + w * zero_shot
  adaptive       w rising from 0.3 to 0.6 as the window's unfamiliarity (CNN embedding) goes from 15 to 30
  3-way          cnn^a * zero_shot^b * head^c, head: a logistic regression on YAMNet's 1024-d embedding trained
                 on all 2,000 ESC-50 clips (its own ESC-50 5-fold CV is reported beside it)
Columns: top-1 and class-balanced top-1 over the dev split.

    python bench/realworld/fusion_trials.py [--data data/realworld] [--esc50 data/ESC-50]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import load_waves, report
from evaluate import recordings

from soundtag.audio.load import load
from soundtag.inference.classifier import Classifier
from soundtag.models import yamnet as audioset


def windows(clf: Classifier, yamnet: audioset.Yamnet, mapping: list[np.ndarray], path: Path) -> dict:
    """Everything the designs need about one recording's non-silent windows."""
    _, cut, levels = clf._windows(load(path, None, clf.sample_rate))
    heard = levels >= clf.config.silence_dbfs
    wins = np.stack(cut)[heard if heard.any() else slice(None)]
    cnn, embedding = clf._run_batched(wins)
    mels = np.stack([audioset.patches(w) for w in audioset.resample_poly(wins, 16_000, clf.sample_rate, axis=-1)])
    out = yamnet.patches(mels.reshape(-1, audioset.PATCH_FRAMES, audioset.N_MELS))
    probs = out.probs.reshape(len(wins), -1, out.probs.shape[-1])
    return {"cnn": cnn, "ood": clf.ood(embedding), "mean": audioset.zero_shot(probs.mean(1), mapping),
            "max": audioset.zero_shot(probs.max(1), mapping),
            "embedding": out.embedding.reshape(len(wins), -1, out.embedding.shape[-1]).mean(1)}


def geometric(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Weighted geometric mean of `(weight (n, 1) or scalar, scores (n, classes))` pairs; NaN scores (a class
    AudioSet has no name for) fall back to the first part's."""
    base = parts[0][1]
    logs = sum(w * np.log(np.maximum(np.where(np.isnan(s), base, s), 1e-7)) for w, s in parts)
    return np.exp(logs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/realworld"))
    parser.add_argument("--esc50", default="data/ESC-50")
    args = parser.parse_args()
    clf, yamnet = Classifier.load(audioset_weight=0), audioset.Yamnet.load()
    mapping = audioset.load_mapping(clf.classes, yamnet.classes)
    rows = recordings(args.data, "dev")
    items = [windows(clf, yamnet, mapping, args.data / r["file"]) for r in tqdm(rows, desc="dev recordings")]
    labels = np.array([clf.classes.index(r["label"]) for r in rows])

    dataset, waves = load_waves(args.esc50)
    esc_embeddings = np.concatenate([yamnet.windows(waves[i:i + 64], clf.sample_rate)[1]
                                     for i in range(0, len(waves), 64)])
    y, folds = np.asarray(dataset.labels), np.asarray(dataset.folds)
    head_cv = np.mean([(LogisticRegression(max_iter=2000).fit(esc_embeddings[folds != k], y[folds != k])
                        .predict(esc_embeddings[folds == k]) == y[folds == k]).mean() for k in range(1, 6)])
    head = LogisticRegression(max_iter=2000).fit(esc_embeddings, y)
    for item in items:
        item["head"] = head.predict_proba(item["embedding"])

    def adaptive(item: dict) -> np.ndarray:
        w = 0.3 + 0.3 * np.clip((item["ood"][:, None] - 15) / 15, 0, 1)
        return geometric([(1 - w, item["cnn"]), (w, item["mean"])])

    designs = {f"geometric {w}": (lambda it, w=w: geometric([(1 - w, it["cnn"]), (w, it["mean"])]))
               for w in (0.0, 0.2, 0.3, 0.4, 0.5, 1.0)}
    designs |= {f"max-patch {w}": (lambda it, w=w: geometric([(1 - w, it["cnn"]), (w, it["max"])]))
                for w in (0.3, 0.5)}
    designs |= {f"arithmetic {w}": (lambda it, w=w: (1 - w) * it["cnn"] + w * np.where(np.isnan(it["mean"]),
                                                                                        it["cnn"], it["mean"]))
                for w in (0.3, 0.5, 0.7)}
    designs["adaptive 0.3-0.6"] = adaptive
    designs |= {f"3-way {a}/{b}/{c}": (lambda it, a=a, b=b, c=c: geometric([(a, it["cnn"]), (b, it["mean"]),
                                                                             (c, it["head"])]))
                for a, b, c in ((0.6, 0.2, 0.2), (0.5, 0.3, 0.2), (0.4, 0.3, 0.3), (0.0, 0.5, 0.5))}
    designs["head alone"] = lambda it: it["head"]
    table = []
    for name, design in designs.items():
        hit = np.array([design(it).max(0).argmax() for it in items]) == labels
        table.append({"design": name, "dev_files": len(items), "top1": float(hit.mean()),
                      "balanced": float(np.mean([hit[labels == c].mean() for c in np.unique(labels)]))})
    report("realworld_fusion_trials", table, " ".join(__doc__.split("\n\n")[:1]).replace("\n", " ")
           + f" The 3-way head's own ESC-50 5-fold CV accuracy: {head_cv:.4f}.")


if __name__ == "__main__":
    main()
