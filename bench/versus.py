"""This checkout against an earlier commit, side by side in one run on the same machine: `soundtag tag` of the 2,000
ESC-50 WAVs (local engine, bf16, 2 workers) and one 5-s WAV end to end (`Classifier.predict`, torch fp32, 1
thread, median over 300 fold-1 files). Runs alternate between the two versions, 3 rounds; medians of the rounds.
For machines whose speed drifts from day to day, where only a side-by-side ratio says what a change cost.

    python bench/versus.py --base 89da0ba [--data data/ESC-50]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from common import median, report

REPO = Path(__file__).resolve().parent.parent
PROBE = r'''
import glob, sys, tempfile, time
from pathlib import Path
import numpy as np, torch
from soundtag.inference.classifier import Classifier
data, model = sys.argv[1], sys.argv[2]
try:
    from soundtag.library.ingest import tag_library
    from soundtag.interfaces.memory import keep_freed_memory
    keep_freed_memory()
except ImportError:  # before the catalog was split
    from soundtag.library.catalog import tag_library
clf = Classifier.load(model, precision="bf16")
with tempfile.TemporaryDirectory() as tmp:
    began = time.perf_counter()
    tag_library([Path(data) / "audio"], Path(tmp) / "c.db", clf, workers=2)
    tag_s = time.perf_counter() - began
torch.set_num_threads(1)
clf = Classifier.load(model)
paths = sorted(glob.glob(str(Path(data) / "audio" / "1-*.wav")))[:300]
for p in paths[:20]:
    clf.predict(p)
times = []
for p in paths:
    began = time.perf_counter()
    clf.predict(p)
    times.append(time.perf_counter() - began)
print(tag_s, 1000 * float(np.median(times)))
'''


def measure(src: Path, model: Path, data: str) -> tuple[float, float]:
    env = {"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"}  # that version's package, not the installed one
    out = subprocess.run([sys.executable, "-c", PROBE, data, str(model)], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[-2]), float(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--data", default=str(REPO / "data" / "ESC-50"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(base), args.base], check=True)
        try:
            versions = {"this checkout": REPO, args.base: base}
            models = {name: next(p for p in (root / "src" / "soundtag" / "models" / "esc50", root / "models" / "esc50")
                                 if p.is_dir()) for name, root in versions.items()}
            results = {name: [] for name in versions}
            for _ in range(3):
                for name, root in versions.items():
                    results[name].append(measure(root / "src", models[name], str(Path(args.data).resolve())))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=True)
    rows = [{"version": name, "tag_2000_wavs_s": median([t for t, _ in r]),
             "files_per_s": 2000 / median([t for t, _ in r]), "predict_one_wav_p50_ms": median([ms for _, ms in r])}
            for name, r in results.items()]
    report("versus", rows, f"This checkout against {args.base}, alternating, 3 rounds, medians: `tag_library` of the "
           "2,000 ESC-50 WAVs (local, bf16, 2 workers) and `Classifier.predict` of one 5-s WAV (torch fp32, 1 thread, "
           "median over 300 fold-1 files), each version with its own shipped model.")


if __name__ == "__main__":
    main()
