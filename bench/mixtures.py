"""Two sounds at once: each cross-validation fold model scores mixtures of two of its held-out clips.

Each held-out clip is mixed (as a waveform) with another held-out clip of a different class from the same fold,
the second at 0 dB and at -10 dB relative to the first (whole-clip RMS): 2,000 mixtures per level. One 5-s window
each. Reported per level, over all folds:
  both_above   share of mixtures where both labels score at or above the decision threshold (the threshold for
               fold k is chosen on the other folds' held-out predictions, summary.json's threshold_without_fold)
  both_top2    share where the two labels are the two best scores
  first, second  share where each label alone is above the threshold
  others_above mean number of other classes above the threshold (false alarms per mixture)
  mAP          mean over classes of the average precision of its scores over all mixtures of the level
  least_heard  the three classes most often missing from the top 2 of the mixtures they are in (share missing)
  masking      the three classes whose partner is most often missing from the top 2 (share of their mixtures)

    python bench/mixtures.py --cv results/esc50 --name multilabel
    python bench/mixtures.py --cv results/esc50 --name "multilabel, training clips" --training-clips

--training-clips mixes 400 of each fold model's *training* clips instead (drawn at random, partners from its
training clips): how well the model hears two sounds it has learned, the ceiling that generalisation then lowers.

Rows of each --name are kept in results/bench/mixtures.json, so recipes sit side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from common import held_out_classifiers, load_waves, recipe_parser, report_recipe, worst_classes
from sklearn.metrics import average_precision_score

LEVELS_DB = (0.0, -10.0)


def mix(first: np.ndarray, second: np.ndarray, db: float) -> np.ndarray:
    """`first` plus `second` scaled to `db` relative to `first`'s RMS."""
    level = np.sqrt(np.mean(first.astype(np.float64) ** 2)) / max(np.sqrt(np.mean(second.astype(np.float64) ** 2)),
                                                                     1e-10)
    return (first + second * level * 10 ** (db / 20)).astype(np.float32)


def main() -> None:
    parser = recipe_parser(__doc__)
    parser.add_argument("--training-clips", action="store_true", help="mix clips the fold model trained on")
    args = parser.parse_args()
    summary = json.loads((Path(args.cv) / "summary.json").read_text())
    if "threshold_without_fold" not in summary:
        raise SystemExit(f"{args.cv}/summary.json has no thresholds; run `soundtag evaluate {args.cv}` first")
    dataset, waves = load_waves(args.data)
    labels, folds = np.asarray(dataset.labels), np.asarray(dataset.folds)
    eye = np.eye(len(dataset.classes), dtype=bool)
    scores = {db: [] for db in LEVELS_DB}
    targets, thresholds, firsts, seconds = [], [], [], []
    done = []
    for k, clf, test in held_out_classifiers(args.cv, folds, args.folds):
        done.append(str(k))
        rng = np.random.default_rng(k)
        idx = np.flatnonzero(test)
        if args.training_clips:
            idx = np.sort(rng.choice(np.flatnonzero(~test), len(idx), replace=False))
        partner = np.array([rng.choice(idx[labels[idx] != labels[i]]) for i in idx])
        for db in LEVELS_DB:
            scores[db].append(clf.probabilities(np.stack([mix(waves[i], waves[j], db) for i, j in zip(idx, partner)])))
        targets.append(eye[labels[idx]] | eye[labels[partner]])
        thresholds.append(np.full(len(idx), summary["threshold_without_fold"][str(k)]))
        firsts.append(labels[idx])
        seconds.append(labels[partner])
    y, t = np.concatenate(targets), np.concatenate(thresholds)[:, None]
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    rows = []
    for db in LEVELS_DB:
        s = np.concatenate(scores[db])
        n = np.arange(len(s))
        above = s >= t
        top2 = np.argsort(-s, axis=1)[:, :2]
        heard = [(top2 == first[:, None]).any(1), (top2 == second[:, None]).any(1)]
        members = np.concatenate([first, second])
        rows.append({"recipe": args.name, "folds": ",".join(done), "level_db": db, "mixtures": len(s),
                     "both_above": float(np.mean(above[n, first] & above[n, second])),
                     "both_top2": float(np.mean(heard[0] & heard[1])),
                     "first": float(np.mean(above[n, first])), "second": float(np.mean(above[n, second])),
                     "others_above": float((above & ~y).sum(1).mean()),
                     "mAP": float(average_precision_score(y, s, average="macro")),
                     "least_heard": worst_classes(dataset.classes, members, ~np.concatenate(heard)),
                     "masking": worst_classes(dataset.classes, members, ~np.concatenate(heard[::-1]))})
    report_recipe("mixtures", args.name, rows, " ".join(__doc__.split("\n\n")[:2]).replace("\n", " "))


if __name__ == "__main__":
    main()
