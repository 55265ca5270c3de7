"""Tagging a library into the catalog: find the audio files under folders (or in lists), decode them in threads
beside batched inference (or in Ray Data actors), and write each batch in one transaction. A file that cannot be
read is recorded with its reason and the run goes on."""

from __future__ import annotations

import json
import logging
import os
import pickle
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

from soundtag.audio.decode import AUDIO_SUFFIXES, decode, decode_blocks, decoded_bytes
from soundtag.audio.levels import LevelMeter
from soundtag.audio.load import prepare, prepare_blocks
from soundtag.errors import AudioError, ConfigError
from soundtag.inference.classifier import STREAM_ABOVE, Analysis, Classifier
from soundtag.library.catalog import STATS, connect, file_stamp, pending, sole_writer, use_model, write_asset
from soundtag.models.cnn import ModelBundle
from soundtag.models.inference_config import InferenceConfig

log = logging.getLogger("soundtag")
ENGINES = ("local", "ray")
STREAMED = "streamed"  # in place of a decoded wave: a long file, decoded as it is tagged


def discover(roots: Iterable[str | Path]) -> list[Path]:
    """Audio files under folders, audio files named directly, and paths listed in .txt/.lst files (one a line; names
    that are not UTF-8 keep their bytes). Paths are kept as found, links not resolved, so a link is catalogued under
    its own name. Folders that cannot be read and links back into walked folders are reported on the log; a missing
    or unreadable file is recorded in the catalog with its reason."""
    found = []
    for root in map(Path, roots):
        if root.is_dir():
            found += _walk(root)
        elif root.suffix.lower() in (".txt", ".lst"):
            text = root.read_bytes().decode("utf-8", "surrogateescape")
            found += [Path(line.strip()) for line in text.splitlines() if line.strip()]
        else:
            found.append(root)
    return sorted({Path(os.path.abspath(p)) for p in found})


def _walk(root: Path) -> list[Path]:
    """Audio files under `root`, following links to folders but walking each real folder once (no loops)."""
    files, walked = [], set()

    def unreadable(err: OSError) -> None:
        log.warning("%s: cannot read this folder (%s); its files are not catalogued", err.filename, err.strerror)

    for folder, folders, names in os.walk(root, followlinks=True, onerror=unreadable):
        real = os.path.realpath(folder)
        if real in walked:
            log.warning("%s: a link to %s, which is walked already; skipped", folder, real)
            folders[:] = []
            continue
        walked.add(real)
        files += [Path(folder, name) for name in names if Path(name).suffix.lower() in AUDIO_SUFFIXES]
    return files


def _decode_job(job: tuple[Path, int]) -> tuple[Path, np.ndarray | str | None, dict]:
    """Decode and resample one file, and measure its levels; never raises for a bad file. A file that would decode
    to more than STREAM_ABOVE bytes is left to be decoded as it is tagged (STREAMED, see `_tag_streamed`). Its size
    and time are taken before decoding: a file replaced while it is decoded then looks changed to the next run, not
    done."""
    path, rate = job
    size, mtime = file_stamp(path)
    info = {"size": size, "mtime_ns": mtime, "error": None}
    if decoded_bytes(path, rate) > STREAM_ABOVE:
        return path, STREAMED, info
    try:
        data, sr = decode(path)
        return path, prepare(data, sr, rate, path), info | LevelMeter().add(data, sr).result()
    except Exception as err:  # whatever goes wrong with one file is that file's, and the run goes on
        return path, None, info | _failure(err)


def _failure(err: Exception) -> dict:
    reason = err.reason if isinstance(err, AudioError) else f"cannot be decoded ({type(err).__name__}: {err})"
    return {"sample_rate": None, "channels": None, "error": reason} | dict.fromkeys(STATS)


def tag_library(roots: Iterable[str | Path], db: str | Path, clf: Classifier, workers: int = 2,
                batch_files: int = 64, engine: str = "local", address: str | None = None,
                keep_old: bool = False) -> dict:
    """Tag every new or changed file under `roots` into the catalog `db`, and every file another model or other
    settings tagged (unless `keep_old`: then those keep their rows, which reads leave out); returns counts for this
    run ("retagged": files re-tagged only for that). One run writes a catalog at a time (a second is refused with
    CatalogError).

    engine "local": `workers` decoding threads beside batched inference in this process. engine "ray": Ray Data
    runs decoding and inference in an actor pool of `workers` actors (on the cluster at `address`, else a local
    Ray); either way this process writes the catalog, a transaction per batch."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    with sole_writer(db), closing(connect(db)) as conn:
        with conn:  # the taxonomy the tags come from, so that searches can check their labels
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('classes', ?)", (json.dumps(clf.classes),))
        use_model(conn, clf.model_key, clf.identity)
        found = discover(roots)
        todo, retagged = pending(conn, found, clf.model_key, keep_old)
        counts = {"found": len(found), "skipped": len(found) - len(todo), "tagged": 0, "failed": 0,
                  "retagged": retagged}
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
                        write_asset(conn, path, info, result, clf.model_key)
                        counts["failed" if result is None else "tagged"] += 1
                bar.update(len(results))
        counts["seconds"] = round(time.perf_counter() - began, 2)
    return counts


Tagged = tuple[Path, dict, Analysis | None]


def _tag_decoded(clf: Classifier, batch: list[tuple[Path, np.ndarray | str | None, dict]]) -> list[Tagged]:
    """Run the model on a batch of decoded files at once, and on each long one by itself; a file that failed to
    decode gets None."""
    good = [wave for _, wave, _ in batch if isinstance(wave, np.ndarray)]
    analyses = iter(clf.analyze_batch(good, clf.sample_rate) if good else [])
    return [_tag_streamed(clf, path, info) if wave is STREAMED else
            (path, info, next(analyses) if wave is not None else None) for path, wave, info in batch]


def _tag_streamed(clf: Classifier, path: Path, info: dict) -> Tagged:
    """Decode, measure and tag a long file a block at a time: its memory is a block and a batch of windows."""
    meter = LevelMeter()
    try:
        analysis = clf.analyze_stream(prepare_blocks(meter.tap(decode_blocks(path)), clf.sample_rate, path))
        return path, info | meter.result(), analysis
    except Exception as err:  # as in _decode_job: the file's failure, not the run's
        return path, info | _failure(err), None


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
        held += len(item[1]) if isinstance(item[1], np.ndarray) else 0
        if len(batch) == files or held >= samples:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch
