"""Search by sound: the catalogued files nearest a query embedding, through an HNSW index (faiss) kept beside the
catalog and rebuilt when the catalog changes."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import numpy as np

from soundtag.library.catalog import CURRENT, open_catalog


def similar(db: str | Path, query: np.ndarray, k: int = 10, exclude: str | Path | None = None) -> list[dict]:
    """The `k` tagged files whose embeddings are nearest `query` by cosine similarity, best first (approximate:
    an HNSW index that finds 99.8% of the exact neighbours at 100k files, `bench/ann.py`)."""
    index = embedding_index(db)
    if index.ntotal == 0:
        return []
    import faiss

    faiss.downcast_index(index.index).hnsw.efSearch = max(64, k + 1)
    scores, ids = index.search(_unit(query[None]), k + 1)  # one spare, in case the query file itself comes back
    with closing(open_catalog(db)) as conn:
        paths = dict(conn.execute(f"SELECT id, path FROM assets WHERE id IN ({','.join('?' * ids.shape[1])})",
                                  [int(i) for i in ids[0]]).fetchall())
    skip = str(Path(exclude).resolve()) if exclude is not None else None
    hits = [{"path": paths[i], "score": float(sc)} for i, sc in zip(ids[0], scores[0]) if i in paths]
    return [h for h in hits if h["path"] != skip][:k]


def embedding_index(db: str | Path):  # -> faiss.IndexIDMap2
    """An HNSW index over the embeddings of tagged (non-silent) files, keyed by asset id. It is saved beside the
    catalog (`DB.faiss`), rebuilt when the catalog has changed since, and kept in memory for the next query (the
    app's searches read it once, not per query)."""
    try:
        import faiss
    except ImportError:
        raise ImportError("similarity search needs faiss: pip install faiss-cpu") from None
    rows = f"FROM embeddings e JOIN assets a ON a.id = e.asset_id WHERE a.status = 'ok' AND {CURRENT}"
    path, stamp_path = Path(f"{db}.faiss"), Path(f"{db}.faiss.json")
    with closing(open_catalog(db)) as conn:
        stamp = list(conn.execute(f"SELECT COUNT(*), TOTAL(a.id), MAX(a.tagged_at) {rows}").fetchone())
        key = str(Path(db).resolve())
        if key in _INDEXES and _INDEXES[key][0] == stamp:
            return _INDEXES[key][1]
        if path.exists() and stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp:
            _INDEXES[key] = stamp, faiss.read_index(str(path))
            return _INDEXES[key][1]
        found = conn.execute(f"SELECT a.id, e.vector {rows}").fetchall()
    dim = len(found[0][1]) // 4 if found else 1
    index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT))
    faiss.downcast_index(index.index).hnsw.efConstruction = 80
    if found:
        vectors = _unit(np.stack([np.frombuffer(v, np.float32) for _, v in found]))
        index.add_with_ids(vectors, np.array([i for i, _ in found], np.int64))
    faiss.write_index(index, f"{path}.tmp")  # replaced in one step: a reader never sees half an index
    Path(f"{path}.tmp").replace(path)
    stamp_path.write_text(json.dumps(stamp))
    _INDEXES[key] = stamp, index
    return index


_INDEXES: dict[str, tuple[list, object]] = {}  # catalog path -> (its stamp, its index), see embedding_index


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
