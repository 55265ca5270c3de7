"""ONNX export of the whole pipeline (waveform -> log-mel -> CNN), so a deployment needs only onnxruntime."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch

from soundtag.models.cnn import ModelBundle, Pipeline, describe


def export_onnx(bundle: ModelBundle, path: str | Path) -> Path:
    """Write the pipeline as ONNX (any batch size and window length) with model.json in its metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(bundle, dft_as_conv=True).eval()  # onnxruntime's STFT kernel is 2x slower
    example = torch.zeros(2, bundle.audio.num_samples)
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("samples", min=bundle.frontend.n_fft)}
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # its notes on optional torchvision ops are not the user's concern
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(pipeline, (example,), input_names=["wave"],
                                        output_names=["probs", "embedding"],
                                        dynamic_shapes=(dims,), dynamo=True, verbose=False)
    finally:
        exporter_log.setLevel(level)
    program.model.metadata_props["soundtag"] = json.dumps(describe(bundle))
    program.save(str(path))
    return path
