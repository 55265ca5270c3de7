"""Shared helpers for the benchmarks: repeated timing, medians, a printed table and a JSON record."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

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
