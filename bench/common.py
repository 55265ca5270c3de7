"""Shared helpers for the benchmarks: repeated timing, medians, a printed table and a JSON record."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from soundtag.audio import load_clip
from soundtag.data import Dataset, load_dataset
from soundtag.infer import Classifier

RESULTS = Path(__file__).resolve().parent.parent / "results" / "bench"


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall seconds of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times


def report(name: str, rows: list[dict], notes: str) -> Path:
    """Print `rows` as a table and write them, with the machine and notes, to results/bench/NAME.json."""
    keys = list(rows[0])
    print(" | ".join(f"{k:>14}" for k in keys))
    for row in rows:
        print(" | ".join(f"{v:>14.3f}" if isinstance(v, float) else f"{v!s:>14}" for v in row.values()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"benchmark": name, "notes": notes, "rows": rows, "machine": f"{platform.machine()}, "
              f"{os.cpu_count()} cores", "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {path}")
    return path


def median(values: list[float]) -> float:
    return statistics.median(values)


def load_waves(data: str | Path) -> tuple[Dataset, np.ndarray]:
    """The dataset and all its clips as model-ready waves `(clips, samples)` at 32 kHz."""
    dataset = load_dataset(data)
    return dataset, np.stack([load_clip(p) for p in tqdm(dataset.paths, desc="reading clips", unit="clip")])


def held_out_classifiers(cv: str | Path, folds: np.ndarray, only: list[int] | None = None, **kwargs: object
                         ) -> Iterator[tuple[int, Classifier, np.ndarray]]:
    """For each trained fold k of the cross-validation run `cv` (those in `only`, when given): k, its model as a
    Classifier, and the mask of its held-out clips (the only ones it may score)."""
    found = {int(w.parent.name.removeprefix("fold")): w.parent for w in Path(cv).glob("fold*/model.safetensors")}
    missing = sorted(set(only or []) - set(found))
    if not found or missing:
        raise SystemExit(f"{cv}: no fold models (fold*/model.safetensors) for folds {missing or 'any'}")
    for k in sorted(only or found):
        yield k, Classifier.load(found[k], **kwargs), folds == k
