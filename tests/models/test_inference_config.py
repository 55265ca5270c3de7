import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from conftest import tiny_bundle

from soundtag.errors import ConfigError
from soundtag.inference.classifier import Classifier
from soundtag.models.cnn import load_model, save_model, set_inference
from soundtag.models.inference_config import InferenceConfig, override


@pytest.mark.parametrize(("changes", "message"), [
    ({"window": 0.0}, "0.1 <= window"), ({"window": 5.0, "hop": 6.0}, "hop <= window"),
    ({"hop": float("nan")}, "hop"), ({"threshold": 1.0}, "threshold"), ({"top_k": 0}, "top_k"),
    ({"silence_dbfs": 3.0}, "silence_dbfs"), ({"aggregate": "median"}, "aggregate must be one of max, mean"),
    ({"backend": "tensorrt"}, "backend"), ({"backend": "onnx", "precision": "bf16"}, "bf16 needs the torch"),
    ({"windw": 2.0}, "unknown inference setting"),
])
def test_every_bad_value_names_its_setting(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        override(InferenceConfig(), **changes)


def test_none_leaves_a_setting_as_it_is() -> None:
    base = InferenceConfig(window=1.0, hop=0.5, threshold=0.3)
    assert override(base, window=None, threshold=0.4) == replace(base, threshold=0.4)
    assert override(base, window=4.0).hop == 2.0  # a new window keeps the overlap


def test_the_model_carries_its_inference_config(tmp_path: Path) -> None:
    config = InferenceConfig(window=1.0, hop=0.25, threshold=0.2, top_k=2)
    save_model(tmp_path, replace(tiny_bundle(["a", "b", "c"]), inference=config))
    assert load_model(tmp_path).inference == config
    clf = Classifier.load(tmp_path, hop=0.5)  # a keyword overrides one setting, the rest come from the model
    assert clf.config == replace(config, hop=0.5)
    assert set_inference(tmp_path, threshold=0.6).threshold == 0.6
    assert json.loads((tmp_path / "model.json").read_text())["inference"]["threshold"] == 0.6


def test_models_from_before_the_inference_config_still_load(tmp_path: Path) -> None:
    """0.2.0 kept only the threshold; 0.1 models were single-label (softmax), their windows averaged."""
    save_model(tmp_path, tiny_bundle(["a", "b"]))
    meta = json.loads((tmp_path / "model.json").read_text())
    del meta["inference"]
    meta["threshold"], meta["audio"]["duration"] = 0.3, 2.0
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert load_model(tmp_path).inference == InferenceConfig(window=2.0, hop=1.0, threshold=0.3)
    del meta["model"]["output"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert load_model(tmp_path).inference.aggregate == "mean"
    set_inference(tmp_path, top_k=3)  # rewritten in the current form
    assert asdict(load_model(tmp_path).inference) == json.loads((tmp_path / "model.json").read_text())["inference"]
