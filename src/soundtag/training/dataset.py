"""Datasets (ESC-50, a folder per class, or a CSV) and the official ESC-50 archive, fetched and verified. No torch:
the log-mel cache of a dataset is `soundtag.training.feature_cache`."""

from __future__ import annotations

import csv
import hashlib
import shutil
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from soundtag.audio.decode import AUDIO_SUFFIXES
from soundtag.errors import DatasetError

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
ESC50_META_MD5 = "54a0d0055a10bb7df84ad340a148722e"
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")


@dataclass
class Dataset:
    """Clips with integer labels into `classes` and a cross-validation fold (1-based) for each."""

    paths: list[Path]
    labels: np.ndarray
    folds: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def split(self, test_fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of (train, test) clips when `test_fold` is held out."""
        if test_fold not in set(self.folds.tolist()):
            raise DatasetError(f"fold {test_fold} does not exist; folds are {sorted(set(self.folds.tolist()))}")
        return np.flatnonzero(self.folds != test_fold), np.flatnonzero(self.folds == test_fold)


def load_dataset(path: str | Path) -> Dataset:
    """ESC-50 (a folder with meta/esc50.csv), a CSV of `path,label[,fold]`, or a folder per class."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: not found (for ESC-50, run `soundtag download --root {path}`)")
    if path.is_file():
        return load_csv(path)
    if (path / "meta" / "esc50.csv").exists():
        return load_esc50(path)
    return load_folder(path)


def load_esc50(root: str | Path) -> Dataset:
    """Read and validate the official layout: 2,000 clips, 50 classes x 40, 5 folds x 400."""
    root = Path(root)
    meta = root / "meta" / "esc50.csv"
    if not meta.exists():
        raise DatasetError(f"{meta}: missing (run `soundtag download --root {root}`)")
    with meta.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing_cols = [c for c in ESC50_COLUMNS if rows and c not in rows[0]]
    if not rows or missing_cols:
        raise DatasetError(f"{meta}: not the ESC-50 metadata (missing columns {missing_cols or list(ESC50_COLUMNS)})")
    names = {int(r["target"]): r["category"] for r in rows}
    if len(names) != 50 or sorted(names) != list(range(50)):
        raise DatasetError(f"{meta}: expected targets 0-49, found {len(names)} distinct targets")
    problems = _esc50_problems(rows, names)
    absent = [r["filename"] for r in rows if not (root / "audio" / r["filename"]).is_file()]
    if absent:
        problems.append(f"{len(absent)} audio files missing from {root / 'audio'}, e.g. {', '.join(absent[:5])}")
    if problems:
        raise DatasetError(f"{root}: not a complete ESC-50 copy: " + "; ".join(problems))
    return Dataset(paths=[root / "audio" / r["filename"] for r in rows],
                   labels=np.array([int(r["target"]) for r in rows]),
                   folds=np.array([int(r["fold"]) for r in rows]),
                   classes=[names[i] for i in range(50)])


def _esc50_problems(rows: list[dict], names: dict[int, str]) -> list[str]:
    """Count checks on the metadata rows; empty when they match the official release."""
    problems = []
    if len(rows) != 2000:
        problems.append(f"{len(rows)} rows in meta/esc50.csv, expected 2000")
    inconsistent = sorted({r["category"] for r in rows if names[int(r["target"])] != r["category"]})
    if inconsistent:
        problems.append(f"categories with two targets: {', '.join(inconsistent)}")
    per_class = Counter(int(r["target"]) for r in rows)
    uneven = {names[t]: n for t, n in sorted(per_class.items()) if n != 40}
    if uneven:
        problems.append(f"classes without 40 clips: {uneven}")
    per_fold = Counter(int(r["fold"]) for r in rows)
    if dict(sorted(per_fold.items())) != {f: 400 for f in range(1, 6)}:
        problems.append(f"clips per fold {dict(sorted(per_fold.items()))}, expected 400 in each of folds 1-5")
    return problems


