"""What the faster inference paths cost in accuracy: the five cross-validation fold models scored on their held-out
folds with torch fp32, torch bf16 and onnxruntime (the exported graph).

    python bench/precision.py [--data data/ESC-50] [--cv results/esc50]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import report

from soundtag.audio.load import load_clip
from soundtag.inference.classifier import Classifier
from soundtag.models.export import export_onnx
from soundtag.training.dataset import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--cv", default="results/esc50", help="cross-validation run with fold models")
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    waves = np.stack([load_clip(p) for p in dataset.paths])
    labels, folds = np.asarray(dataset.labels), np.asarray(dataset.folds)
    probs = {name: np.zeros((len(waves), len(dataset.classes)), np.float32) for name in ("fp32", "bf16", "onnx")}
    with tempfile.TemporaryDirectory() as tmp:
        for k in sorted(set(folds.tolist())):
            test = folds == k
            fp32 = Classifier.load(Path(args.cv) / f"fold{k}")
            bf16 = Classifier(fp32.bundle, precision="bf16")
            onnx = Classifier(fp32.bundle, backend="onnx", onnx_path=export_onnx(fp32.bundle, Path(tmp) / f"{k}.onnx"))
            for name, clf in (("fp32", fp32), ("bf16", bf16), ("onnx", onnx)):
                probs[name][test] = clf.probabilities(waves[test])
    rows = []
    for name, p in probs.items():
        rows.append({"inference": name, "accuracy": float(np.mean(p.argmax(1) == labels)),
                     "top1_same_as_fp32": float(np.mean(p.argmax(1) == probs["fp32"].argmax(1))),
                     "max_prob_diff": float(np.abs(p - probs["fp32"]).max())})
    report("precision", rows, f"The 5 fold models of {args.cv}, each on its held-out fold (2,000 clips in all), "
           "single 5-s window per clip, no silence gate; accuracy over all 2,000 out-of-fold predictions.")


if __name__ == "__main__":
    main()
