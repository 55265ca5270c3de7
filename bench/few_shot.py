"""Few-shot classes: a head on AudioSet's embedding (`soundtag train --head`) against the CNN trained from scratch,
given k examples per class. For each test fold of ESC-50, k clips of each class are drawn (seeded by k and fold)
from the other four folds; each method learns from those 50 x k clips alone and is scored on the whole held-out
fold (400 clips, top-1 accuracy). The head runs on every fold in seconds; the CNN from scratch (the default recipe,
150 epochs) only on the folds given with --scratch-folds, as it takes minutes a fold on a CPU.

    python bench/few_shot.py --scratch-folds 1
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
from common import report

from soundtag.models.yamnet import Yamnet
from soundtag.training.config import make_config
from soundtag.training.dataset import load_dataset
from soundtag.training.evaluate import evaluate_run
from soundtag.training.few_shot import embed_clips, fit_head
from soundtag.training.train import run

SHOTS = (5, 10)


def draw(labels: np.ndarray, pool: np.ndarray, k: int, seed: list[int]) -> np.ndarray:
    """k indices of each class from `pool`."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(pool[labels[pool] == c], k, replace=False) for c in np.unique(labels)])


def scratch(dataset: object, shots: np.ndarray, test: np.ndarray, fold: int) -> float:
    """Train the default recipe on `shots` alone and score it on `test` (fold `fold`), through a CSV dataset."""
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "shots.csv"
        with listing.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "fold"])
            writer.writerows([str(dataset.paths[i].resolve()), dataset.classes[dataset.labels[i]],
                              fold if i in set(test.tolist()) else 0] for i in np.concatenate([shots, test]))
        out = run(make_config("default"), listing, Path(tmp) / "run", folds=[fold])
        return evaluate_run(out, listing)["folds"][fold]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--scratch-folds", type=lambda t: [int(k) for k in t.split(",")], default=[])
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    embeddings = embed_clips(dataset, np.arange(len(dataset)), Yamnet.load())
    rows = []
    for k in (*SHOTS, None):
        head, cnn = {}, {}
        for fold in range(1, 6):
            train, test = dataset.split(fold)
            shots = train if k is None else draw(dataset.labels, train, k, [k, fold])
            fitted = fit_head(embeddings[shots], dataset.labels[shots], dataset.classes)
            head[fold] = float((fitted.scores(embeddings[test]).argmax(1) == dataset.labels[test]).mean())
            if k is not None and fold in args.scratch_folds:
                cnn[fold] = scratch(dataset, shots, test, fold)
        for method, scores in (("head on AudioSet's embedding", head), ("CNN from scratch", cnn)):
            if scores:
                rows.append({"method": method, "shots": k or "all (1,600)", "folds": ",".join(map(str, scores)),
                             "accuracy": float(np.mean(list(scores.values()))),
                             "std": float(np.std(list(scores.values()))),
                             "per_fold": ", ".join(f"{f}: {a:.4f}" for f, a in scores.items())})
    report("few_shot", rows, " ".join(__doc__.split("\n\n")[:1]).replace("\n", " "))


if __name__ == "__main__":
    main()
