"""Catalog: tag a library of audio into SQLite, resumably; export it; search it by tag or by sound.

Each batch of files is committed in one transaction as soon as it is tagged, so an interrupted run (even kill -9)
keeps everything committed before it, and a re-run skips files whose size and modification time are unchanged.
A file that cannot be read is recorded with its reason and the run goes on.
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
import os
import pickle
import sqlite3
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from soundtag.audio import AudioError, decode, prepare
from soundtag.data import AUDIO_SUFFIXES
from soundtag.infer import Analysis, Classifier, keep_freed_memory
from soundtag.inference_config import InferenceConfig
from soundtag.model import ModelBundle

SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER, mtime_ns INTEGER, duration REAL,
    sample_rate INTEGER, channels INTEGER, status TEXT NOT NULL, error TEXT, tagged_at TEXT,
    peak REAL, rms_dbfs REAL, dc_offset REAL, clipped REAL, ood REAL);
CREATE TABLE IF NOT EXISTS window_tags (
    asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    start_s REAL, end_s REAL, label TEXT, score REAL);
CREATE TABLE IF NOT EXISTS file_tags (
    asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE, label TEXT, score REAL, rank INTEGER);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS windows (
    asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE, start_s REAL, end_s REAL, silent INTEGER,
    ood REAL);
CREATE TABLE IF NOT EXISTS events (
    asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE, label TEXT, start_s REAL, end_s REAL,
    score REAL);
CREATE TABLE IF NOT EXISTS embeddings (
    asset_id INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE, vector BLOB);
CREATE INDEX IF NOT EXISTS window_tags_label ON window_tags(label, score);
CREATE INDEX IF NOT EXISTS file_tags_label ON file_tags(label, score);
CREATE INDEX IF NOT EXISTS events_label ON events(label, score);
"""


class CatalogError(ValueError):
    """A search or export the catalog cannot answer as asked; the message says why and what would work."""


def connect(db: str | Path) -> sqlite3.Connection:
    """Open (or create) a catalog; WAL keeps committed batches safe if the process dies."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    have = {row[1] for row in conn.execute("PRAGMA table_info(assets)")}
    for column in [*STATS, "ood"]:
        if column not in have:  # a catalog written before the level checks: its files get NULL until re-tagged
            conn.execute(f"ALTER TABLE assets ADD COLUMN {column} REAL")
    return conn


def open_catalog(db: str | Path) -> sqlite3.Connection:
    """Open a catalog that must exist already (for reading)."""
    if not Path(db).is_file():
        raise FileNotFoundError(f"{db}: no such catalog; create it with `soundtag tag ROOT --db {db}`")
    return connect(db)


def discover(roots: Iterable[str | Path]) -> list[Path]:
    """Audio files under folders, audio files named directly, and paths listed in .txt/.lst files (one a line)."""
    found = []
    for root in map(Path, roots):
        if root.is_dir():
            found += [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES]
        elif root.suffix.lower() in (".txt", ".lst"):
            found += [Path(line.strip()) for line in root.read_text().splitlines() if line.strip()]
        else:
            found.append(root)  # a missing or unreadable file is recorded with its reason
    return sorted({p.resolve() for p in found})


def pending(conn: sqlite3.Connection, paths: list[Path]) -> list[Path]:
    """Paths that are new, whose size or modification time changed since they were catalogued, or that were tagged
    before windows and events were kept (a catalog written by soundtag 0.1: its files have no `windows` rows)."""
    known = {row[0]: (row[1], row[2]) for row in conn.execute(
        "SELECT path, size, mtime_ns FROM assets a WHERE status = 'error' "
        "OR EXISTS (SELECT 1 FROM windows w WHERE w.asset_id = a.id)")}
    return [p for p in paths if known.get(path_text(p)) != _stat(p)]


def path_text(path: Path) -> str:
    """A path as catalog text: file names that are not valid UTF-8 (caf\\xe9.wav from an old Latin-1 share) keep
    their bytes as escapes instead of failing the write."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _stat(path: Path) -> tuple[int | None, int | None]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None, None


ENGINES = ("local", "ray")
STATS = ("peak", "rms_dbfs", "dc_offset", "clipped")
CLIP_LEVEL = 0.999  # |sample| at or above this counts as full scale (int16 full scale reads as 0.99997)


