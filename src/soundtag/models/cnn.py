"""The CNN: Conv-BN-ReLU blocks with 2x2 average pooling, pooling over frequency and time, dropout, linear head."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from soundtag.audio.load import AudioConfig
from soundtag.errors import ModelError
from soundtag.features.logmel import FrontendConfig, LogMel
from soundtag.models.inference_config import InferenceConfig, override

OUTPUTS = ("sigmoid", "softmax")
POOLINGS = ("mean", "mean+max", "attention")


@dataclass(frozen=True)
class ModelConfig:
    """Block widths and convolutions per block. The defaults keep early, high-resolution blocks thin and put
    the second convolution where the feature map is small: about 1.1 M parameters and 0.3 GMAC per 5-s clip."""

    n_classes: int = 50
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    convs_per_block: tuple[int, ...] = (1, 1, 1, 2, 2)
    dropout: float = 0.3
    output: str = "sigmoid"  # independent per-class scores (multi-label); "softmax" for one class per clip
    pooling: str = "mean+max"  # last feature map: mean over frequency, then mean plus max over time; or "mean" (0.3);
    # or "attention": each class scored frame by frame and pooled over time with weights of its own (Kong et al.)

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.n_classes < 1 or min(self.channels, default=0) < 1 or min(self.convs_per_block, default=0) < 1:
            raise ValueError("n_classes, channels and convs_per_block must be positive")


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SoundCNN(nn.Module):
    """Log-mels `(batch, n_mels, frames)` -> class logits `(batch, n_classes)`; any number of frames."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        if len(config.channels) != len(config.convs_per_block):
            raise ValueError(f"model.channels has {len(config.channels)} blocks but model.convs_per_block "
                             f"has {len(config.convs_per_block)}")
        self.config = config
        blocks, c_in = [], 1
        for i, (c_out, n_convs) in enumerate(zip(config.channels, config.convs_per_block)):
            layers = [conv_bn_relu(c_in if j == 0 else c_out, c_out) for j in range(n_convs)]
            if i < len(config.channels) - 1:
                layers.append(nn.AvgPool2d(2))
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(c_in, config.n_classes)
        if config.pooling == "attention":
            self.attention = nn.Linear(c_in, config.n_classes)
        if config.output == "sigmoid":  # start every score near 1 / classes, the share of positives (Lin et al.)
            nn.init.constant_(self.head.bias, -math.log(config.n_classes - 1) if config.n_classes > 1 else 0.0)

    def embed(self, mels: torch.Tensor) -> torch.Tensor:
        """The last feature map's mean over frequency and time `(batch, channels[-1])`, whatever the pooling: for
        similarity search and the unfamiliar-audio score."""
        return self.logits_and_embedding(mels)[1]

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.logits_and_embedding(mels)[0]

    def logits_and_embedding(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits `(batch, n_classes)` and the embedding (`embed`) in one pass. The head reads the last
        feature map's mean over frequency, then over time its mean ("mean") or mean plus max ("mean+max": a short
        event keeps its own weight instead of being averaged away, as in PANNs). The embedding stays the plain
        mean: with the max added, tones, square waves and chords came out as familiar as ESC-50's own clips
        (unfamiliar-audio AUROC 0.63, 0.57 and 0.47 against 0.98, 0.97 and 0.96 with the mean alone; 0.4's fold
        models, `bench/qa_ood.py`)."""
        frames = self.blocks(mels.unsqueeze(1)).mean(dim=-2)  # (batch, channels, frames / 16)
        embedding = frames.mean(dim=-1)
        if self.config.pooling == "mean":
            return self.head(self.dropout(embedding)), embedding
        if self.config.pooling == "mean+max":
            return self.head(self.dropout(embedding + frames.amax(dim=-1))), embedding
        # Each class is scored on every frame and pooled with its own softmax weights over time, so a steady sound
        # can be heard in the frames between another sound's bursts (decision-level attention, Kong et al. 2019).
        x = self.dropout(frames.transpose(1, 2))  # (batch, frames / 16, channels)
        weights = self.attention(x).softmax(dim=1)
        return (weights * self.head(x)).sum(dim=1), embedding

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> scores in [0, 1]: per-class probabilities (sigmoid) or a distribution over classes."""
        return logits.sigmoid() if self.config.output == "sigmoid" else logits.softmax(-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, int]) -> int:
    """Multiply-adds of one forward pass on a single `(n_mels, frames)` input (convolutions and linear layers)."""
    total = 0

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        weight = module.weight
        total += output.numel() * weight[0].numel()  # every output value costs one filter's worth of MACs

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total