def load_folder(root: str | Path, n_folds: int = 5) -> Dataset:
    """A folder per class (`root/dog/*.wav`, ...); folds are assigned round-robin within each class."""
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    pairs = [(p, c) for c in classes for p in sorted((root / c).rglob("*")) if p.suffix.lower() in AUDIO_SUFFIXES]
    if not pairs:
        raise DatasetError(f"{root}: no audio found; expected one sub-folder per class holding audio files "
                           f"({', '.join(sorted(AUDIO_SUFFIXES))})")
    return _make_dataset([p for p, _ in pairs], [c for _, c in pairs], None, n_folds)


def load_csv(path: str | Path, n_folds: int = 5) -> Dataset:
    """A CSV with a header `path,label[,fold]`; relative paths are taken from the CSV's folder."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's "CSV UTF-8" starts with a BOM
            rows = list(csv.DictReader(f))
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text; save the CSV as UTF-8") from None
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DatasetError(f"{path}: expected a header with columns path,label[,fold]")
    files = [(path.parent / r["path"]) for r in rows]
    absent = [str(p) for p in files if not p.is_file()]
    if absent:
        raise DatasetError(f"{path}: {len(absent)} listed files do not exist, e.g. {', '.join(absent[:5])}")
    folds = None
    if "fold" in rows[0]:
        try:
            folds = [int(r["fold"]) for r in rows]
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: the fold column must hold whole numbers") from None
    return _make_dataset(files, [r["label"] for r in rows], folds, n_folds)


def _make_dataset(paths: list[Path], names: list[str], folds: list[int] | None, n_folds: int) -> Dataset:
    unlabelled = [str(p) for p, n in zip(paths, names) if not (n or "").strip()]
    if unlabelled:
        raise DatasetError(f"{len(unlabelled)} clips have no label, e.g. {', '.join(unlabelled[:3])}")
    classes = sorted(set(names))
    if len(classes) < 2:
        raise DatasetError(f"only one class ({classes[0]}): a classifier needs at least two to tell apart")
    labels = np.array([classes.index(n) for n in names])
    if folds is None:
        rank = np.zeros(len(labels), dtype=int)  # position of each clip within its class
        for c in range(len(classes)):
            members = np.flatnonzero(labels == c)
            rank[members] = np.arange(len(members))
        folds = rank % n_folds + 1
    return Dataset(paths=list(paths), labels=labels, folds=np.asarray(folds), classes=classes)


def download_esc50(root: str | Path = "data/ESC-50", url: str = ESC50_URL, meta_md5: str = ESC50_META_MD5) -> Path:
    """Fetch the official archive, unpack audio/ and meta/ into `root`, and verify them; idempotent."""
    root = Path(root)
    if (root / "meta" / "esc50.csv").exists():
        try:
            load_esc50(root)
            return root
        except DatasetError:
            pass  # incomplete: download again
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "ESC-50.zip"
    partial = archive.with_suffix(".zip.part")
    try:
        _fetch(url, partial)
        partial.replace(archive)
        _unpack_esc50(archive, root)
    except (OSError, zipfile.BadZipFile) as err:
        raise DatasetError(f"cannot download ESC-50 from {url}: {err}. If this machine is offline, fetch the "
                           f"archive elsewhere and unzip its audio/ and meta/ folders into {root}") from None
    finally:
        partial.unlink(missing_ok=True)
        archive.unlink(missing_ok=True)
    digest = hashlib.md5((root / "meta" / "esc50.csv").read_bytes()).hexdigest()
    if digest != meta_md5:
        raise DatasetError(f"{root / 'meta' / 'esc50.csv'}: checksum {digest} is not the official release's")
    load_esc50(root)
    return root


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="ESC-50") as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def _unpack_esc50(archive: Path, root: Path) -> None:
    """Extract `*/audio/*.wav` and `*/meta/esc50.csv` flat into root; zipfile checks every CRC."""
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.namelist() if ("/audio/" in m and m.endswith(".wav")) or m.endswith("meta/esc50.csv")]
        if not any(m.endswith("meta/esc50.csv") for m in members):
            raise zipfile.BadZipFile("the archive holds no meta/esc50.csv")
        for member in tqdm(members, desc="unpacking", unit="file"):
            sub = "meta" if member.endswith(".csv") else "audio"
            target = root / sub / Path(member).name
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out)
