"""Check QA's "unfamiliar audio" flag, and calibrate the shipped model's: the Mahalanobis distance of a clip's
embedding from the training clips' embeddings, on ESC-50 clips a model has not seen and on synthetic sounds that
are in no ESC-50 class (noise, tones, sweeps, square waves, chords).

    python bench/qa_ood.py [--data data/ESC-50] [--cv results/esc50] [--save-to models/esc50]

Each cross-validation fold model is fitted on its training folds and scores its held-out fold; the threshold is
the 95th percentile of those out-of-fold distances, so about 5% of new in-distribution files get flagged; then
`soundtag.qa.calibrate` fits the shipped model on all 2,000 clips and saves its statistics with that threshold
(what `soundtag calibrate` does).
"""

from __future__ import annotations

import argparse

import numpy as np
from common import report

from soundtag.qa import calibrate, out_of_fold

RATE = 32_000


def synthetic(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """`n` five-second clips of each kind of out-of-distribution sound."""
    rng = np.random.default_rng(seed)
    t = np.arange(5 * RATE) / RATE

    def pink() -> np.ndarray:
        spectrum = np.fft.rfft(rng.standard_normal(len(t)))
        return np.fft.irfft(spectrum / np.sqrt(np.arange(1, len(spectrum) + 1)), len(t))

    kinds = {
        "white_noise": lambda: rng.standard_normal(len(t)),
        "pink_noise": pink,
        "tone": lambda: np.sin(2 * np.pi * rng.uniform(100, 8000) * t),
        "sweep": lambda: np.sin(2 * np.pi * rng.uniform(50, 500) * t * (1 + rng.uniform(2, 20) * t / 5)),
        "square": lambda: np.sign(np.sin(2 * np.pi * rng.uniform(50, 1000) * t)),
        "chord": lambda: sum(np.sin(2 * np.pi * f * k * t) / k for f in rng.uniform(100, 600, 3) for k in (1, 2, 3)),
    }
    return {name: np.stack([0.3 * x / np.abs(x).max() for x in (make() for _ in range(n))]).astype(np.float32)
            for name, make in kinds.items()}


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """Probability that an outside clip scores higher than an inside one (ties count half)."""
    diff = outside[:, None] - inside[None, :]
    return float(np.mean(diff > 0) + 0.5 * np.mean(diff == 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--cv", default="results/esc50", help="cross-validation run with fold models")
    parser.add_argument("--save-to", default="models/esc50", help="the model (trained on all clips) to calibrate")
    parser.add_argument("--per-kind", type=int, default=40, help="synthetic clips of each kind")
    args = parser.parse_args()
    kinds = synthetic(args.per_kind)
    held_out, ood = [], {name: [] for name in kinds}
    for clf, distances in out_of_fold(args.data, args.cv):
        held_out.append(distances)
        for name, clips in kinds.items():
            ood[name].append(clf.ood(np.stack([a.embedding for a in clf.analyze_batch(list(clips), RATE, top_k=1)])))
    inside = np.concatenate(held_out)
    threshold = calibrate(args.data, args.save_to, inside)
    rows = []
    for audio, d in [("ESC-50 out-of-fold", inside)] + [(n, np.concatenate(v)) for n, v in ood.items()]:
        rows.append({"audio": audio, "scores": len(d), "p50": float(np.median(d)), "p95": float(np.percentile(d, 95)),
                     "flagged": float(np.mean(d > threshold)), "auroc": auroc(inside, d)})
    report("qa_ood", rows, f"Mahalanobis distance of the embedding from the training clips' mean (shared covariance, "
           f"ridge 1e-3 of the mean variance), the largest over a file's windows, from the 5 fold models of {args.cv}, "
           f"each fitted on its 4 training folds. Threshold = 95th percentile of out-of-fold ESC-50 distances = "
           f"{threshold:.2f}, saved with the shipped model. flagged = fraction above it; auroc = how well the distance "
           f"separates that audio from out-of-fold ESC-50 (0.5 = not at all). Synthetic: {args.per_kind} clips per "
           "kind, 5 s, 32 kHz, peak 0.3, each scored by all five models.")


if __name__ == "__main__":
    main()
