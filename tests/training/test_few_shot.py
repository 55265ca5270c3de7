"""Fitting few-shot heads: separation, classes without examples, cross-validation, the command line."""

from pathlib import Path

import numpy as np
import pytest
from conftest import clusters, make_folder_dataset, tone

from soundtag.errors import ModelError
from soundtag.training.few_shot import fit_head


@pytest.mark.parametrize("classes", [2, 3])
def test_a_head_separates_what_it_was_fitted_on(classes: int) -> None:
    embeddings, labels = clusters(classes)
    head = fit_head(embeddings, labels, [f"c{i}" for i in range(classes)])
    scores = head.scores(embeddings)
    assert scores.shape == (len(labels), classes) and np.allclose(scores.sum(1), 1, atol=1e-5)
    assert (scores.argmax(1) == labels).all()


def test_a_class_without_examples_is_never_chosen() -> None:
    embeddings, labels = clusters(2)
    head = fit_head(embeddings, labels * 2, ["a", "unused", "b"])  # labels 0 and 2
    assert (head.scores(embeddings).argmax(1) != 1).all()
    with pytest.raises(ModelError, match="two classes"):
        fit_head(embeddings, np.zeros(len(labels), int), ["a", "b"])


def test_cross_validation_skips_folds_it_cannot_fit() -> None:
    from soundtag.training.dataset import Dataset
    from soundtag.training.few_shot import cross_validate

    embeddings, labels = clusters(2, per_class=4)
    folds = np.array([1, 1, 1, 1, 2, 2, 3, 3])  # holding out 2 or 3 leaves both classes; holding out 1, one
    scores = cross_validate(embeddings, Dataset([Path("x")] * 8, labels, folds, ["a", "b"]))
    assert sorted(scores) == [2, 3]


def test_train_head_from_the_command_line_then_tag_with_it(yamnet_folder: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    import soundfile as sf

    from soundtag.inference.classifier import Classifier
    from soundtag.interfaces.cli import main

    data = make_folder_dataset(tmp_path / "sounds")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "head"), "--head"]) == 0
    assert "use it: soundtag predict" in capsys.readouterr().out
    clf = Classifier.load(tmp_path / "head")
    assert clf.classes == ["bell", "hum"] and clf.embedding_size == 1024
    sf.write(tmp_path / "bell.wav", tone(880.0, 8000, 2.0), 8000)
    assert clf.predict(tmp_path / "bell.wav", top_k=1)[0]["label"] == "bell"
    assert main(["predict", str(tmp_path / "bell.wav"), "--model", str(tmp_path / "head"), "--plots",
                 str(tmp_path / "pictures")]) == 0
    assert (tmp_path / "pictures" / "bell.png").is_file()
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "other"), "--head", "--folds", "1"]) == 2
    assert "--head takes only" in capsys.readouterr().err
