import json
import re
from pathlib import Path

import pytest

from soundtag.training.config import ConfigError, RunConfig, from_dict, make_config


def test_defaults_presets_and_overrides() -> None:
    assert make_config() == RunConfig()
    cfg = make_config("smoke", overrides=["train.epochs=7", "model.channels=4,8", "train.val_fold=none",
                                          "train.amp=false", "frontend.f_max=8000"])
    assert (cfg.train.epochs, cfg.model.channels, cfg.train.val_fold) == (7, (4, 8), None)
    assert cfg.train.amp is False and cfg.frontend.f_max == 8000.0


def test_json_round_trip(tmp_path: Path) -> None:
    cfg = make_config("long", overrides=["train.val_fold=2"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert make_config(file=path) == cfg == from_dict(cfg.to_dict())


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.epoch=3"], "unknown key 'train.epoch'; train has epochs"),
    (["optimizer.lr=1"], "section among audio, frontend, model, train"),
    (["train.epochs"], "expected section.key=value"),
    (["train.epochs=ten"], "train.epochs: 'ten' is not a valid int"),
    (["train.epochs=2.5"], "not a valid int"),
    (["train.amp=maybe"], "not a valid bool"),
    (["model.channels=8,x"], "not a valid int"),
])
def test_bad_overrides_are_explained(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(overrides=overrides)


def test_bad_preset_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        make_config("fast")
    with pytest.raises(ConfigError, match="not found"):
        make_config(file=tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        make_config(file=tmp_path / "bad.json")


def test_runs_saved_before_multilabel_training_still_load() -> None:
    old = {"train": {"epochs": 150, "mixup_alpha": 0.5, "label_smoothing": 0.1, "freq_masks": 2}}
    assert from_dict(old).train.epochs == 150
    assert from_dict(old).model.output == "softmax"  # 0.1's runs were single-label (a resume must stay so)
    assert from_dict({"model": {"dropout": 0.5}}).model.output == "sigmoid"  # a partial config keeps the default
    with pytest.raises(ConfigError, match=r"unknown key 'train\.mixup_alpha'"):
        make_config(overrides=["train.mixup_alpha=0.2"])  # a retired key is not a setting any more


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.epochs=0"], "epochs and batch_size must be at least 1"),
    (["train.lr=nan"], "0 < lr < 10"),
    (["model.dropout=1.5"], "dropout must lie in [0, 1)"),
    (["frontend.f_max=30000"], "f_max <= sample_rate / 2 (16000 Hz)"),
    (["frontend.hop_length=0"], "1 <= hop_length <= n_fft"),
    (["audio.sample_rate=16000"], "f_max <= sample_rate / 2 (8000 Hz)"),  # the rate is one setting: see below
    (["audio.sample_rate=16000", "frontend.sample_rate=22050", "frontend.f_max=7000"], "must agree"),
    (["audio.duration=0"], "duration must lie in 0.1-600 s"),
])
def test_out_of_range_values_are_refused_before_anything_runs(overrides: list, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        make_config(overrides=overrides)


def test_related_values_are_checked_together() -> None:
    cfg = make_config(overrides=["frontend.sample_rate=16000", "frontend.f_max=7000", "audio.sample_rate=16000"])
    assert (cfg.audio.sample_rate, cfg.frontend.f_max) == (16000, 7000.0)


def test_the_sample_rate_is_one_setting() -> None:
    """Given for either section, the rate is the other's too (the frontend must know it to build its filters)."""
    for key in ("audio.sample_rate", "frontend.sample_rate"):
        cfg = make_config(overrides=[f"{key}=16000", "frontend.f_max=7000"])
        assert cfg.audio.sample_rate == cfg.frontend.sample_rate == 16000


@pytest.mark.parametrize(("content", "message"), [
    (b"[1, 2]", "expected an object of sections"), (b'{"train": 5}', "expected an object of sections"),
    (bytes(range(128, 228)), "not valid JSON"),
])
def test_a_config_file_of_the_wrong_shape_is_one_error(tmp_path, content: bytes, message: str) -> None:
    (tmp_path / "c.json").write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        make_config(file=tmp_path / "c.json")


def test_an_infinite_count_is_not_an_int() -> None:
    with pytest.raises(ConfigError, match="not a valid int"):
        make_config(overrides=["train.epochs=inf"])
