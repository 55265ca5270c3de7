"""The log-mel cache of a dataset: mel power of every clip (and of every clip in synthetic rooms), computed in
worker processes once and kept as .npy under a key that changes with any setting or file; and YAMNet's AudioSet
scores of every clip, for evaluating a model fused with them."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from soundtag.audio.load import AudioConfig, load_clip
from soundtag.errors import AudioError, DatasetError
from soundtag.features.logmel import FrontendConfig, LogMel
from soundtag.models.fusion import fuse, load_mapping, zero_shot
from soundtag.models.yamnet import Yamnet
from soundtag.training.dataset import Dataset
from soundtag.training.rooms import reverberate, room_impulse

ROOM_SEED = 2_024  # the synthetic rooms of the reverberant cache


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

    With `rooms` > 0: instead, every clip heard in that many synthetic rooms (`training.rooms`; a room of its own
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


class AudioSetScores:
    """YAMNet's AudioSet probabilities of every clip of a dataset (cached as .npy beside the mel power), mapped
    onto the dataset's classes and fused with a CNN's scores for evaluation (`soundtag.models.yamnet`)."""

    def __init__(self, dataset: Dataset, audio: AudioConfig, cache_dir: str | Path | None, weight: float):
        self.dataset, self.audio, self.weight = dataset, audio, weight
        self.yamnet = Yamnet.load(threads=torch.get_num_threads())
        self.mapping = load_mapping(dataset.classes, self.yamnet.classes)
        cache = Path(cache_dir or ".") / f"audioset-{cache_key(dataset, audio, FrontendConfig(audio.sample_rate))}.npy"
        if cache.exists():
            self.probs = np.load(cache)
        else:
            self.probs = np.concatenate([self._score(range(i, min(i + 64, len(dataset.paths))))
                                         for i in tqdm(range(0, len(dataset.paths), 64), desc="AudioSet scores",
                                                       unit="64 clips")])
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, self.probs)

    def _score(self, idx: Iterable[int], partners: Iterable[int] | None = None, db: Iterable[float] = ()) -> np.ndarray:
        """AudioSet probabilities `(clips, 521)` of clips `idx`, each mixed with its partner at `db` (whole-clip RMS,
        as `soundtag.training.thresholds` mixes) when partners are given."""
        waves = [load_clip(self.dataset.paths[i], self.audio) for i in idx]
        if partners is not None:
            waves = [w + _at_level(load_clip(self.dataset.paths[j], self.audio), w, d)
                     for w, j, d in zip(waves, partners, db)]
        return self.yamnet.windows(np.stack(waves), self.audio.sample_rate)[0]

    def fuse(self, idx: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """A CNN's scores `(len(idx), classes)` of clips `idx`, fused with AudioSet's."""
        return fuse(probs, zero_shot(self.probs[idx], self.mapping), self.weight)

    def fuse_held_out(self, idx: np.ndarray, scores: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """The threshold's held-out scores `(2 * len(idx), classes)` (clips alone, then mixed with `pairs` =
        partner positions in `idx` and levels in dB), fused with AudioSet's scores of the same clips and mixtures;
        the mixtures are mixed as waveforms here, as mel power for the CNN."""
        partners, db = pairs
        mixed = np.concatenate([self._score(idx[i:i + 64], idx[partners[i:i + 64]], db[i:i + 64])
                                for i in range(0, len(idx), 64)])
        audioset = zero_shot(np.concatenate([self.probs[idx], mixed]), self.mapping)
        return fuse(scores, audioset, self.weight)


def _at_level(wave: np.ndarray, reference: np.ndarray, db: float) -> np.ndarray:
    """`wave` scaled to `db` relative to `reference`'s RMS."""
    gain = np.sqrt(np.mean(np.square(reference, dtype=np.float64)) / max(np.mean(np.square(wave, dtype=np.float64)),
                                                                         1e-20))
    return (wave * gain * 10 ** (db / 20)).astype(np.float32)
