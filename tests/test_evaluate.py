import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

from soundtag.config import make_config
from soundtag.evaluate import evaluate_run
from soundtag.train import run


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


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        evaluate_run(tmp_path)
