from pathlib import Path

import nbformat
import pytest
from conftest import REPO, TINY
from nbclient import NotebookClient

from soundtag.training.config import make_config
from soundtag.training.evaluate import evaluate_run
from soundtag.training.train import run


def test_results_notebook_runs_on_a_tiny_run(tone_dataset: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = run(make_config("smoke", overrides=[*TINY, "train.epochs=2"]), tone_dataset, tmp_path / "run", folds=[1, 2])
    evaluate_run(out)
    monkeypatch.setenv("SOUNDTAG_RUN", str(out))
    nb = nbformat.read(REPO / "notebooks" / "results.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "accuracy" in text and "predicted as" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3


def test_results_notebook_finds_the_committed_run_from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """Started from the repository root (not from notebooks/), with no SOUNDTAG_RUN."""
    monkeypatch.delenv("SOUNDTAG_RUN", raising=False)
    nb = nbformat.read(REPO / "notebooks" / "results.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    text = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "accuracy" in text and "Traceback" not in text
