"""The catalog: one SQLite file of tagged assets (files with their levels and errors), per-window tags, file tags,
windows, events and embeddings; and what reads it: search by sound and time, and export as CSV, JSON lines or
Parquet. `soundtag.library.ingest` fills it and `soundtag.library.index` searches it by similarity. No torch here.

Each batch of files is committed in one transaction as soon as it is tagged, so an interrupted run (even kill -9)
keeps everything committed before it, and a re-run skips files whose size and modification time are unchanged.

Every file's rows record the model that wrote them (`assets.model`, a key into `models`: a digest of the weights,
labels and the settings that shape tags, see `Classifier.identity`). The catalog answers from one model's rows, the
one of its last `tag` run (`meta.model`): a run with another model or other settings re-tags the files, so tags,
events and embeddings from two networks are never mixed.
"""

from __future__ import annotations

import csv
import difflib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from soundtag.errors import CatalogError

if TYPE_CHECKING:
    from soundtag.inference.classifier import Analysis

SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, size INTEGER, mtime_ns INTEGER, duration REAL,
    sample_rate INTEGER, channels INTEGER, status TEXT NOT NULL, error TEXT, tagged_at TEXT,
    peak REAL, rms_dbfs REAL, dc_offset REAL, clipped REAL, ood REAL, model TEXT);
CREATE TABLE IF NOT EXISTS models (key TEXT PRIMARY KEY, identity TEXT NOT NULL, first_used TEXT);
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
STATS = ("peak", "rms_dbfs", "dc_offset", "clipped")
CURRENT = "a.model IS (SELECT value FROM meta WHERE key = 'model')"  # rows of the model the catalog answers from


def connect(db: str | Path) -> sqlite3.Connection:
    """Open (or create) a catalog; WAL keeps committed batches safe if the process dies. A file that is not SQLite,
    or an SQLite database of something else, is refused (and left untouched)."""
    conn = sqlite3.connect(db)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as err:
        conn.close()
        raise CatalogError(f"{db}: not a soundtag catalog ({err})") from None
    if tables and "assets" not in tables:
        conn.close()
        raise CatalogError(f"{db}: an SQLite database, but not a soundtag catalog (it has no assets table)")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    have = {row[1] for row in conn.execute("PRAGMA table_info(assets)")}
    for column, kind in [*((c, "REAL") for c in (*STATS, "ood")), ("model", "TEXT")]:
        if column not in have:  # a catalog of an earlier soundtag: its files get NULL until re-tagged (each ALTER is
            conn.execute(f"ALTER TABLE assets ADD COLUMN {column} {kind}")  # its own transaction: kill -9 safe)
    return conn


def use_model(conn: sqlite3.Connection, key: str, identity: dict) -> None:
    """Make `key` the model the catalog answers from, recording what it is."""
    with conn:
        conn.execute("INSERT OR IGNORE INTO models VALUES (?, ?, datetime('now'))", (key, json.dumps(identity)))
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('model', ?)", (key,))


def current_model(conn: sqlite3.Connection) -> dict | None:
    """The identity of the model the catalog answers from; None for a catalog written before soundtag 0.5."""
    row = conn.execute("SELECT m.identity FROM meta JOIN models m ON m.key = meta.value "
                       "WHERE meta.key = 'model'").fetchone()
    return json.loads(row[0]) if row else None


def check_same_model(db: str | Path, identity: dict) -> None:
    """Refuse to compare a query made with the model `identity` against a catalog tagged with another network
    (catalogs before soundtag 0.5 do not say which, and pass)."""
    with closing(open_catalog(db)) as conn:
        tagged = current_model(conn)
    if tagged is not None and tagged["weights"] != identity["weights"]:
        raise CatalogError(f"{db} was tagged with another model (weights {tagged['weights']}, this one "
                           f"{identity['weights']}): its embeddings are not comparable; pass that model with --model, "
                           "or tag the catalog again with this one")


def answered_by(db: str | Path) -> str:
    """One line saying which model's rows a read answers from, and how many files it leaves out."""
    with closing(open_catalog(db)) as conn:
        model, left_out = current_model(conn), other_models(conn)
    said = "rows of a catalog written before soundtag 0.5 (its model is not recorded)" if model is None else (
        f"rows of model {model['weights']} (AudioSet weight {model['audioset_weight']}, threshold "
        f"{model['threshold']}, taxonomy {model['taxonomy']}, soundtag {model['soundtag']})")
    return said + (f"; {left_out} files tagged by another model are left out (tag them again to include them)"
                   if left_out else "")


def other_models(conn: sqlite3.Connection) -> int:
    """How many files hold rows of a model other than the current one (kept by `tag --keep-old`, or not yet
    re-tagged); every read leaves them out."""
    return conn.execute(f"SELECT COUNT(*) FROM assets a WHERE NOT ({CURRENT})").fetchone()[0]


def open_catalog(db: str | Path) -> sqlite3.Connection:
    """Open a catalog that must exist already, for reading; one on a read-only disk (or one this user may not
    write) is opened read-only, as it is."""
    if not Path(db).is_file():
        raise FileNotFoundError(f"{db}: no such catalog; create it with `soundtag tag ROOT --db {db}`")
    try:
        return connect(db)
    except sqlite3.OperationalError as err:
        if "readonly" not in str(err) and "unable to open" not in str(err):
            raise
    conn = sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'assets'").fetchone() is None:
        conn.close()
        raise CatalogError(f"{db}: not a soundtag catalog (it has no assets table)")
    return conn


