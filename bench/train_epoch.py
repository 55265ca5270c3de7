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

from soundtag.training.config import make_config
from soundtag.training.dataset import load_dataset
from soundtag.training.feature_cache import build_features
from soundtag.training.train import train_fold

RECIPES = {  # name: (preset, overrides)
    "default": ("default", []),
    "0.3": ("default", ["model.pooling=mean", "augment.snr_db_min=-5"]),  # the recipe before 0.4, side by side
    "clean": ("clean", []),
}


def epoch_seconds(recipe: str, amp: bool, power: torch.Tensor, rooms: torch.Tensor, labels: torch.Tensor,
                  idx: np.ndarray, epochs: int) -> list[float]:
    preset, overrides = RECIPES[recipe]
    cfg = make_config(preset, overrides=[*overrides, f"train.epochs={epochs}", f"train.amp={amp}"])
    with tempfile.TemporaryDirectory() as tmp:
        train_fold(cfg, power, labels, idx, np.array([], dtype=int), Path(tmp), f"{recipe}, amp={amp}", rooms)
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
    cache = Path(args.data) / ".soundtag-cache"
    power = torch.from_numpy(build_features(dataset, cfg.audio, cfg.frontend, cache))
    rooms = torch.from_numpy(build_features(dataset, cfg.audio, cfg.frontend, cache, rooms=cfg.augment.rooms))
    labels = torch.from_numpy(dataset.labels)
    train_idx, _ = dataset.split(1)
    rows = []
    for recipe, amp in (("default", True), ("0.3", True), ("clean", True), ("default", False)):
        times = epoch_seconds(recipe, amp, power, rooms, labels, train_idx, args.epochs)
        rows.append({"recipe": recipe, "precision": "bf16 autocast" if amp else "fp32", "clips": len(train_idx),
                     "median_epoch_s": median(times), "clips_per_s": len(train_idx) / median(times)})
    report("train_epoch", rows, f"Default model, batch 64, channels_last, {torch.get_num_threads()} threads; median "
           f"over epochs 2-{args.epochs}. 'default' is the recipe with mixtures and recording conditions made per "
           "batch; '0.3' is the recipe before 0.4 (mean pooling, training noise down to -5 dB SNR); 'clean' turns "
           "mixtures and conditions off (masks and shifts only), which shows what they cost.")


if __name__ == "__main__":
    main()
