"""Catalog tagging throughput: `soundtag tag` over the 2,000 ESC-50 files (5 s each) into a fresh SQLite catalog.

    python bench/tag_throughput.py [--data data/ESC-50] [--model src/soundtag/models/esc50] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import median, report

from soundtag.inference.classifier import Classifier
from soundtag.interfaces.memory import keep_freed_memory
from soundtag.library.ingest import tag_library


def main() -> None:
    keep_freed_memory()  # as `soundtag tag` does
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for engine, precision, workers in (("local", "fp32", 2), ("local", "bf16", 0), ("local", "bf16", 2),
                                       ("ray", "fp32", 2), ("ray", "bf16", 2)):
        clf = Classifier.load(args.model, precision=precision)
        seconds, files = [], 0
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                counts = tag_library([Path(args.data) / "audio"], Path(tmp) / "catalog.db", clf, workers=workers,
                                     engine=engine)
            seconds.append(counts["seconds"])
            files = counts["tagged"] + counts["failed"]
        rows.append({"engine": engine, "precision": precision, "workers": workers, "files": files,
                     "median_s": median(seconds), "files_per_s": files / median(seconds)})
    report("tag_throughput", rows, "ESC-50 WAVs (44.1 kHz, 5 s) tagged into a new SQLite catalog, embeddings and "
           f"levels stored, one transaction per batch of 64 files; median of {args.repeats} runs. local: decoding and "
           "resampling in `workers` threads (0: in turn with inference), frontend + CNN in this process with torch's "
           "default 2 threads. ray: a local Ray started by the run (its start-up counted), `workers` actors of one "
           "CPU and one torch thread each, decoding and tagging their batches.")


if __name__ == "__main__":
    main()
