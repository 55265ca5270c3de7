"""Time the ESC-50 feature cache build (decode, resample, log-mel for 2,000 clips) from cold, several times.

    python bench/cache_build.py [--data data/ESC-50] [--repeats 3]
"""

from __future__ import annotations

import argparse

from common import median, report, timed

from soundtag.audio.load import AudioConfig
from soundtag.features.logmel import FrontendConfig
from soundtag.training.dataset import load_dataset
from soundtag.training.feature_cache import _compute_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    rows = []
    for workers in (1, 2):
        times = timed(lambda w=workers: _compute_features(dataset.paths, AudioConfig(), FrontendConfig(), w),
                      args.repeats)
        rows.append({"workers": workers, "clips": len(dataset), "median_s": median(times),
                     "min_s": min(times), "clips_per_s": len(dataset) / median(times)})
    report("cache_build", rows, f"Cold build of the log-mel cache for {len(dataset)} ESC-50 WAVs (44.1 kHz -> "
           "32 kHz soxr HQ, 64 mels); no cache read or write; median of "
           f"{args.repeats} runs; spawn start-up of worker processes included.")


if __name__ == "__main__":
    main()