@torch.no_grad()
def predict_logits(model: nn.Module, mels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits `(clips, n_classes)` in eval mode and full precision, batch by batch, on the model's device."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(mels[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(mels), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, model.config.n_classes)


@dataclass(frozen=True)
class ModelBundle:
    """A trained network with everything needed to feed it and read it: class names, the audio and frontend
    settings, and how to apply it to audio of any length (windows, silence gate, decision threshold)."""

    model: SoundCNN
    classes: list[str]
    audio: AudioConfig
    frontend: FrontendConfig
    inference: InferenceConfig = field(default_factory=InferenceConfig)


def fold_batchnorm(model: SoundCNN) -> SoundCNN:
    """An inference copy with each BatchNorm folded into the convolution before it (same outputs to float
    rounding, one pass over each feature map fewer, so faster on a CPU)."""
    model = copy.deepcopy(model).eval()
    for block in model.blocks:
        for layer in block:
            if isinstance(layer, nn.Sequential) and isinstance(layer[1], nn.BatchNorm2d):
                layer[0], layer[1] = fuse_conv_bn_eval(layer[0], layer[1]), nn.Identity()
    return model


class Pipeline(nn.Module):
    """Waveforms `(batch, samples)` at the model's rate -> (scores `(batch, classes)`, embeddings).
    Inference only: the network's BatchNorms are folded into its convolutions. `dft_as_conv` is for ONNX export
    (see `LogMel`)."""

    def __init__(self, bundle: ModelBundle, dft_as_conv: bool = False):
        super().__init__()
        self.frontend = LogMel(bundle.frontend, dft_as_conv)
        self.model = fold_batchnorm(bundle.model)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, embedding = self.model.logits_and_embedding(self.frontend(wave))
        return self.model.scores(logits), embedding


def describe(bundle: ModelBundle) -> dict:
    """Everything but the weights, as JSON-ready data: class names and the audio, frontend, model and inference
    configs."""
    return {"classes": bundle.classes, "audio": asdict(bundle.audio), "frontend": asdict(bundle.frontend),
            "model": asdict(bundle.model.config), "inference": asdict(bundle.inference)}


def save_model(directory: str | Path, bundle: ModelBundle) -> None:
    """Write `model.safetensors` (weights only) and `model.json` (configs and labels) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in bundle.model.state_dict().items()}
    save_file(state, directory / "model.safetensors")
    (directory / "model.json").write_text(json.dumps(describe(bundle), indent=2) + "\n")


def set_inference(directory: str | Path, **changes: object) -> InferenceConfig:
    """Change inference settings (e.g. the decision threshold chosen out-of-fold) in `directory`/model.json."""
    path = Path(directory) / "model.json"
    meta = json.loads(path.read_text())
    config = override(_inference(meta), **changes)
    meta.pop("threshold", None)  # where models before 0.2.1 kept it
    meta["inference"] = asdict(config)
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return config


def _inference(meta: dict) -> InferenceConfig:
    """The inference config of a model description; models before 0.2.1 had none: windows of the clip length they
    were trained on, their decision threshold, and the mean over windows for single-label (softmax) models."""
    if "inference" in meta:
        return InferenceConfig(**meta["inference"])
    return clip_inference(AudioConfig(**meta["audio"]), meta["model"].get("output", "softmax"),
                          float(meta.get("threshold", 0.5)))


def clip_inference(audio: AudioConfig, output: str, threshold: float = 0.5) -> InferenceConfig:
    """A new model's inference config: windows of the clip length it is trained on, overlapping by half; file
    scores from the best window (multi-label) or the mean over windows (single-label: its scores compete)."""
    return InferenceConfig(window=audio.duration, hop=audio.duration / 2, threshold=threshold,
                           aggregate="max" if output == "sigmoid" else "mean")


def load_model(directory: str | Path) -> ModelBundle:
    """Read what `save_model` wrote; safetensors, so nothing is unpickled. The folder is checked before it is used:
    readable files, settings that agree (one sample rate, the classes the head has), weights of the configured
    shapes and all finite."""
    directory = Path(directory)
    for name in ("model.json", "model.safetensors"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name}: missing; a model folder holds model.json and "
                                    "model.safetensors")
    try:
        meta = json.loads((directory / "model.json").read_text())
        m = meta["model"]
        config = ModelConfig(n_classes=m["n_classes"], channels=tuple(m["channels"]),
                             convs_per_block=tuple(m["convs_per_block"]), dropout=m["dropout"],
                             output=m.get("output", "softmax"),  # models before 0.2 were single-label
                             pooling=m.get("pooling", "mean"))  # and before 0.4 mean-pooled
        bundle = ModelBundle(SoundCNN(config), list(meta["classes"]), AudioConfig(**meta["audio"]),
                             FrontendConfig(**meta["frontend"]), _inference(meta))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ModelError(f"{directory / 'model.json'}: not a soundtag model description ({err!r})") from None
    _check(bundle, directory)
    try:
        state = load_file(directory / "model.safetensors")
    except Exception as err:  # safetensors raises its own error types for truncated or foreign files
        raise ModelError(f"{directory / 'model.safetensors'}: unreadable weights ({err})") from None
    try:
        bundle.model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise ModelError(f"{directory / 'model.safetensors'}: does not fit model.json ({first})") from None
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise ModelError(f"{directory / 'model.safetensors'}: holds NaN or infinite weights")
    bundle.model.eval()
    return bundle


def _check(bundle: ModelBundle, directory: Path) -> None:
    """Settings that must agree before any weight is read."""
    if bundle.audio.sample_rate != bundle.frontend.sample_rate:
        raise ModelError(f"{directory / 'model.json'}: audio rate {bundle.audio.sample_rate} Hz and frontend rate "
                         f"{bundle.frontend.sample_rate} Hz differ")
    if len(bundle.classes) != bundle.model.config.n_classes:
        raise ModelError(f"{directory / 'model.json'}: {len(bundle.classes)} class names for "
                         f"{bundle.model.config.n_classes} outputs")
    if not 8 <= bundle.frontend.n_mels <= 512 or not 64 <= bundle.frontend.n_fft <= 16_384:
        raise ModelError(f"{directory / 'model.json'}: n_mels {bundle.frontend.n_mels} or n_fft "
                         f"{bundle.frontend.n_fft} out of range (8-512, 64-16384)")
