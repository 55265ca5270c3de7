"""Datasets (ESC-50, a folder per class, or a CSV), the official archive download, and the log-mel cache."""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import shutil
import urllib.request
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from soundtag.audio import AudioConfig, AudioError, load_clip
from soundtag.features import FrontendConfig, LogMel
from soundtag.rooms import reverberate, room_impulse

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
ESC50_META_MD5 = "54a0d0055a10bb7df84ad340a148722e"
ESC50_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
ROOM_SEED = 2_024  # the synthetic rooms of the reverberant cache
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".aiff", ".aif"}


class DatasetError(ValueError):
    """A dataset folder or file list that is missing, incomplete or inconsistent; the message says what."""


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


def cache_key(dataset: Dataset, audio: AudioConfig, frontend: FrontendConfig, rooms: int = 0) -> str:
    """Hash of the configs and every file's name, size and mtime: any change gives a new key."""
    h = hashlib.sha256(json.dumps(["mel power", asdict(audio), asdict(frontend), rooms, ROOM_SEED],
                                  sort_keys=True).encode())
    for p in dataset.paths:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def build_features(dataset: Dataset, audio: AudioConfig, frontend: FrontendConfig,
                   cache_dir: str | Path | None = None, workers: int | None = None, rooms: int = 0) -> np.ndarray:
    """Mel power `(clips, n_mels, frames)` for the whole dataset (before the log, so that training can mix clips
    and apply recording conditions where sounds add; `LogMel.compress` gives the log-mels), cached as .npy.

    With `rooms` > 0: instead, every clip heard in that many synthetic rooms (`soundtag.rooms`; a room of its own
    for each clip and copy, seeded by both), `(rooms, clips, n_mels, frames)`: reverberation is a convolution of
    the waveform, which mel power cannot stand in for, so training draws it from here."""
    if audio.sample_rate != frontend.sample_rate:
        raise ValueError(f"audio rate {audio.sample_rate} Hz differs from frontend rate {frontend.sample_rate} Hz")
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"features-{cache_key(dataset, audio, frontend, rooms)}.npy"
        if cache.exists():
            return np.load(cache)
    feats = _compute_features(dataset.paths, audio, frontend, workers or min(4, os.cpu_count() or 1), rooms)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npy")  # torchrun ranks may build at once
        np.save(tmp, feats)
        tmp.replace(cache)
    return feats


def _compute_features(paths: list[Path], audio: AudioConfig, frontend: FrontendConfig, workers: int,
                      rooms: int) -> np.ndarray:
    jobs = [(paths[i:i + 32], i, audio, frontend, rooms) for i in range(0, len(paths), 32)]
    results = []
    desc = f"mel power in {rooms} rooms" if rooms else "mel power"
    with tqdm(total=len(paths), desc=desc, unit="clip") as bar:
        if workers > 1:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=torch.set_num_threads, initargs=(1,)) as pool:
                for result in pool.map(_chunk_features, jobs):
                    results.append(result)
                    bar.update(len(result[0]))
        else:
            for job in jobs:
                results.append(_chunk_features(job))
                bar.update(len(job[0]))
    errors = [e for _, errs in results for e in errs]
    if errors:
        raise DatasetError(f"{len(errors)} clips could not be read:\n  " + "\n  ".join(errors[:20]))
    feats = np.concatenate([f for f, _ in results])  # (clips, rooms, n_mels, frames) with rooms
    return np.ascontiguousarray(feats.swapaxes(0, 1)) if rooms else feats


def _chunk_features(job: tuple[list[Path], int, AudioConfig, FrontendConfig, int]) -> tuple[np.ndarray, list[str]]:
    """Worker: decode a chunk of files (the first is clip `first` of the dataset) and run the frontend on them as
    one batch, or on each heard in `rooms` rooms."""
    paths, first, audio, frontend, rooms = job
    waves, errors = [], []
    for p in paths:
        try:
            waves.append(load_clip(p, audio))
        except AudioError as err:
            errors.append(str(err))
            waves.append(np.zeros(audio.num_samples, np.float32))
    if rooms:
        waves = [reverberate(w, room_impulse(np.random.default_rng([ROOM_SEED, first + i, r]), audio.sample_rate))
                 for i, w in enumerate(waves) for r in range(rooms)]
    with torch.inference_mode():
        feats = LogMel(frontend).power_mel(torch.from_numpy(np.stack(waves))).numpy()
    return (feats.reshape(len(paths), rooms, *feats.shape[1:]) if rooms else feats), errors