def signal_stats(data: np.ndarray) -> dict:
    """Level checks on the file as stored `(samples, channels)`: peak, RMS in dBFS, the largest channel mean
    (DC offset) and the fraction of samples at full scale (clipping)."""
    flat = data.reshape(-1)
    rms = float(np.sqrt(np.dot(flat, flat) / max(flat.size, 1)))
    return {"peak": float(max(flat.max(), -flat.min())), "rms_dbfs": 20 * np.log10(max(rms, 1e-10)),
            "dc_offset": float(np.abs(data.mean(0, dtype=np.float64)).max()),
            "clipped": float(np.count_nonzero(np.abs(flat) >= CLIP_LEVEL) / max(flat.size, 1))}


def _decode_job(job: tuple[Path, int]) -> tuple[Path, np.ndarray | None, dict]:
    """Decode and resample one file, and measure its levels; never raises for a bad file. Its size and time are
    taken before decoding: a file replaced while it is decoded then looks changed to the next run, not done."""
    path, rate = job
    size, mtime = _stat(path)
    try:
        data, sr = decode(path)
        wave = prepare(data, sr, rate, path)
        return path, wave, {"size": size, "mtime_ns": mtime, "sample_rate": sr, "channels": int(data.shape[1]),
                            "error": None, **signal_stats(data)}
    except Exception as err:  # whatever goes wrong with one file is that file's, and the run goes on
        reason = err.reason if isinstance(err, AudioError) else f"cannot be decoded ({type(err).__name__}: {err})"
        return path, None, {"size": size, "mtime_ns": mtime, "sample_rate": None, "channels": None,
                            "error": reason} | dict.fromkeys(STATS)


