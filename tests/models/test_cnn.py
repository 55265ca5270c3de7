import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import tiny_bundle
from safetensors.torch import load_file, save_file

from soundtag.audio.load import AudioConfig
from soundtag.features.logmel import FrontendConfig
from soundtag.models.cnn import (
    ModelBundle,
    ModelConfig,
    ModelError,
    SoundCNN,
    count_macs,
    count_parameters,
    fold_batchnorm,
    load_model,
    save_model,
)


def test_default_model_fits_the_budget() -> None:
    model = SoundCNN(ModelConfig())
    assert count_parameters(model) <= 1_500_000
    assert count_macs(model, (64, 501)) <= 300_000_000


def test_macs_of_a_single_conv_are_counted_by_hand() -> None:
    model = SoundCNN(ModelConfig(n_classes=3, channels=(4,), convs_per_block=(1,)))
    assert count_macs(model, (8, 10)) == 8 * 10 * 4 * 9 + 4 * 3  # conv, then the linear head


def test_any_length_and_embedding() -> None:
    model = SoundCNN(ModelConfig(n_classes=5)).eval()
    for frames in (101, 501, 1001):
        assert model(torch.randn(2, 64, frames)).shape == (2, 5)
    assert model.embed(torch.randn(3, 64, 501)).shape == (3, 256)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = SoundCNN(ModelConfig(n_classes=3, channels=(4, 8), convs_per_block=(1, 2))).eval()
    save_model(tmp_path, ModelBundle(model, ["a", "b", "c"], AudioConfig(), FrontendConfig(n_mels=32)))
    bundle = load_model(tmp_path)
    assert bundle.classes == ["a", "b", "c"] and bundle.frontend.n_mels == 32
    x = torch.randn(1, 32, 50)
    torch.testing.assert_close(bundle.model(x), model(x))


def test_mean_max_pooling_keeps_a_short_event_weight() -> None:
    torch.manual_seed(0)
    config = ModelConfig(n_classes=8, channels=(4, 8), convs_per_block=(1, 1), pooling="mean")
    mean, mean_max = SoundCNN(config).eval(), SoundCNN(dataclasses.replace(config, pooling="mean+max")).eval()
    with torch.no_grad():  # an identity head: the logits are the pooled features themselves
        mean.head.weight.copy_(torch.eye(8)), mean.head.bias.zero_()
    mean_max.load_state_dict(mean.state_dict())
    quiet = torch.zeros(1, 64, 1600)
    event = quiet.clone()
    event[..., 800:832] = 10.0  # 32 frames (0.3 s at a 10-ms hop) in 16 s
    with torch.no_grad():
        frames = mean.blocks(event.unsqueeze(1)).mean(dim=-2)
        torch.testing.assert_close(mean_max(event), frames.mean(-1) + frames.amax(-1))
        torch.testing.assert_close(mean_max.embed(event), frames.mean(-1))  # the embedding stays the mean
        rise = {name: (m(event) - m(quiet)).norm() for name, m in (("mean", mean), ("max", mean_max))}
    assert rise["max"] > 10 * rise["mean"]  # the mean of 16 s barely moves; the max holds the event


def test_attention_pooling_weighs_each_class_over_frames(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SoundCNN(ModelConfig(n_classes=3, channels=(4, 8), convs_per_block=(1, 1), pooling="attention")).eval()
    x = torch.randn(2, 64, 320)
    with torch.no_grad():
        frames = model.blocks(x.unsqueeze(1)).mean(dim=-2).transpose(1, 2)  # (batch, frames, channels)
        per_frame = model.head(frames)  # (batch, frames, classes)
        logits, embedding = model.logits_and_embedding(x)
        assert (logits >= per_frame.amin(1) - 1e-5).all() and (logits <= per_frame.amax(1) + 1e-5).all()
        torch.testing.assert_close(embedding, frames.mean(1))  # the embedding stays the mean
        model.attention.weight.zero_(), model.attention.bias.zero_()  # equal weights: the mean over frames
        torch.testing.assert_close(model(x), per_frame.mean(1))
        model.attention.weight.copy_(50 * model.head.weight)  # weights that follow the score: near the max
        model.attention.bias.copy_(50 * model.head.bias)
        torch.testing.assert_close(model(x), per_frame.amax(1), atol=0.05, rtol=0)
    save_model(tmp_path, ModelBundle(model, ["a", "b", "c"], AudioConfig(), FrontendConfig()))
    torch.testing.assert_close(load_model(tmp_path).model(x), model(x))
    assert not any(k.startswith("attention") for k in SoundCNN(ModelConfig(n_classes=3)).state_dict())


def test_models_saved_before_pooling_was_a_setting_load_mean_pooled(tmp_path: Path) -> None:
    bundle = tiny_bundle(["a", "b", "c"])
    save_model(tmp_path, bundle)
    _edit_json(tmp_path, lambda m: m["model"].pop("pooling"))
    assert load_model(tmp_path).model.config.pooling == "mean"
    with pytest.raises(ValueError, match="pooling must be one of mean, mean\\+max"):
        ModelConfig(pooling="max")


def test_folded_batchnorm_gives_the_same_outputs() -> None:
    torch.manual_seed(0)
    model = SoundCNN(ModelConfig(n_classes=4, channels=(8, 16), convs_per_block=(1, 2)))
    model.train()
    for _ in range(3):  # running statistics far from the identity
        model(3 * torch.randn(8, 64, 100) + 1)
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 64, 100)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("tamper", "message"), [
    (lambda d: (d / "model.json").write_text("{not json"), "not a soundtag model description"),
    (lambda d: _edit_json(d, lambda m: m["frontend"].update(sample_rate=44100)), "audio rate 32000 Hz and frontend"),
    (lambda d: _edit_json(d, lambda m: m["frontend"].update(n_mels=100000)), "n_mels 100000"),
    (lambda d: _edit_json(d, lambda m: m.update(classes=m["classes"][:2])), "2 class names for 3 outputs"),
    (lambda d: _edit_json(d, lambda m: m["model"].update(channels=[8, 32])), "does not fit model.json"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:500]),
     "unreadable weights"),
    (lambda d: save_file({k: v * float("nan") for k, v in load_file(d / "model.safetensors").items()},
                         d / "model.safetensors"), "NaN or infinite weights"),
])
def test_a_tampered_model_folder_is_refused_with_a_reason(tmp_path: Path, tamper, message: str) -> None:
    save_model(tmp_path, tiny_bundle(["a", "b", "c"]))
    tamper(tmp_path)
    with pytest.raises(ModelError, match=re.escape(message)):
        load_model(tmp_path)


def _edit_json(folder: Path, change) -> None:
    meta = json.loads((folder / "model.json").read_text())
    change(meta)
    (folder / "model.json").write_text(json.dumps(meta))
