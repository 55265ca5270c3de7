"""Shared helpers for the benchmarks: repeated timing, medians, a printed table and a JSON record."""

from __future__ import annotations

import argparse
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

from soundtag.audio.load import load_clip
from soundtag.inference.classifier import Classifier
from soundtag.training.dataset import Dataset, load_dataset

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


def worst_classes(classes: list[str], members: np.ndarray, missed: np.ndarray, count: int = 3) -> str:
    """The `count` classes with the highest share of `missed` `(items,)` among the items they are `members` of
    (class indices, `(items,)`), e.g. "wind 71 %, rain 65 %, helicopter 60 %"."""
    share = np.array([missed[members == c].mean() if (members == c).any() else 0.0 for c in range(len(classes))])
    return ", ".join(f"{classes[c]} {100 * share[c]:.0f} %" for c in np.argsort(-share)[:count])


def recipe_parser(doc: str) -> argparse.ArgumentParser:
    """Arguments of the benchmarks that score a cross-validation run's fold models on their held-out folds."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--cv", default="results/esc50", help="cross-validation run with fold models")
    parser.add_argument("--name", required=True, help="the recipe's name in the table")
    parser.add_argument("--folds", type=lambda t: [int(k) for k in t.split(",")], help="only these folds, e.g. 1,2")
    return parser


def report_recipe(name: str, recipe: str, rows: list[dict], notes: str) -> None:
    """`report`, keeping the rows of other recipes already in results/bench/NAME.json: recipes side by side. A recipe
    run again keeps its place among them (the README's columns follow this order); a new one comes last."""
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    order = list(dict.fromkeys([r["recipe"] for r in old] + [recipe]))
    report(name, [r for each in order for r in (rows if each == recipe else [r for r in old if r["recipe"] == each])],
           notes)
