"""Catalog tagging throughput: `soundtag tag` over the 2,000 ESC-50 files (5 s each) into a fresh SQLite catalog.

    python bench/tag_throughput.py [--data data/ESC-50] [--model models/esc50] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import median, report

from soundtag.catalog import tag_library
from soundtag.infer import Classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for precision, workers in (("fp32", 2), ("bf16", 0), ("bf16", 2)):
        clf = Classifier.load(args.model, precision=precision)
        seconds, files = [], 0
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                counts = tag_library([Path(args.data) / "audio"], Path(tmp) / "catalog.db", clf, workers=workers)
            seconds.append(counts["seconds"])
            files = counts["tagged"] + counts["failed"]
        rows.append({"precision": precision, "decode_threads": workers, "files": files, "median_s": median(seconds),
                     "files_per_s": files / median(seconds)})
    report("tag_throughput", rows, "ESC-50 WAVs (44.1 kHz, 5 s) tagged into a new SQLite catalog: decode and "
           "resample in worker threads (0: in turn with inference), frontend + CNN in batches of 64 files, one "
           f"transaction per batch, embeddings stored; median of {args.repeats} runs; the main process uses torch's "
           "default threads (2).")


if __name__ == "__main__":
    main()
