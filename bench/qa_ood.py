"""How often `soundtag qa` flags audio as unfamiliar or unsure: ESC-50 clips a model has not seen, clean and
degraded as in bench/robustness.py, the shipped examples, and synthetic sounds that are in no ESC-50 class (noise,
tones, sweeps, square waves, chords).

    python bench/qa_ood.py [--data data/ESC-50] [--cv results/esc50] [--quantile 99]
                           [--save-to src/soundtag/models/esc50]

Each cross-validation fold model gets unfamiliar-audio statistics fitted on its training folds and scores its
held-out fold (`soundtag.calibrate.out_of_fold`); the threshold is the --quantile of those out-of-fold distances. A
clip is unfamiliar when any of its windows lies beyond the threshold, and unsure when no window scores 0.3 on any sound
(QA's defaults). Synthetic clips and the examples are scored by every fold model. With --save-to, the model there
(trained on all clips) is calibrated with that threshold, as `soundtag calibrate` does; by default nothing is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from common import report
from robustness import conditions

from soundtag.audio.load import load_clip
from soundtag.library.qa import QAConfig
from soundtag.training.calibrate import calibrate, out_of_fold
from soundtag.training.dataset import load_dataset

RATE = 32_000
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


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
    parser.add_argument("--quantile", type=float, default=99.0, help="of out-of-fold distances (default: 99)")
    parser.add_argument("--save-to", help="calibrate the model in this folder (trained on all clips) too")
    parser.add_argument("--per-kind", type=int, default=40, help="synthetic clips of each kind")
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    kinds = synthetic(args.per_kind)
    kinds["shipped examples"] = np.stack([load_clip(sf.read(p, dtype="float32")[0], sample_rate=sf.info(p).samplerate)
                                          for p in sorted(EXAMPLES.glob("*.flac"))])
    unsure_below = QAConfig().unsure_score
    distances: dict[str, list[np.ndarray]] = {}
    best: dict[str, list[np.ndarray]] = {}
    for k, clf, held_out in out_of_fold(args.data, args.cv):
        test = np.flatnonzero(dataset.folds == k)
        degraded = conditions(np.stack([load_clip(dataset.paths[i]) for i in test]), seed=k)
        audio = {f"ESC-50 out-of-fold, {name}": v for name, v in degraded.items()} | {
            name: (list(clips), RATE) for name, clips in kinds.items()}
        for name, (clips, rate) in audio.items():
            results = clf.analyze_batch(clips, rate, top_k=1)
            distances.setdefault(name, []).append(np.array([np.nanmax(r.window_ood, initial=-np.inf)
                                                            for r in results]))
            best.setdefault(name, []).append(np.array([0.0 if r.silent else r.tags[0]["score"] for r in results]))
        distances.setdefault("held-out distances", []).append(held_out)
    inside = np.concatenate(distances.pop("held-out distances"))
    threshold = float(np.percentile(inside, args.quantile))
    if args.save_to:
        calibrate(args.data, args.save_to, inside, args.quantile)
    clean = np.concatenate(distances["ESC-50 out-of-fold, clean"])
    rows = []
    for name, parts in distances.items():
        d, b = np.concatenate(parts), np.concatenate(best[name])
        rows.append({"audio": name, "clips": len(d), "unfamiliar": float(np.mean(d > threshold)),
                     "unsure": float(np.mean(b < unsure_below)), "p50_distance": float(np.median(d)),
                     "auroc_vs_clean": auroc(clean, d)})
    report("qa_ood", rows, f"Fold models of {args.cv}; unfamiliar threshold = {args.quantile:g}th percentile of the "
           f"out-of-fold distances = {threshold:.2f}; unsure = no window scores {unsure_below} on any sound. "
           + " ".join(__doc__.split("\n\n")[2].split()))


if __name__ == "__main__":
    main()
