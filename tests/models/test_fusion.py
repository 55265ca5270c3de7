"""The ESC-50 to AudioSet mapping, zero-shot scores and their fusion with the CNN's."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from soundtag.audio.load import load
from soundtag.errors import ModelError
from soundtag.models import fusion
from soundtag.models.yamnet import Yamnet


def test_fuse_is_a_weighted_geometric_mean_that_keeps_the_cnn_where_audioset_has_no_name() -> None:
    cnn = np.array([[0.8, 0.2, 0.5]], np.float32)
    other = np.array([[0.2, 0.8, np.nan]], np.float32)
    np.testing.assert_allclose(fusion.fuse(cnn, other, 0.0), cnn, rtol=1e-6)
    np.testing.assert_allclose(fusion.fuse(cnn, other, 0.5), [[0.4, 0.4, 0.5]], rtol=1e-5)
    np.testing.assert_allclose(fusion.fuse(cnn, other, 1.0), [[0.2, 0.8, 0.5]], rtol=1e-5)


def test_zero_shot_takes_the_best_mapped_class() -> None:
    probs = np.array([[0.1, 0.7, 0.3, 0.9]], np.float32)
    mapping = [np.array([0, 2]), np.array([1, 3]), np.array([], np.int64)]
    scores = fusion.zero_shot(probs, mapping)
    np.testing.assert_allclose(scores[:, :2], [[0.3, 0.9]])
    assert np.isnan(scores[0, 2])


def test_mapping_names_every_esc50_class_once_and_never_shares_an_audioset_class() -> None:
    table = json.loads(fusion.MAPPING.read_text())["classes"]
    classes = json.loads((REPO / "src/soundtag/models/esc50/model.json").read_text())["classes"]
    assert sorted(table) == sorted(classes)
    names = [n for entry in table.values() for n in entry["audioset"]]
    assert len(names) == len(set(names))
    assert all(entry["why"] for entry in table.values())
    with pytest.raises(ModelError, match="no AudioSet mapping for bell"):
        fusion.load_mapping(["dog", "bell"], names)


def test_the_fused_classifier_is_the_cnn_fused_with_zero_shot_scores(yamnet_folder: Path) -> None:
    from soundtag.inference.classifier import Classifier

    fused, cnn = Classifier.load(audioset_weight=0.3), Classifier.load(audioset_weight=0)
    wave = load(REPO / "examples" / "dog.flac", None, fused.sample_rate)[None, :5 * fused.sample_rate]
    yamnet = Yamnet(yamnet_folder)
    zero_shot = fusion.zero_shot(yamnet.windows(wave, fused.sample_rate)[0],
                                   fusion.load_mapping(fused.classes, yamnet.classes))
    np.testing.assert_allclose(fused.probabilities(wave), fusion.fuse(cnn.probabilities(wave), zero_shot, 0.3),
                               atol=1e-5)
    assert fused.classes[fused.probabilities(wave).argmax()] == "dog"
