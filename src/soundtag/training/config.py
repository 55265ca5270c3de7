"""One run's configuration: the four stage configs, named presets, JSON files and `section.key=value` overrides."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from soundtag.audio.load import AudioConfig
from soundtag.errors import ConfigError
from soundtag.features.logmel import FrontendConfig
from soundtag.models.cnn import ModelConfig
from soundtag.training.augment import AugmentConfig


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe. Fixed schedule: no early stopping, and the test fold is never looked at."""

    epochs: int = 150
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 5
    amp: bool = True  # bf16 autocast on CPU and bf16 GPUs, fp16 elsewhere; False trains in fp32
    val_fold: int | None = None  # a training fold held out to watch generalisation; never the test fold
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.epochs <= 100_000 or not 1 <= self.batch_size <= 65_536:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}")
        if not 0 < self.lr < 10 or not 0 <= self.weight_decay < 10:  # NaN fails both
            raise ValueError(f"need 0 < lr < 10 and 0 <= weight_decay < 10, got {self.lr} and {self.weight_decay}")
        if self.warmup_epochs < 0 or self.seed < 0:
            raise ValueError(f"warmup_epochs and seed must be 0 or more, got {self.warmup_epochs} and {self.seed}")


@dataclass(frozen=True)
class RunConfig:
    audio: AudioConfig = field(default_factory=AudioConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.audio.sample_rate != self.frontend.sample_rate:
            raise ConfigError(f"audio.sample_rate={self.audio.sample_rate} and frontend.sample_rate="
                              f"{self.frontend.sample_rate} must agree: set one of them")

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict[str, str]] = {
    "default": {},
    "long": {"train.epochs": "600", "train.lr": "2e-3", "train.warmup_epochs": "10"},
    "smoke": {"train.epochs": "2", "model.channels": "8,16", "model.convs_per_block": "1,1"},
    "clean": {f"augment.{name}": "0" for name in ("mix", "context", "reverb", "noise", "floor", "eq", "band_limit",
                                                   "quiet", "background_only", "recorded")},  # SpecAugment, shifts
}


def make_config(preset: str = "default", file: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """Defaults, then a preset, then a JSON file (a run's config.json), then `section.key=value` overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
    config = RunConfig()
    config = apply_overrides(config, [f"{k}={v}" for k, v in PRESETS[preset].items()])
    if file is not None:
        config = from_dict(_read_json(Path(file)), base=config)
    return apply_overrides(config, overrides)


def _read_json(path: Path) -> dict:
    """A config file: a JSON object of sections, each an object of keys (what a run's config.json holds)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{path}: expected an object of sections, e.g. {{\"train\": {{\"epochs\": 60}}}}")
    return data


# Keys of runs saved before 0.2 (single-label recipe: mixup, label smoothing, masks under train), skipped when such
# a run's config.json is read, so that its fold models can still be evaluated.
RETIRED = {"train.label_smoothing", "train.mixup_alpha", "train.time_shift", "train.freq_masks",
           "train.freq_mask_width", "train.time_masks", "train.time_mask_width"}


def from_dict(data: dict, base: RunConfig = RunConfig()) -> RunConfig:
    """Build a RunConfig from nested dicts; every key must exist (or be RETIRED) and every value fit its type. A run
    saved before 0.2 (it holds RETIRED keys) was single-label: its model output is softmax unless it says otherwise,
    as `load_model` reads its fold models."""
    keys = [(f"{section}.{key}", value) for section, values in data.items()
            for key, value in (values.items() if isinstance(values, dict) else [(None, values)])]
    items = [f"{key}={json.dumps(value)}" for key, value in keys if key not in RETIRED]
    if any(key in RETIRED for key, _ in keys) and "output" not in data.get("model", {}):
        items.insert(0, "model.output=softmax")
    return apply_overrides(base, items)


def apply_overrides(config: RunConfig, items: list[str]) -> RunConfig:
    """`section.key=value` items on top of `config`; each section is rebuilt once with all its changes, so its range
    checks see them together (frontend.sample_rate=16000 with frontend.f_max=7000)."""
    sections = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    changes: dict[str, dict[str, object]] = {name: {} for name in sections}
    for item in items:
        key, sep, raw = item.partition("=")
        section, _, name = key.partition(".")
        if not sep or section not in sections or not name:
            raise ConfigError(f"cannot read override {item!r}: expected section.key=value with a section among "
                              f"{', '.join(sections)}")
        hints = typing.get_type_hints(type(sections[section]))
        if name not in hints:
            raise ConfigError(f"unknown key {key!r}; {section} has {', '.join(hints)}")
        changes[section][name] = _coerce(raw, hints[name], key)
    rates = {changes[name]["sample_rate"] for name in ("audio", "frontend") if "sample_rate" in changes[name]}
    if len(rates) == 1:  # one sample rate: given for either section, it is the other's too
        changes["audio"]["sample_rate"] = changes["frontend"]["sample_rate"] = rates.pop()
    for section, values in changes.items():
        try:
            sections[section] = dataclasses.replace(sections[section], **values)
        except ValueError as err:  # a range check in the section's __post_init__
            given = ", ".join(f"{section}.{k}={v}" for k, v in values.items())
            raise ConfigError(f"{given}: {err}") from None
    return RunConfig(**sections)


def _coerce(raw: str, kind: object, key: str) -> object:
    """Parse one override value (plain text or JSON) as the field's type."""
    text = raw.strip().strip('"')
    try:
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:  # `int | None`
            inner = next(a for a in typing.get_args(kind) if a is not type(None))
            return None if text.lower() in ("none", "null", "") else _coerce(text, inner, key)
        if typing.get_origin(kind) is tuple:
            inner = typing.get_args(kind)[0]
            parts = text.strip("[]()").split(",")
            return tuple(_coerce(p, inner, key) for p in parts if p.strip())
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if kind is int:
            number = float(text)
            if not number.is_integer():  # 2.5, inf and nan alike
                raise ValueError(text)
            return int(number)
        return kind(text)
    except ConfigError:
        raise
    except (ValueError, TypeError):
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"{key}: {raw!r} is not a valid {name}") from None