def tag_library(roots: Iterable[str | Path], db: str | Path, clf: Classifier, workers: int = 2,
                batch_files: int = 64, engine: str = "local", address: str | None = None) -> dict:
    """Tag every new or changed file under `roots` into the catalog `db`; returns counts for this run.

    engine "local": `workers` decoding threads beside batched inference in this process. engine "ray": Ray Data
    runs decoding and inference in an actor pool of `workers` actors (on the cluster at `address`, else a local
    Ray); either way this process writes the catalog, a transaction per batch."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    keep_freed_memory()
    conn = connect(db)
    with conn:  # the taxonomy the tags come from, so that searches can check their labels
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('classes', ?)", (json.dumps(clf.classes),))
    found = discover(roots)
    todo = pending(conn, found)
    counts = {"found": len(found), "skipped": len(found) - len(todo), "tagged": 0, "failed": 0}
    began = time.perf_counter()
    if engine == "local":
        budget = batch_files * round(clf.config.window * clf.sample_rate)  # as much audio as batch_files windows
        batches = (_tag_decoded(clf, batch)
                   for batch in _batches(_decoded(todo, clf.sample_rate, workers), batch_files, budget))
    else:
        batches = _ray_batches(todo, clf, workers, batch_files, address)
    with tqdm(total=len(todo), desc="tagging", unit="file") as bar:
        for results in batches:
            with conn:  # one transaction per batch
                for path, info, result in results:
                    _write(conn, path, info, result)
                    counts["failed" if result is None else "tagged"] += 1
            bar.update(len(results))
    counts["seconds"] = round(time.perf_counter() - began, 2)
    conn.close()
    return counts


Tagged = tuple[Path, dict, Analysis | None]


def _tag_decoded(clf: Classifier, batch: list[tuple[Path, np.ndarray | None, dict]]) -> list[Tagged]:
    """Run the model on a batch of decoded files at once; a file that failed to decode gets None."""
    good = [wave for _, wave, _ in batch if wave is not None]
    analyses = iter(clf.analyze_batch(good, clf.sample_rate) if good else [])
    return [(path, info, next(analyses) if wave is not None else None) for path, wave, info in batch]


class _RayTagger:
    """A Ray Data actor: decodes its batch of paths and tags them with its own copy of the model."""

    def __init__(self, bundle: ModelBundle, config: InferenceConfig, ood_stats: dict):
        torch.set_num_threads(1)  # one actor per CPU
        self.clf = Classifier(bundle, config, ood_stats=ood_stats, device="cpu")  # the actors ask Ray for CPUs only

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[bytes]]:
        decoded = [_decode_job((Path(p), self.clf.sample_rate)) for p in batch["path"]]
        return {"result": [pickle.dumps(r) for r in _tag_decoded(self.clf, decoded)]}


def _ray_batches(paths: list[Path], clf: Classifier, actors: int, batch_files: int,
                 address: str | None) -> Iterator[list[Tagged]]:
    try:
        import ray
    except ImportError:
        raise ImportError("--engine ray needs Ray Data: pip install 'ray[data]'") from None
    if not paths:
        return
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        dataset = ray.data.from_items([{"path": str(p)} for p in paths]).map_batches(
            _RayTagger, batch_size=batch_files, concurrency=actors, num_cpus=1,
            fn_constructor_kwargs={"bundle": clf.bundle, "config": clf.config, "ood_stats": clf.ood_stats})
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            yield [pickle.loads(r) for r in batch["result"]]
    finally:
        if started:
            ray.shutdown()


def _decoded(paths: list[Path], rate: int, workers: int) -> Iterator[tuple[Path, np.ndarray | None, dict]]:
    """Decoded files in order. Decoding and resampling release the GIL, so worker threads run beside inference
    (measured faster than worker processes, which pay for pickling every waveform). Only two files per thread are
    decoded ahead, so hour-long recordings cannot pile up in memory."""
    jobs = iter([(p, rate) for p in paths])
    if workers == 0:
        yield from map(_decode_job, jobs)
        return
    with ThreadPoolExecutor(workers) as pool:
        waiting = deque(pool.submit(_decode_job, job) for job in islice(jobs, 2 * workers))
        while waiting:
            yield waiting.popleft().result()
            for job in islice(jobs, 1):
                waiting.append(pool.submit(_decode_job, job))


def _batches(decoded: Iterable[tuple[Path, np.ndarray | None, dict]], files: int,
             samples: int) -> Iterator[list[tuple[Path, np.ndarray | None, dict]]]:
    """Groups of at most `files` decoded files, closed early once they hold `samples` samples of audio: a batch
    of long recordings stays as small in memory as one of short clips."""
    batch, held = [], 0
    for item in decoded:
        batch.append(item)
        held += 0 if item[1] is None else len(item[1])
        if len(batch) == files or held >= samples:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _write(conn: sqlite3.Connection, path: Path, info: dict, result: Analysis | None) -> None:
    """Replace the file's rows (a changed file loses its old tags through the cascade)."""
    conn.execute("DELETE FROM assets WHERE path = ?", (path_text(path),))
    status = "error" if result is None else "silent" if result.silent else "ok"
    cur = conn.execute(
        "INSERT INTO assets (path, size, mtime_ns, duration, sample_rate, channels, status, error, tagged_at, "
        "peak, rms_dbfs, dc_offset, clipped, ood) VALUES (?, ?, ?, ?, ?, ?, ?, ?, datetime('now'), ?, ?, ?, ?, ?)",
        (path_text(path), info["size"], info["mtime_ns"], result.duration if result else None, info["sample_rate"],
         info["channels"], status, info["error"], *(info[k] for k in STATS), result.ood if result else None))
    if result is None:
        return
    asset = cur.lastrowid
    conn.executemany("INSERT INTO window_tags VALUES (?, ?, ?, ?, ?)",
                     [(asset, w.start, w.end, t["label"], t["score"]) for w in result.windows for t in w.tags])
    conn.executemany("INSERT INTO file_tags VALUES (?, ?, ?, ?)",
                     [(asset, t["label"], t["score"], rank) for rank, t in enumerate(result.tags, 1)])
    conn.executemany("INSERT INTO windows VALUES (?, ?, ?, ?, ?)",
                     [(asset, w.start, w.end, w.silent, None if np.isnan(d) else float(d))
                      for w, d in zip(result.windows, result.window_ood)])
    conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                     [(asset, e["label"], e["start"], e["end"], e["score"]) for e in result.events])
    conn.execute("INSERT INTO embeddings VALUES (?, ?)", (asset, result.embedding.astype(np.float32).tobytes()))


