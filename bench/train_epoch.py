"""Time training epochs on ESC-50 folds 2-5 (1,600 clips, the size of one cross-validation split).

    python bench/train_epoch.py [--data data/ESC-50] [--epochs 4]

The first epoch is dropped (allocator and oneDNN warm-up); the rest give the median.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import median, report

from soundtag.config import make_config
from soundtag.data import build_features, load_dataset
from soundtag.train import train_fold


def epoch_seconds(amp: bool, feats: torch.Tensor, labels: torch.Tensor, idx: np.ndarray, epochs: int) -> list[float]:
    cfg = make_config(overrides=[f"train.epochs={epochs}", f"train.amp={amp}"])
    with tempfile.TemporaryDirectory() as tmp:
        train_fold(cfg, feats, labels, idx, np.array([], dtype=int), Path(tmp), f"amp={amp}")
        with (Path(tmp) / "log.csv").open() as f:
            return [float(r["seconds"]) for r in csv.DictReader(f)][1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    cfg = make_config()
    cfg = replace(cfg, model=replace(cfg.model, n_classes=len(dataset.classes)))
    feats = torch.from_numpy(build_features(dataset, cfg.audio, cfg.frontend, Path(args.data) / ".soundtag-cache"))
    labels = torch.from_numpy(dataset.labels)
    train_idx, _ = dataset.split(1)
    rows = []
    for amp in (True, False):
        times = epoch_seconds(amp, feats, labels, train_idx, args.epochs)
        rows.append({"precision": "bf16 autocast" if amp else "fp32", "clips": len(train_idx),
                     "median_epoch_s": median(times), "clips_per_s": len(train_idx) / median(times)})
    rows.append({"precision": "speed-up", "clips": len(train_idx),
                 "median_epoch_s": rows[1]["median_epoch_s"] / rows[0]["median_epoch_s"], "clips_per_s": 0.0})
    report("train_epoch", rows, f"Default model and recipe (mixup, SpecAugment), batch 64, channels_last, "
           f"{torch.get_num_threads()} threads; median over epochs 2-{args.epochs}; 'speed-up' row = fp32 / bf16 "
           "epoch time.")


if __name__ == "__main__":
    main()
