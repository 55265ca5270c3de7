"""How a trained model is applied to audio of any length: one `InferenceConfig`, saved in model.json beside the
weights, so the Python API, the CLI, the app and the Ray workers all apply a model the same way. Each entry point
overrides single fields (`Classifier.load(window=2)`, `soundtag predict --window 2`); nothing is copied by hand."""

from __future__ import annotations

from dataclasses import dataclass, fields

from soundtag.errors import ConfigError

AGGREGATES = ("max", "mean")  # how window scores become a file's score (`soundtag.inference.events`)
BACKENDS = ("torch", "onnx")
TAXONOMIES = ("esc50", "audioset")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class InferenceConfig:
    """Windows, silence gate, decision threshold and runtime. A model's own config has `window` set to the clip
    length it was trained on and `threshold` to the one chosen out-of-fold (`soundtag calibrate`)."""

    window: float = 5.0  # seconds of audio the network sees at once
    hop: float = 2.5  # seconds between window starts; at most `window`, so no audio goes unheard
    silence_dbfs: float = -60.0  # windows quieter than this RMS level are reported as silence, not scored
    threshold: float = 0.5  # a sound is present (an event) in a window where its score reaches this
    aggregate: str = "max"  # a file's score per sound from its windows: max (presence) or mean (pre-0.2 models)
    top_k: int = 5  # tags listed per file and per window
    backend: str = "torch"  # or "onnx": onnxruntime on the exported pipeline (CPU)
    precision: str = "fp32"  # or "bf16" (torch backend): about 2x faster on CPUs with bf16 instructions
    audioset_weight: float = 0.0  # weight of AudioSet's zero-shot scores (YAMNet, `soundtag.models.yamnet`) in the
    # weighted geometric mean with the CNN's; 0 is the CNN alone and needs no AudioSet model
    taxonomy: str = "esc50"  # the model's own classes; or "audioset": YAMNet's 521 AudioSet classes (speech, music,
    # vehicles, alarms...) as the tags, their probabilities as the scores

    def __post_init__(self) -> None:
        if not 0.1 <= self.window <= 600 or not 0 < self.hop <= self.window:  # NaN fails both
            raise ConfigError(f"need 0.1 <= window <= 600 s and 0 < hop <= window, got window={self.window} and "
                             f"hop={self.hop}")
        if not -200 <= self.silence_dbfs <= 0:
            raise ConfigError(f"silence_dbfs must lie in [-200, 0] dBFS, got {self.silence_dbfs}")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"threshold must lie between 0 and 1, got {self.threshold}")
        if not 0 <= self.audioset_weight <= 1:  # NaN fails too
            raise ConfigError(f"audioset_weight must lie in [0, 1], got {self.audioset_weight}")
        if not 1 <= self.top_k <= 10_000:
            raise ConfigError(f"top_k must be at least 1, got {self.top_k}")
        for name, value, allowed in (("aggregate", self.aggregate, AGGREGATES), ("backend", self.backend, BACKENDS),
                                     ("precision", self.precision, PRECISIONS),
                                     ("taxonomy", self.taxonomy, TAXONOMIES)):
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.precision == "bf16" and self.backend != "torch":
            raise ConfigError("precision bf16 needs the torch backend")


def override(config: InferenceConfig, **changes: object) -> InferenceConfig:
    """`config` with some fields replaced (None leaves a field as it is); a new window without a new hop keeps the
    windows' overlap. An unknown field or a bad value raises ConfigError naming it."""
    known = {f.name for f in fields(InferenceConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ConfigError(f"unknown inference setting(s) {', '.join(unknown)}; settings are {', '.join(sorted(known))}")
    changes = {k: v for k, v in changes.items() if v is not None}
    if "window" in changes and "hop" not in changes:
        changes["hop"] = changes["window"] * config.hop / config.window
    return InferenceConfig(**{**{f.name: getattr(config, f.name) for f in fields(config)}, **changes})