def search(db: str | Path, label: str, min_score: float = 0.5,
           between: tuple[float, float] | None = None) -> list[dict]:
    """Events of `label` whose peak score is at least `min_score` (events exist where a sound reached the model's
    threshold when the file was tagged), optionally only those overlapping [start, end] seconds; best first."""
    if between is not None and not 0 <= between[0] < between[1]:
        raise CatalogError(f"--between {between[0]:g} {between[1]:g}: the start must come before the end (seconds)")
    sql = ("SELECT a.path, e.start_s, e.end_s, e.score FROM events e JOIN assets a ON a.id = e.asset_id "
           "WHERE e.label = ? AND e.score >= ?")
    args: list = [label, min_score]
    if between is not None:
        sql += " AND e.end_s > ? AND e.start_s < ?"
        args += list(between)
    with closing(open_catalog(db)) as conn:
        _check_label(conn, label)
        rows = conn.execute(sql + " ORDER BY e.score DESC, a.path, e.start_s", args).fetchall()
    return [{"path": p, "start": s, "end": e, "score": sc} for p, s, e, sc in rows]


def _check_label(conn: sqlite3.Connection, label: str) -> None:
    """Refuse a label the catalog's model does not know, suggesting the nearest (catalogs from 0.1 are not checked)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'classes'").fetchone()
    classes = json.loads(row[0]) if row else [label]
    if label not in classes:
        near = difflib.get_close_matches(label.lower(), classes, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise CatalogError(f"no sound called {label!r} in this catalog; {hint}Its sounds: {', '.join(classes)}")


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
    rows = "FROM embeddings e JOIN assets a ON a.id = e.asset_id WHERE a.status = 'ok'"
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


EXPORT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}


def export_format(out: str | Path, fmt: str | None) -> str:
    """The format for `out`: `fmt` if given (it must agree with a known extension), else from the extension."""
    by_suffix = EXPORT_FORMATS.get(Path(out).suffix.lower())
    if fmt is None and by_suffix is None:
        raise CatalogError(f"{out}: cannot tell the format from the extension; name it .csv, .jsonl or .parquet, "
                           "or give --format")
    if fmt is not None and by_suffix not in (None, fmt):
        raise CatalogError(f"{out}: the extension says {by_suffix} but --format says {fmt}; make them agree")
    return fmt or by_suffix


def export(db: str | Path, out: str | Path, fmt: str) -> int:
    """Write one row per file (path, status, duration, top tags, events) as csv, jsonl or parquet; returns the row
    count. In CSV, tags read `label:score;...` and events `label@start-end:score;...` (seconds)."""
    with closing(open_catalog(db)) as conn:
        assets = conn.execute("SELECT id, path, status, error, duration, sample_rate, channels FROM assets "
                              "ORDER BY path").fetchall()
        tags: dict[int, list] = {}
        query = "SELECT asset_id, label, score FROM file_tags ORDER BY asset_id, rank"
        for asset, label, score in conn.execute(query):
            tags.setdefault(asset, []).append({"label": label, "score": score})
        events: dict[int, list] = {}
        query = "SELECT asset_id, label, start_s, end_s, score FROM events ORDER BY asset_id, start_s, score DESC"
        for asset, label, start, end, score in conn.execute(query):
            events.setdefault(asset, []).append({"label": label, "start": start, "end": end, "score": score})
    rows = [{"path": p, "status": st, "error": err, "duration": d, "sample_rate": sr, "channels": ch,
             "tags": tags.get(i, []), "events": events.get(i, [])} for i, p, st, err, d, sr, ch in assets]
    out = Path(out)
    if fmt == "jsonl":
        out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        with out.open("w", newline="") as f:
            writer = csv.DictWriter(f, list(rows[0]) if rows else ["path"])
            writer.writeheader()
            writer.writerows({**r, "tags": ";".join(f"{t['label']}:{t['score']:.4f}" for t in r["tags"]),
                              "events": ";".join(f"{e['label']}@{e['start']:.2f}-{e['end']:.2f}:{e['score']:.4f}"
                                                 for e in r["events"])} for r in rows)
    elif fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError("parquet export needs pyarrow: pip install pyarrow") from None
        pq.write_table(pa.Table.from_pylist(rows), out)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose csv, jsonl or parquet")
    return len(rows)
