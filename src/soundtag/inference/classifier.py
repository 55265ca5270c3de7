"""Inference: `Classifier` loads a trained model and tags files or arrays of any length.

Long audio is cut into overlapping windows (default 5 s every 2.5 s); each window gets a score per class with its
start and end time. The file's tags are each class's presence (its best window score) and its events the times
where a class reaches the model's decision threshold (`soundtag.inference.events`). A score is the model's probability
that the sound is in the window, independently for each class (several sounds can score high at once). Near-silent
windows are reported as silent instead of receiving a confident label (the per-clip normalisation would otherwise
amplify hiss into a sound).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from soundtag import __version__
from soundtag.audio.decode import decoded_bytes
from soundtag.audio.load import AudioError, array_blocks, load, load_blocks, prepare_blocks
from soundtag.audio.windows import Windows
from soundtag.errors import ConfigError, ModelError
from soundtag.inference.events import find_events, narrow_events, presence
from soundtag.inference.runners import (
    BATCH,
    Runner,
    audioset_runner,
    fused_runner,
    head_runner,
    onnx_runner,
    torch_runner,
)
from soundtag.models.cnn import ModelBundle, load_model
from soundtag.models.fusion import MAPPING
from soundtag.models.heads import HeadModel, is_head, load_head
from soundtag.models.inference_config import InferenceConfig, override
from soundtag.models.yamnet import ARCHIVE_SHA256, Yamnet
from soundtag.models.yamnet import THRESHOLD as AUDIOSET_THRESHOLD

SILENCE = "silence"
STREAM_ABOVE = 128 << 20  # bytes: files that would decode to more (`decoded_bytes`: samples x channels x 4, from the
# header) are decoded, resampled and scored a block at a time, never held whole
OOD_FILE = "ood.safetensors"  # training-embedding statistics for the unfamiliar-audio score; see fit_ood
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "esc50"  # package data: travels in the wheel


def model_folder(path: str | Path | None = None) -> Path:
    """`path`, else $SOUNDTAG_MODEL, else the shipped ESC-50 model."""
    return Path(path or os.environ.get("SOUNDTAG_MODEL") or DEFAULT_MODEL)


@dataclass(frozen=True)
class WindowTags:
    start: float  # seconds
    end: float
    tags: list[dict]  # [{"label", "score"}], best first; [{"label": "silence", ...}] for a silent window
    silent: bool


@dataclass(frozen=True)
class Analysis:
    """Tags for a whole file (each class's presence over its non-silent windows) and for each window, the file's
    events (`[{"label", "start", "end", "score"}]`, `soundtag.inference.events`), its embedding (mean penultimate vector
    of its non-silent windows; zeros when all are silent), and its unfamiliarity: the largest over its windows of
    the Mahalanobis distance of the window's embedding from the training clips' (Lee et al., 2018); NaN when all
    windows are silent or the model folder has no `ood.safetensors`. `window_ood` holds that distance per window
    (NaN for silent windows)."""

    tags: list[dict]
    windows: list[WindowTags]
    duration: float
    silent: bool
    embedding: np.ndarray
    ood: float
    events: list[dict]
    window_ood: np.ndarray


class Classifier:
    """Turns audio into sound-class tags with a trained soundtag model, applied as its `InferenceConfig` says
    (saved with the model; any field can be overridden by keyword).

    >>> clf = Classifier.load()                       # the shipped ESC-50 model
    >>> clf.predict("dog.wav", top_k=3)               # [{"label": "dog", "score": 0.97}, ...]
    >>> Classifier.load(window=2, hop=1).config       # shorter windows for finer event times
    """

    def __init__(self, bundle: ModelBundle | HeadModel, config: InferenceConfig | None = None,
                 onnx_path: str | Path | None = None, ood_stats: dict[str, np.ndarray] | None = None,
                 device: str | None = None, **overrides: object):
        self.config = override(config or bundle.inference, **overrides)
        self.bundle = bundle
        self.ood_stats = ood_stats or {}
        self.classes = bundle.classes
        self.sample_rate = bundle.audio.sample_rate
        if device is None:
            device = "cuda" if torch.cuda.is_available() and self.config.backend == "torch" else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: this machine's torch sees no CUDA GPU")
        self.device = torch.device(device)
        if isinstance(bundle, HeadModel):
            self.embedding_size = 1024
            self._run = head_runner(bundle.scores, self._yamnet())
        else:
            self.embedding_size = bundle.model.config.channels[-1]
            own_threshold = config is None and overrides.get("threshold") is None  # the model's, not yet replaced
            self._run = self._cnn_runner(bundle, onnx_path, own_threshold)

    def _cnn_runner(self, bundle: ModelBundle, onnx_path: str | Path | None, own_threshold: bool) -> Runner:
        """The CNN on torch or onnxruntime, alone, fused with AudioSet's scores, or beside them as the tags."""
        if self.config.backend == "torch":
            run = torch_runner(bundle, self.config.precision, self.device)
        elif self.device.type != "cpu":
            raise ConfigError("the onnx backend runs on the CPU; use the torch backend for a GPU")
        else:
            run = onnx_runner(bundle, onnx_path)
        if self.config.taxonomy == "audioset":
            yamnet = self._yamnet()
            self.classes = yamnet.classes
            if own_threshold:  # the model's own threshold is for its own scores
                self.config = override(self.config, threshold=AUDIOSET_THRESHOLD)
            return audioset_runner(run, yamnet, self.sample_rate)
        if self.config.audioset_weight > 0:
            return fused_runner(run, self._yamnet(), self.classes, self.config.audioset_weight, self.sample_rate)
        return run

    def _yamnet(self) -> Yamnet:
        return Yamnet.load(threads=torch.get_num_threads())

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None, **overrides: object) -> Classifier:
        """A model folder (model.json + model.safetensors, and model.onnx for the onnx backend; or a few-shot head,
        model.json + head.safetensors, see `soundtag.models.heads`), default $SOUNDTAG_MODEL or the shipped model;
        `overrides` are `InferenceConfig` fields."""
        folder = model_folder(path)
        if is_head(folder):
            return cls(load_head(folder), device=device, **overrides)
        onnx_path = folder / "model.onnx" if (folder / "model.onnx").exists() else None
        return cls(load_model(folder), onnx_path=onnx_path, ood_stats=_ood_stats(folder / OOD_FILE), device=device,
                   **overrides)

    @functools.cached_property
    def identity(self) -> dict:
        """What makes this classifier's tags what they are: a digest of its weights and labels (and of the AudioSet
        model and mapping it fuses with), the settings that shape tags, and the soundtag version (recorded, not
        compared). Catalogs key their rows on `model_key`."""
        digest = hashlib.sha256(json.dumps(self.classes).encode())
        weights = {"weight": self.bundle.weight, "bias": self.bundle.bias} if isinstance(self.bundle, HeadModel) \
            else {k: v.detach().cpu().contiguous().numpy() for k, v in self.bundle.model.state_dict().items()}
        for name, array in sorted(weights.items()):
            digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
        if self.config.audioset_weight > 0 or self.config.taxonomy == "audioset" or isinstance(self.bundle, HeadModel):
            digest.update(ARCHIVE_SHA256.encode() + MAPPING.read_bytes())
        settings = ("window", "hop", "silence_dbfs", "threshold", "aggregate", "audioset_weight", "taxonomy")
        return {"weights": digest.hexdigest()[:16], **{k: getattr(self.config, k) for k in settings},
                "soundtag": __version__}

    @property
    def model_key(self) -> str:
        """A short key of `identity` without the version: equal keys, equal tags."""
        same = {k: v for k, v in self.identity.items() if k != "soundtag"}
        return hashlib.sha256(json.dumps(same, sort_keys=True).encode()).hexdigest()[:16]

    def predict(self, source: str | Path | np.ndarray, sample_rate: int | None = None,
                top_k: int | None = None) -> list[dict]:
        """Top-k `[{"label", "score"}]` for a whole file or array (the shape of Hugging Face's pipeline); for a list
        of inputs, `predict_batch`."""
        return self.analyze(source, sample_rate, top_k).tags

    def predict_batch(self, sources: Iterable[str | Path | np.ndarray], sample_rate: int | None = None,
                      top_k: int | None = None) -> list[list[dict] | AudioError]:
        """`predict` for many inputs in shared batches; a bad input gets its AudioError in its place."""
        return [r if isinstance(r, AudioError) else r.tags for r in self.analyze_batch(sources, sample_rate, top_k)]

    def analyze(self, source: str | Path | np.ndarray, sample_rate: int | None = None,
                top_k: int | None = None) -> Analysis:
        """Per-window tags with times, and the file's tags; audio shorter than a window is zero-padded."""
        (result,) = self.analyze_batch([source], sample_rate, top_k)
        if isinstance(result, AudioError):
            raise result
        return result

    def analyze_batch(self, sources: Iterable[str | Path | np.ndarray], sample_rate: int | None = None,
                      top_k: int | None = None) -> list[Analysis | AudioError]:
        """`analyze` for many inputs: every window of every input goes through the model in shared batches. Files and
        arrays that would take more than STREAM_ABOVE bytes are analysed on their own, a block at a time
        (`analyze_stream`), never converted whole."""
        sources, top_k = list(sources), top_k or self.config.top_k
        large = [self._is_large(s, sample_rate) for s in sources]
        if any(large):
            rest = iter(self.analyze_batch([s for s, x in zip(sources, large) if not x], sample_rate, top_k))
            return [self._stream(s, sample_rate, top_k) if x else next(rest) for s, x in zip(sources, large)]
        files = sum(not isinstance(s, np.ndarray) for s in sources)
        if files > 1:  # decoding and resampling release the GIL: one thread per torch thread
            with ThreadPoolExecutor(torch.get_num_threads()) as pool:
                waves = list(pool.map(lambda s: self._load(s, sample_rate), sources))
        else:
            waves = [self._load(s, sample_rate) for s in sources]
        cut = [self._windows(w) for w in waves if not isinstance(w, AudioError)]
        silent = [levels < self.config.silence_dbfs for _, _, levels in cut]
        probs = [np.zeros((len(q), len(self.classes)), np.float32) for q in silent]
        embeddings = [np.zeros((len(q), self.embedding_size), np.float32) for q in silent]
        heard = [(i, j) for i, quiet in enumerate(silent) for j in np.flatnonzero(~quiet)]
        for start in range(0, len(heard), BATCH):  # only one batch of windows is ever copied out of the audio
            batch = heard[start:start + BATCH]
            batch_probs, batch_embeddings = self._run(np.stack([cut[i][1][j] for i, j in batch]))
            for (i, j), p, e in zip(batch, batch_probs, batch_embeddings):
                probs[i][j], embeddings[i][j] = p, e
        results, parts = [], iter(zip(cut, probs, embeddings, silent))
        for wave in waves:
            if isinstance(wave, AudioError):
                results.append(wave)
                continue
            (starts, _, _), p, e, quiet = next(parts)
            results.append(self._assemble(starts, p, e, quiet, len(wave) / self.sample_rate, top_k))
        return results

    def _is_large(self, source: str | Path | np.ndarray, sample_rate: int | None) -> bool:
        """Whether a file or array would take more than STREAM_ABOVE bytes as float32, at its own rate and channels
        or mono at the model's rate: such inputs are analysed a block at a time, never converted whole."""
        if isinstance(source, (str, Path)):
            return decoded_bytes(source, self.sample_rate) > STREAM_ABOVE
        if isinstance(source, np.ndarray) and source.ndim in (1, 2) and sample_rate:
            return 4 * max(source.size, max(source.shape) * self.sample_rate / sample_rate) > STREAM_ABOVE
        return False

    def _stream(self, source: str | Path | np.ndarray, sample_rate: int | None, top_k: int) -> Analysis | AudioError:
        try:
            if isinstance(source, np.ndarray):
                blocks = prepare_blocks(array_blocks(source, int(sample_rate)), self.sample_rate)
            else:
                blocks = load_blocks(Path(source), self.sample_rate)
            return self.analyze_stream(blocks, top_k)
        except AudioError as err:
            return err
        except (OSError, MemoryError, UnicodeError) as err:
            return AudioError(source if not isinstance(source, np.ndarray) else "array",
                              f"cannot be read ({type(err).__name__}: {err})")

    def _load(self, source: str | Path | np.ndarray, sample_rate: int | None) -> np.ndarray | AudioError:
        try:
            return load(source, sample_rate, self.sample_rate)
        except AudioError as err:
            return err
        except (OSError, MemoryError, UnicodeError) as err:  # one input's failure is that input's: report, go on
            return AudioError(source, f"cannot be read ({type(err).__name__}: {err})")

    def _assemble(self, starts: list[float], probs: np.ndarray, embeddings: np.ndarray, silent: np.ndarray,
                  duration: float, top_k: int) -> Analysis:
        quiet_tags = [{"label": SILENCE, "score": 1.0}]
        ends = np.minimum(np.array(starts) + self.config.window, duration)
        rows = [WindowTags(start, float(end), quiet_tags if quiet else self._top(p, top_k), bool(quiet))
                for start, end, p, quiet in zip(starts, ends, probs, silent)]
        heard = ~silent
        overall = self._top(presence(probs[heard], self.config.aggregate), top_k) if heard.any() else quiet_tags
        events = find_events(np.array(starts), ends, probs, self.config.threshold, self.classes)  # silent rows: 0
        embedding = embeddings[heard].mean(0) if heard.any() else embeddings[0]
        window_ood = np.full(len(starts), np.nan)
        if heard.any() and self.ood_stats:
            window_ood[heard] = self.ood(embeddings[heard])
        ood = float(np.nanmax(window_ood)) if heard.any() and self.ood_stats else float("nan")
        return Analysis(overall, rows, duration, bool(silent.all()), embedding, ood, events, window_ood)

    def ood(self, embeddings: np.ndarray) -> np.ndarray:
        """Mahalanobis distances `(n,)` of penultimate vectors `(n, channels)` from the training clips' mean."""
        if not self.ood_stats:
            raise ValueError(f"this model has no {OOD_FILE}; make one with `soundtag calibrate`")
        centred = embeddings.astype(np.float64) - self.ood_stats["mean"]
        return np.sqrt(np.einsum("ij,jk,ik->i", centred, self.ood_stats["precision"], centred).clip(0))

    def _windows(self, wave: np.ndarray) -> tuple[list[float], list[np.ndarray], np.ndarray]:
        """Window starts (s), the windows (views into `wave`) and their levels (dBFS); see `soundtag.audio.windows`."""
        cut = list(self._cutter().cut([wave]))
        return [o / self.sample_rate for o, _, _ in cut], [w for _, w, _ in cut], np.array([x for _, _, x in cut])

    def _cutter(self) -> Windows:
        return Windows(round(self.config.window * self.sample_rate), round(self.config.hop * self.sample_rate))

    def analyze_stream(self, blocks: Iterable[np.ndarray], top_k: int | None = None) -> Analysis:
        """`analyze` for audio at the model's rate that arrives a block at a time (`soundtag.audio.load_blocks`):
        one batch of windows is held at a time, however long the audio."""
        cutter, starts, silent, probs, embeddings, batch = self._cutter(), [], [], [], [], []

        def run_batch() -> None:
            batch_probs, batch_embeddings = self._run(np.stack([w for _, w in batch]))
            for (k, _), p, e in zip(batch, batch_probs, batch_embeddings):
                probs[k], embeddings[k] = p, e
            batch.clear()

        for offset, window, level in cutter.cut(blocks):
            starts.append(offset / self.sample_rate)
            silent.append(level < self.config.silence_dbfs)
            probs.append(np.zeros(len(self.classes), np.float32))
            embeddings.append(np.zeros(self.embedding_size, np.float32))
            if not silent[-1]:
                batch.append((len(starts) - 1, window))
            if len(batch) == BATCH:
                run_batch()
        if batch:
            run_batch()
        return self._assemble(starts, np.array(probs), np.array(embeddings), np.array(silent),
                              cutter.length / self.sample_rate, top_k or self.config.top_k)

    def narrow_events(self, wave: np.ndarray, events: list[dict]) -> list[dict]:
        """`events` of `wave` (mono at the model's rate, as `analyze` found them) with their edges moved in to
        0.48-s steps, where the sound alone is still heard (`soundtag.inference.events.narrow_events`): a 0.3-s
        bark becomes a 1-s event instead of a window-long one. Costs at most about 4 windows per event."""
        return narrow_events(events, wave, self.sample_rate, self.config.window, self.probabilities, self.classes,
                             self.config.threshold, self.config.silence_dbfs)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities `(n, classes)` for model-rate windows `(n, samples)`, no silence gate."""
        return self._run_batched(windows)[0]

    def _run_batched(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [self._run(windows[i:i + BATCH]) for i in range(0, len(windows), BATCH)]
        return np.concatenate([p for p, _ in parts]), np.concatenate([e for _, e in parts])

    def embed(self, source: str | Path | np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """The model's penultimate vector `(channels,)` for a file or array: `analyze(...).embedding`."""
        return self.analyze(source, sample_rate).embedding

    def _top(self, probs: np.ndarray, k: int) -> list[dict]:
        best = np.argsort(probs)[::-1][:k]
        return [{"label": self.classes[i], "score": float(probs[i])} for i in best]


def _ood_stats(path: Path) -> dict[str, np.ndarray] | None:
    """The unfamiliar-audio statistics written by `soundtag calibrate`, checked; None when the model has none."""
    if not path.exists():
        return None
    try:
        stats = {k: v.numpy().astype(np.float64) for k, v in load_file(path).items()}
    except Exception as err:  # safetensors' own error types, for truncated or foreign files
        raise ModelError(f"{path}: unreadable ({err}); re-create it with `soundtag calibrate`") from None
    if {"mean", "precision", "threshold"} - set(stats) or not all(np.isfinite(v).all() for v in stats.values()):
        raise ModelError(f"{path}: not the statistics `soundtag calibrate` writes (mean, precision, threshold)")
    return stats