@contextmanager
def sole_writer(db: str | Path) -> Iterator[None]:
    """Hold the catalog's writer lock (`DB.lock`, released when the process ends however it ends): a second `tag`
    run on the same catalog is refused instead of redoing the first one's work beside it."""
    with Path(f"{db}.lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CatalogError(f"{db}: another `soundtag tag` is writing this catalog; let it finish, or use "
                               "another --db") from None
        yield


@contextmanager
def write_atomically(out: str | Path) -> Iterator[Path]:
    """A temporary path beside `out` to write to, renamed to `out` only when the writing succeeded: a full disk or an
    error leaves no half-written file behind."""
    out = Path(out)
    part = out.with_name(f".{out.name}.part")
    try:
        yield part
        part.replace(out)
    finally:
        part.unlink(missing_ok=True)


def pending(conn: sqlite3.Connection, paths: list[Path], model: str,
            keep_old: bool = False) -> tuple[list[Path], int]:
    """Paths to tag: new, changed in size or modification time since they were catalogued, tagged before windows
    and events were kept (soundtag 0.1: no `windows` rows), or tagged by another model or other settings than
    `model` (unless `keep_old`). Also returns how many are there only for that last reason."""
    known = {row[0]: ((row[1], row[2]), row[3]) for row in conn.execute(
        "SELECT path, size, mtime_ns, model FROM assets a WHERE status = 'error' "
        "OR EXISTS (SELECT 1 FROM windows w WHERE w.asset_id = a.id)")}
    todo, retag = [], 0
    for p in paths:
        stamp, by = known.get(path_text(p), (None, None))
        if stamp != file_stamp(p):
            todo.append(p)
        elif by != model and not keep_old:
            todo.append(p)
            retag += 1
    return todo, retag


def path_text(path: Path) -> str:
    """A path as catalog text: file names that are not valid UTF-8 (caf\\xe9.wav from an old Latin-1 share) keep
    their bytes as escapes instead of failing the write."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def file_stamp(path: Path) -> tuple[int | None, int | None]:
    """Size and modification time (ns): what tells a changed file from a catalogued one."""
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None, None


def write_asset(conn: sqlite3.Connection, path: Path, info: dict, result: Analysis | None, model: str) -> None:
    """Replace the file's rows with those of `model` (a changed file loses its old tags through the cascade)."""
    conn.execute("DELETE FROM assets WHERE path = ?", (path_text(path),))
    status = "error" if result is None else "silent" if result.silent else "ok"
    cur = conn.execute(
        "INSERT INTO assets (path, size, mtime_ns, duration, sample_rate, channels, status, error, tagged_at, "
        "peak, rms_dbfs, dc_offset, clipped, ood, model) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, datetime('now'), ?, ?, ?, ?, ?, ?)",
        (path_text(path), info["size"], info["mtime_ns"], result.duration if result else None, info["sample_rate"],
         info["channels"], status, info["error"], *(info[k] for k in STATS), result.ood if result else None, model))
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


def search(db: str | Path, label: str, min_score: float = 0.0,
           between: tuple[float, float] | None = None) -> list[dict]:
    """Events of `label` whose peak score is at least `min_score` (events exist where a sound reached the model's
    threshold when the file was tagged), optionally only those overlapping [start, end] seconds; best first."""
    if between is not None and not 0 <= between[0] < between[1]:
        raise CatalogError(f"--between {between[0]:g} {between[1]:g}: the start must come before the end (seconds)")
    sql = ("SELECT a.path, e.start_s, e.end_s, e.score FROM events e JOIN assets a ON a.id = e.asset_id "
           f"WHERE e.label = ? AND e.score >= ? AND {CURRENT}")
    args: list = [label, min_score]
    if between is not None:
        sql += " AND e.end_s > ? AND e.start_s < ?"
        args += list(between)
    with closing(open_catalog(db)) as conn:
        _check_label(conn, label)
        rows = conn.execute(sql + " ORDER BY e.score DESC, a.path, e.start_s", args).fetchall()
    return [{"path": p, "start": s, "end": e, "score": sc} for p, s, e, sc in rows]


def lowest_score(db: str | Path) -> float | None:
    """The lowest peak score of the current model's events (each reached the model's threshold when tagged); None
    when the catalog holds none."""
    with closing(open_catalog(db)) as conn:
        return conn.execute(f"SELECT MIN(e.score) FROM events e JOIN assets a ON a.id = e.asset_id WHERE {CURRENT}"
                            ).fetchone()[0]


def _check_label(conn: sqlite3.Connection, label: str) -> None:
    """Refuse a label the catalog's model does not know, suggesting the nearest (catalogs from 0.1 are not checked)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'classes'").fetchone()
    classes = json.loads(row[0]) if row else [label]
    if label not in classes:
        near = difflib.get_close_matches(label.lower(), classes, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(near)}? " if near else ""
        raise CatalogError(f"no sound called {label!r} in this catalog; {hint}Its sounds: {', '.join(classes)}")


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
        assets = conn.execute("SELECT id, path, status, error, duration, sample_rate, channels FROM assets a "
                              f"WHERE {CURRENT} ORDER BY path").fetchall()
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
    if fmt not in EXPORT_FORMATS.values():
        raise CatalogError(f"unknown format {fmt!r}; choose csv, jsonl or parquet")
    with write_atomically(out) as part:
        _write_rows(rows, part, fmt)
    return len(rows)


def _write_rows(rows: list[dict], out: Path, fmt: str) -> None:
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
