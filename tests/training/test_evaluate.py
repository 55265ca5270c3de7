import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from soundtag.training import thresholds
from soundtag.training.config import make_config
from soundtag.training.evaluate import evaluate_run
from soundtag.training.train import run


@pytest.fixture(scope="module")
def tiny_run(tone_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = make_config("smoke", overrides=[*TINY, "train.epochs=3"])
    return run(cfg, tone_dataset, tmp_path_factory.mktemp("eval") / "run", folds=[1, 2])


def test_reports_are_written_and_reproducible(tiny_run: Path) -> None:
    first = evaluate_run(tiny_run)
    names = {p.name for p in tiny_run.iterdir()}
    assert {"summary.json", "per_class.csv", "per_class.md", "confusion.npy", "confusion.csv", "confusion.png",
            "curves.png", "predictions.csv"} <= names
    saved = json.loads((tiny_run / "summary.json").read_text())
    assert sorted(saved["folds"]) == ["1", "2"] and saved["config"]["train"]["epochs"] == 3
    assert saved["accuracy_mean"] == pytest.approx(np.mean([f["accuracy"] for f in saved["folds"].values()]))
    assert np.load(tiny_run / "confusion.npy").sum() == 12  # folds 1 and 2 hold 6 clips each
    again = evaluate_run(tiny_run)
    assert again["accuracy_mean"] == first["accuracy_mean"] == saved["accuracy_mean"]
    assert again["macro_f1_mean"] == saved["macro_f1_mean"]
    assert 0 < saved["threshold"] < 1 and sorted(saved["threshold_without_fold"]) == ["1", "2"]
    assert again["threshold_without_fold"] == saved["threshold_without_fold"]


def test_threshold_maximises_f1_and_nested_thresholds_skip_their_fold() -> None:
    scores = np.array([[0.9, 0.2], [0.6, 0.7], [0.3, 0.1]])
    targets = np.array([[1, 0], [1, 1], [0, 0]])
    assert thresholds.choose_threshold(scores, targets) == pytest.approx(0.31)  # every positive above, no negative
    parts = {1: (scores, targets), 2: (scores * 0.5, targets), 3: (scores * 0.5, targets)}
    nested = thresholds.nested(parts)
    assert nested[1] == pytest.approx(0.16)  # from folds 2 and 3 only: scores halved
    assert nested[2] == pytest.approx(0.21)  # folds 1 and 3: above fold 1's negative at 0.2, below 0.3


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        evaluate_run(tmp_path)
