"""Model runners: windows of audio `(n, samples)` at the model's rate -> (scores `(n, classes)`, embeddings
`(n, channels)`), with torch (CPU or CUDA, fp32 or bf16) or onnxruntime."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from soundtag.errors import ModelError
from soundtag.features.yamnet import SAMPLE_RATE
from soundtag.models.cnn import ModelBundle, Pipeline
from soundtag.models.fusion import fuse, load_mapping, zero_shot
from soundtag.models.yamnet import Yamnet

BATCH = 64  # windows per model call

Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def torch_runner(bundle: ModelBundle, precision: str, device: torch.device) -> Runner:
    """fp32, or bf16 autocast of the CNN: about 2x the batch throughput on CPUs with bf16 instructions, while
    scores move by up to 0.03 and cross-validated accuracy from 83.25 to 82.85 % (0.1's fold models,
    `bench/precision.py`). The frontend always runs in fp32; on a CPU a clip or two at a time, so its spectrograms
    stay in cache (several times faster at batch 64 than the whole batch at once)."""
    pipeline = Pipeline(bundle).eval().to(device)
    pipeline.model.to(memory_format=torch.channels_last)  # faster convolutions in fp32 and bf16 alike
    bf16 = precision == "bf16"
    chunk = 2 if device.type == "cpu" else BATCH

    @torch.inference_mode()
    def run(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        waves = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(device)
        mels = torch.cat([pipeline.frontend(w) for w in waves.split(chunk)])
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            logits, embedding = pipeline.model.logits_and_embedding(mels)
            probs = pipeline.model.scores(logits.float())
        return probs.cpu().numpy(), embedding.float().cpu().numpy()

    return run


def onnx_runner(bundle: ModelBundle, onnx_path: str | Path | None) -> Runner:
    """onnxruntime on the exported pipeline; exported to a temporary file when the model folder has none."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("the onnx backend needs onnxruntime: pip install onnxruntime") from None

    from soundtag.models.export import export_onnx

    if onnx_path is None:
        onnx_path = export_onnx(bundle, Path(tempfile.mkdtemp(prefix="soundtag-")) / "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # one thread setting for both backends
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own error types, for truncated or foreign files
        raise ModelError(f"{onnx_path}: not a loadable ONNX model ({str(err).splitlines()[0]}); re-export it with "
                         "`soundtag onnx`") from None

    def run(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, embedding = session.run(None, {"wave": np.ascontiguousarray(windows, dtype=np.float32)})
        return probs, embedding

    return run


def fused_runner(run: Runner, yamnet: Yamnet, classes: list[str], weight: float, sample_rate: int) -> Runner:
    """`run`'s scores fused with YAMNet's zero-shot scores of the same windows (`soundtag.audioset.fuse`, weight
    `weight` on AudioSet's side); the embeddings stay the CNN's, which the unfamiliar-audio statistics describe."""
    mapping = load_mapping(classes, yamnet.classes)

    def run_fused(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, embedding = run(windows)
        audioset, _ = yamnet.windows(windows, sample_rate)
        return fuse(probs, zero_shot(audioset, mapping), weight), embedding

    return run_fused


def audioset_runner(run: Runner, yamnet: Yamnet, sample_rate: int) -> Runner:
    """YAMNet's AudioSet probabilities `(n, 521)` of the windows as the scores, beside `run`'s embeddings (what
    the unfamiliar-audio statistics and the catalog's similarity search describe)."""

    def run_audioset(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, embedding = run(windows)
        return yamnet.windows(windows, sample_rate)[0], embedding

    return run_audioset


def head_runner(scores: Callable[[np.ndarray], np.ndarray], yamnet: Yamnet) -> Runner:
    """A few-shot head (`soundtag.models.heads`): 16-kHz windows -> the head's `scores` of YAMNet's embeddings, and the
    embeddings `(n, 1024)`."""

    def run_head(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        embedding = yamnet.windows(windows, SAMPLE_RATE)[1]
        return scores(embedding), embedding

    return run_head
