"""Real recordings from outside ESC-50: how a model tags the audio users actually have.

Each recording of data/realworld (built by build.py from manifest.csv) is tagged whole through the Classifier, as a
user would call it (5-s windows every 2.5 s, the file's score per class its best window), and its top tags are
compared with its one label. Reported per split (dev: for choosing designs and settings; test: touched once per
design, for the reported number), never trained on:
  top1, top5   share of recordings whose label is the best tag, or among the five best
  balanced     top-1 averaged over classes (each class counts the same, whatever its number of recordings)
  sources      top-1 per source (recordings right / recordings), the sources being independent recordists, devices
               and places
  worst        the classes most often wrong (right / recordings)

    python bench/realworld/evaluate.py --split dev --name "0.4 (CNN)"
    python bench/realworld/evaluate.py --split dev --name "fusion 0.5" --audioset-weight 0.5

Rows of each --name and split are kept in results/bench/realworld.json, side by side.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import report_recipe

from soundtag.audio.load import AudioError
from soundtag.inference.classifier import Classifier


def recordings(data: Path, split: str) -> list[dict]:
    index = data / "index.csv"
    if not index.is_file():
        raise SystemExit(f"{index}: missing; build the audio first: python bench/realworld/build.py")
    with index.open(newline="") as f:
        return [r for r in csv.DictReader(f) if split in ("all", r["split"])]


def ranks(clf: Classifier, rows: list[dict], data: Path) -> np.ndarray:
    """The rank (0 = best) of each recording's label among the file's tags; -1 for a file that failed."""
    out = []
    for start in tqdm(range(0, len(rows), 16), desc="tagging", unit="16 files"):
        part = rows[start:start + 16]
        for row, result in zip(part, clf.analyze_batch([data / r["file"] for r in part],
                                                       top_k=len(clf.classes))):
            if isinstance(result, AudioError) or result.silent:
                print(f"not scored: {row['file']}: {getattr(result, 'reason', 'silent')}", file=sys.stderr)
                out.append(len(clf.classes))
                continue
            labels = [t["label"] for t in result.tags]
            out.append(labels.index(row["label"]))
    return np.array(out)


def share(hits: np.ndarray, groups: np.ndarray) -> dict[str, tuple[int, int]]:
    return {g: (int(hits[groups == g].sum()), int((groups == g).sum())) for g in sorted(set(groups))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/realworld"))
    parser.add_argument("--split", choices=("dev", "test", "all"), required=True)
    parser.add_argument("--name", required=True, help="the design's name in the table")
    parser.add_argument("--model", help="model folder (default: the shipped model)")
    parser.add_argument("--audioset-weight", type=float, help="AudioSet's weight in the fusion (default: the model's)")
    args = parser.parse_args()
    rows = recordings(args.data, args.split)
    clf = Classifier.load(args.model, audioset_weight=args.audioset_weight)
    rank = ranks(clf, rows, args.data)
    hit = rank == 0
    labels, sources = np.array([r["label"] for r in rows]), np.array([r["source"] for r in rows])
    per_class = share(hit, labels)
    worst = sorted(per_class.items(), key=lambda kv: kv[1][0] / kv[1][1])[:5]
    report_recipe("realworld", f"{args.name} [{args.split}]", [{
        "recipe": f"{args.name} [{args.split}]", "split": args.split, "audioset_weight": clf.config.audioset_weight,
        "files": len(rows), "classes": len(per_class), "sources": len(set(sources)),
        "top1": float(hit.mean()), "top5": float((rank < 5).mean()),
        "balanced": float(np.mean([h / n for h, n in per_class.values()])),
        "sources_top1": ", ".join(f"{s} {h}/{n}" for s, (h, n) in share(hit, sources).items()),
        "worst": ", ".join(f"{c} {h}/{n}" for c, (h, n) in worst),
        "per_class": ", ".join(f"{c} {h}/{n}" for c, (h, n) in per_class.items())}],
        " ".join(__doc__.split("\n\n")[:2]).replace("\n", " "))


if __name__ == "__main__":
    main()
