"""Nearest-neighbour search for `soundtag similar`: faiss-cpu, usearch and sqlite-vec against exact numpy search on
a catalog-sized set of embeddings.

    python bench/ann.py [--data data/ESC-50] [--vectors 100000] [--queries 500]

Vectors: the shipped model's embeddings of the 2,000 ESC-50 clips, expanded to --vectors by mixing two clips'
embeddings (weight 0.5-1) and adding Gaussian noise (0.3 of each dimension's spread), so the set keeps the real
clusters; queries are drawn the same way and are not in the index. Cosine similarity (vectors L2-normalised).
recall@10 = share of the exact 10 nearest that the index returns; query_ms = one query at a time, median.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import median, report

from soundtag.audio.load import load_clip
from soundtag.inference.classifier import Classifier
from soundtag.training.dataset import load_dataset

K = 10


def expand(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(0.5, 1.0, (n, 1))
    mixed = a * real[rng.integers(len(real), size=n)] + (1 - a) * real[rng.integers(len(real), size=n)]
    mixed += 0.3 * real.std(0) * rng.standard_normal(mixed.shape)
    return (mixed / np.linalg.norm(mixed, axis=1, keepdims=True)).astype(np.float32)


def exact(base: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ base.T), axis=1)[:, :K]


def timed_queries(search, queries: np.ndarray) -> tuple[np.ndarray, float]:
    """Neighbour ids `(queries, K)` and the median milliseconds of one query."""
    ids, times = [], []
    for q in queries:
        began = time.perf_counter()
        ids.append(search(q))
        times.append(time.perf_counter() - began)
    return np.stack(ids), 1000 * median(times)


def faiss_hnsw(base: np.ndarray):
    import faiss

    index = faiss.IndexHNSWFlat(base.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction, index.hnsw.efSearch = 80, 64
    index.add(base)
    return lambda q: index.search(q[None], K)[1][0]


def faiss_flat(base: np.ndarray):
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return lambda q: index.search(q[None], K)[1][0]


def usearch_hnsw(base: np.ndarray, dtype: str):
    from usearch.index import Index

    index = Index(ndim=base.shape[1], metric="cos", dtype=dtype, connectivity=16, expansion_add=128,
                  expansion_search=64)
    index.add(np.arange(len(base)), base)
    return lambda q: index.search(q, K).keys


def sqlite_vec(base: np.ndarray):
    """In SQLite itself, through apsw: Python's own sqlite3 is often built without extension loading (this one is)."""
    try:
        import apsw
        import sqlite_vec as sv
    except ImportError as err:
        raise RuntimeError(f"needs apsw and sqlite-vec ({err.name} missing)") from None
    conn = apsw.Connection(":memory:")
    conn.enable_load_extension(True)
    conn.load_extension(sv.loadable_path())
    conn.execute(f"CREATE VIRTUAL TABLE v USING vec0(embedding float[{base.shape[1]}] distance_metric=cosine)")
    with conn:
        conn.executemany("INSERT INTO v(rowid, embedding) VALUES (?, ?)", enumerate(map(np.ndarray.tobytes, base)))
    sql = f"SELECT rowid FROM v WHERE embedding MATCH ? AND k = {K} ORDER BY distance"
    return lambda q: np.array([r[0] for r in conn.execute(sql, (q.tobytes(),))])


def numpy_exact(base: np.ndarray):
    return lambda q: np.argpartition(-(base @ q), K)[:K]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/ESC-50")
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    clf = Classifier.load()
    clips = np.stack([load_clip(p) for p in load_dataset(args.data).paths])
    real = np.stack([a.embedding for a in clf.analyze_batch(list(clips), clf.sample_rate, top_k=1)])
    rng = np.random.default_rng(0)
    base, queries = expand(real, args.vectors, rng), expand(real, args.queries, rng)
    truth = exact(base, queries)
    builders = {"numpy exact": numpy_exact, "faiss flat (exact)": faiss_flat, "faiss HNSW32": faiss_hnsw,
                "usearch HNSW16 f32": lambda b: usearch_hnsw(b, "f32"),
                "usearch HNSW16 i8": lambda b: usearch_hnsw(b, "i8"), "sqlite-vec (exact)": sqlite_vec}
    rows = []
    for name, build in builders.items():
        began = time.perf_counter()
        try:
            search = build(base)
        except RuntimeError as err:
            rows.append({"method": name, "build_s": None, "query_ms": None, "recall_at_10": None, "note": str(err)})
            continue
        build_s = time.perf_counter() - began
        found, query_ms = timed_queries(search, queries)
        recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])
        rows.append({"method": name, "build_s": build_s, "query_ms": query_ms, "recall_at_10": float(recall),
                     "note": ""})
        print(rows[-1], flush=True)
    notes = __doc__.split("Vectors: ")[1].replace("\n", " ").strip()
    report("ann", rows, f"{args.vectors} vectors, 256 dims, {args.queries} queries, k={K}. Vectors: {notes}")


if __name__ == "__main__":
    main()
