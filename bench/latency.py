"""Inference speed of the shipped model: one 5-s clip end to end, and batches of 64, for each backend and thread count.

    python bench/latency.py [--data data/ESC-50] [--model src/soundtag/models/esc50]

End to end = decode a 44.1 kHz WAV, resample to 32 kHz, log-mel, CNN, top-5. Every (backend, threads) pair runs in a
fresh process, so thread pools and caches of one never disturb another.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import median, report, timed


def measure(backend: str, threads: int, model: str | None, clips: list[str], precision: str) -> dict:
    """Runs inside the worker process."""
    import torch

    torch.set_num_threads(threads)
    from soundtag.audio.load import load_clip
    from soundtag.inference.classifier import Classifier

    clf = Classifier.load(model, backend=backend, precision=precision)
    for path in clips[:20]:
        clf.predict(path)  # warm-up: allocator, oneDNN/ORT kernels, file cache
    single = [timed(lambda p=p: clf.predict(p), 1)[0] for p in clips * 2]
    batch = clips[:64]
    end_to_end = timed(lambda: clf.predict_batch(batch), 5)
    windows = np.stack([load_clip(p, clf.bundle.audio) for p in batch])
    model_only = timed(lambda: clf.probabilities(windows), 5)  # batches of 64
    return {"backend": backend, "precision": precision, "threads": threads,
            "p50_ms": 1000 * float(np.percentile(single, 50)), "p95_ms": 1000 * float(np.percentile(single, 95)),
            "batch64_clips_s": len(batch) / median(end_to_end),
            "model_only_clips_s": len(batch) / median(model_only),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--worker", nargs=3, metavar=("BACKEND", "PRECISION", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    clips = [str(p) for p in sorted(Path(args.data, "audio").glob("*.wav"))[:100]]
    if args.worker:
        print(json.dumps(measure(args.worker[0], int(args.worker[2]), args.model, clips, args.worker[1])))
        return
    rows = []
    for backend, precision in (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32")):
        for threads in (1, 2):
            cmd = [sys.executable, __file__, "--data", args.data, "--worker", backend, precision, str(threads)]
            cmd += ["--model", args.model] if args.model else []
            began = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"{backend} {precision} x{threads}: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    report("latency", rows, f"{len(clips)} ESC-50 WAVs (44.1 kHz, 5 s). p50/p95: `Classifier.predict(path)` on each "
           "clip twice after 20 warm-up calls (decode, soxr resample, log-mel, CNN, top-5). batch64: "
           "`predict_batch` on 64 paths, end to end, median of 5. model_only: frontend + CNN on 64 decoded "
           "windows, median of 5. peak_rss_mb: the worker's maximum resident memory.")


if __name__ == "__main__":
    main()
